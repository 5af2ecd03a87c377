# README's directive reference lists exactly the directives the module
# registers (apache2 -L with the module loaded), and, for the directives
# with options, exactly the options the module accepts (the list its own
# "unknown option" message gives).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Configtest qw(configtest directives);

open my $fh, '<', "$FindBin::Bin/../README" or die $!;
my $readme = do { local $/; <$fh> };
close $fh;
my ($ref) = $readme =~ /\nDirective reference\n-+\n(.*?)\n[^\n]+\n-{4,}\n/s;
ok(defined $ref, 'README has a directive reference section');
$ref //= '';
# entries: a line `Directive args` followed by a line ": ..."
my %entry;
while ($ref =~ /^`(StickyLB\w+)([^`\n]*)`\n: /mg) {
    $entry{$1} = $2;
}
my %code = directives();
ok(keys %code >= 17, 'the module registers its directives (' . scalar(keys %code) . ')');
is_deeply([sort keys %entry], [sort keys %code], 'README documents exactly the registered directives')
    or diag('code: ' . join(' ', sort keys %code) . "\nREADME: " . join(' ', sort keys %entry));

# options: what README's signature shows against what the module accepts
my %probe = (
    StickyLBRouteCookie => [qq{<Proxy "balancer://o">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBRouteCookie R zzz\n</Proxy>\n},
                            qr/unknown option 'zzz' \(expected ([^)]*)\)/],
    StickyLBProbe       => [qq{<Proxy "balancer://o">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBProbe http zzz=1\n</Proxy>\n},
                            qr/unknown option 'zzz=1' \(expected ([^)]*)\)/],
    StickyLBMemcached   => [qq{StickyLBMemcached "--SERVER=127.0.0.1:11211" zzz=1\n},
                            qr/unknown option 'zzz=1' \(expected ([^)]*)\)/],
);
for my $d (sort keys %probe) {
    my ($body, $re) = @{ $probe{$d} };
    my ($rc, $out) = configtest($body);
    my ($list) = $out =~ $re;
    ok($rc != 0 && defined $list, "$d: an unknown option is refused with the list of options") or diag $out;
    my @accepted = sort map { s/=$//r } split /,\s*/, ($list // '');
    my $sig = $entry{$d} // '';
    my @documented = sort keys %{{ map { $_ => 1 } $sig =~ /\[([a-z][a-z-]*)(?:=[^\]]*)?\]/g }};
    is_deeply(\@documented, \@accepted, "$d: README's signature shows exactly the options the module accepts")
        or diag("module: @accepted\nREADME: @documented");
}

done_testing();
