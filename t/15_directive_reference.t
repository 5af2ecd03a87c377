# docs/directives.md, the directive reference, lists exactly the
# directives the module registers (apache2 -L with the module loaded),
# each in httpd's documentation form (Description, Syntax, Default,
# Context, Status, Module); the Syntax of the directives with options
# shows exactly the options the module accepts (the list its own "unknown
# option" message gives); each Default is accepted by configtest, and each
# directive is accepted in the contexts its Context names and refused
# outside them.  README points at the page.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Configtest qw(configtest directives);

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my $doc = slurp("$FindBin::Bin/../docs/directives.md");
my $readme = slurp("$FindBin::Bin/../README");
like($readme, qr/\nDirective reference\n-+\n(?:(?!\n[^\n]+\n-{4,}\n).)*docs\/directives\.md/s,
     "README's Directive reference section points at docs/directives.md");

# entries: "## StickyLBName" then "**Field:** value" lines
my %entry;
my @sections = split /^## /m, $doc;
shift @sections;
for my $s (@sections) {
    my ($name) = $s =~ /\A(\S+)\n/ or next;
    next unless $name =~ /^StickyLB\w+$/;
    ok(!exists $entry{$name}, "$name: one entry") or next;
    my %f;
    while ($s =~ /^\*\*(\w+):\*\* (.*?)\\?$/mg) {
        $f{$1} = $2;
    }
    $entry{$name} = \%f;
}
my %code = directives();
ok(keys %code >= 17, 'the module registers its directives (' . scalar(keys %code) . ')');
is_deeply([sort keys %entry], [sort keys %code], 'docs/directives.md documents exactly the registered directives')
    or diag('code: ' . join(' ', sort keys %code) . "\ndocs: " . join(' ', sort keys %entry));

# README's short table of the directives names every one the module has
my ($rtable) = $readme =~ /\nDirective reference\n-+\n(.*?)\n[^\n]+\n-{4,}\n/s;
my %named = map { $_ => 1 }
    map { /`(StickyLB\w+)`/g } grep { /^\|/ } split /\n/, $rtable // '';
is_deeply([sort keys %named], [sort keys %code], "README's directive table names exactly the registered directives");

my $everywhere = 'server config, virtual host, balancer `<Proxy>` section';
my $section = 'balancer `<Proxy>` section';
my %sig;
for my $d (sort keys %entry) {
    my $f = $entry{$d};
    is_deeply([sort keys %$f], [sort qw(Description Syntax Default Context Status Module)],
              "$d: the summary has Description, Syntax, Default, Context, Status, Module");
    is($f->{Status} // '', 'External module', "$d: Status");
    is($f->{Module} // '', 'mod_stickylb', "$d: Module");
    my ($args) = ($f->{Syntax} // '') =~ /^`\Q$d\E( [^`]+)`$/;
    ok(defined $args, "$d: the Syntax is `$d arguments`") or diag($f->{Syntax} // '(none)');
    $sig{$d} = $args // '';
    ok(($f->{Context} // '') eq $everywhere || ($f->{Context} // '') eq 'server config'
       || ($f->{Context} // '') eq $section,
       "$d: the Context is \"$everywhere\", \"server config\" or \"$section\"")
        or diag($f->{Context} // '(none)');
}

# options: what the Syntax shows against what the module accepts
my %probe = (
    StickyLBRouteCookie => [qq{<Proxy "balancer://o">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBRouteCookie R zzz\n</Proxy>\n},
                            qr/unknown option 'zzz' \(expected ([^)]*)\)/],
    StickyLBProbe       => [qq{<Proxy "balancer://o">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBProbe http zzz=1\n</Proxy>\n},
                            qr/unknown option 'zzz=1' \(expected ([^)]*)\)/],
    StickyLBMemcached   => [qq{StickyLBMemcached "--SERVER=127.0.0.1:11211" zzz=1\n},
                            qr/unknown option 'zzz=1' \(expected ([^)]*)\)/],
    StickyLBPassive     => [qq{<Proxy "balancer://o">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBPassive 500 zzz=1\n</Proxy>\n},
                            qr/unknown option 'zzz=1' \(expected ([^)]*)\)/],
);
for my $d (sort keys %probe) {
    my ($body, $re) = @{ $probe{$d} };
    my ($rc, $out) = configtest($body);
    my ($list) = $out =~ $re;
    ok($rc != 0 && defined $list, "$d: an unknown option is refused with the list of options") or diag $out;
    my @accepted = sort map { s/=$//r } split /,\s*/, ($list // '');
    my @documented = sort keys %{{ map { $_ => 1 } ($sig{$d} // '') =~ /\[([a-z][a-z-]*)(?:=[^\]]*)?\]/g }};
    is_deeply(\@documented, \@accepted, "$d: the Syntax shows exactly the options the module accepts")
        or diag("module: @accepted\ndocs: @documented");
}

# StickyLBDiscover: the Syntax shows the options common to every kind,
# and a line "Options of `kind`: [...]" of its entry those of each kind;
# together, exactly what the kind's unknown-option message lists
my %disc_target = (dns => 'a.test:80', srv => '_http._tcp.a.test',
                   etcd => 'http://127.0.0.1:2379');
my ($disc_doc) = $doc =~ /^## StickyLBDiscover\n(.*?)(?=^## )/ms;
my %kind_opts = ($disc_doc // '') =~ /^Options of `(\w+)`: (.*)$/mg;
ok(keys %kind_opts >= 2, 'StickyLBDiscover: the options of each kind are documented ('
   . join(' ', sort keys %kind_opts) . ')');
for my $kind (sort keys %kind_opts) {
    my $target = $disc_target{$kind} // 'x';
    my ($rc, $out) = configtest(qq{<Proxy "balancer://o">\n ProxySet lbmethod=stickylb growth=2\n StickyLBDiscover $kind $target zzz=1\n</Proxy>\n});
    my ($list) = $out =~ /unknown option 'zzz=1' \(expected ([^)]*)\)/;
    ok($rc != 0 && defined $list, "StickyLBDiscover $kind: an unknown option is refused with the list of options")
        or diag $out;
    my @accepted = sort map { s/=$//r } split /,\s*/, ($list // '');
    my %doc_opts = map { $_ => 1 } (($sig{StickyLBDiscover} // '') . " $kind_opts{$kind}")
        =~ /\[([a-z][a-z-]*)(?:=[^\]]*)?\]/g;
    is_deeply([sort keys %doc_opts], \@accepted,
              "StickyLBDiscover $kind: the Syntax and the kind's line show exactly the options it accepts")
        or diag("module: @accepted\ndocs: " . join(' ', sort keys %doc_opts));
    like($sig{StickyLBDiscover} // '', qr/^ (?:\w+\|)*\Q$kind\E\b/, "StickyLBDiscover: the Syntax names the kind $kind");
}

# contexts: a line of the directive (its Default, where that is one) is
# accepted where the Context says, and refused elsewhere
my %sample = (
    StickyLBNamespace => 'StickyLBNamespace app',
    StickyLBMemcached => 'StickyLBMemcached "--SERVER=127.0.0.1:11211"',
    StickyLBDiscover  => 'StickyLBDiscover dns app.internal:8080',
);
my $member = qq{ BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n};
for my $d (sort keys %entry) {
    my $f = $entry{$d};
    my ($line) = ($f->{Default} // '') =~ /^`(\Q$d\E\b[^`]*)`$/;
    $line //= $sample{$d};
    ok(defined $line, "$d: a line to try (the Default, or the test's own)") or next;
    my ($rc, $out);
    my $vhost = "<VirtualHost *:80>\n$line\n</VirtualHost>\n";
    my $proxy = qq{<Proxy "balancer://c">\n$member $line\n</Proxy>\n};
    my $loc = "<Location \"/c\">\n$line\n</Location>\n";
    if (($f->{Context} // '') eq $section) {
        # a balancer section only (with the growth slots it fills)
        for my $where ([ 'the server config', "$line\n" ], [ 'a virtual host', $vhost ],
                       [ 'a <Location>', $loc ]) {
            ($rc, $out) = configtest($where->[1]);
            isnt($rc, 0, "$d: refused in $where->[0]");
            like($out, qr/\Q$d\E/, "$d: the message names the directive");
        }
        ($rc, $out) = configtest(qq{<Proxy "balancer://c">\n ProxySet lbmethod=stickylb growth=2\n $line\n</Proxy>\n});
        is($rc, 0, "$d: accepted in a balancer <Proxy> section") or diag $out;
        next;
    }
    ($rc, $out) = configtest("$line\n");
    is($rc, 0, "$d: `$line` accepted in the server config") or diag $out;
    if (($f->{Context} // '') eq 'server config') {
        ($rc, $out) = configtest($vhost);
        isnt($rc, 0, "$d: refused in a virtual host");
        like($out, qr/\Q$d\E/, "$d: the message names the directive");
    }
    else {
        ($rc, $out) = configtest($vhost);
        is($rc, 0, "$d: accepted in a virtual host") or diag $out;
        ($rc, $out) = configtest($proxy);
        is($rc, 0, "$d: accepted in a balancer <Proxy> section") or diag $out;
        ($rc, $out) = configtest($loc);
        isnt($rc, 0, "$d: refused in a <Location>");
        like($out, qr/\Q$d\E: allowed only in the server config/, "$d: the message names the directive");
    }
}

done_testing();
