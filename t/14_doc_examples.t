# Every configuration example of README and docs/*.md passes configtest as
# written, so that an example pasted by an operator works: indented and
# fenced blocks whose first line is a directive or a section
# (StickyLB::Configtest::config_blocks).  What the test adds around a
# block: the modules the examples use, a <Proxy balancer://> section
# around a fragment of one (ProxySet, BalancerMember without a section),
# key files for sign= paths and a CA file (made with the openssl CLI) for
# ca= paths; members keep their addresses (configtest connects to none).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Configtest qw(configtest config_blocks);

my $top = "$FindBin::Bin/..";
my @files = ("$top/README", glob("$top/docs/*.md"));
my ($n, $keyn) = (0, 0);
my $ca;

# a CA certificate for the examples' ca= (StickyLBProbe reads it)
sub make_ca {
    my $d = StickyLB::Configtest::dir();
    open my $saved, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    my $rc = system('openssl', qw(req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
                                  -days 2 -subj /CN=doc-example-ca -addext),
                    'basicConstraints=critical,CA:TRUE',
                    '-keyout', "$d/doc-ca.key", '-out', "$d/doc-ca.pem");
    open STDERR, '>&', $saved or die $!;
    $rc == 0 or die "openssl req failed\n";
    return "$d/doc-ca.pem";
}

for my $file (@files) {
    (my $name = $file) =~ s{^\Q$top\E/}{};
    for my $b (config_blocks($file)) {
        my ($line, $text) = @$b;
        # a key file where the example names one
        $text =~ s{sign=(\S+)}{
            my $k = StickyLB::Configtest::dir() . '/keys' . ++$keyn;
            open my $fh, '>', $k or die $!;
            print $fh "doc-example-key-" . ('x' x 24) . "\n";
            close $fh;
            "sign=$k"
        }ge;
        $text =~ s{\bca=\S+}{'ca=' . ($ca //= make_ca())}ge;
        # a fragment of a balancer section
        if ($text !~ /<(?:Proxy|VirtualHost)\b/
            && $text =~ /^\s*(?:ProxySet|BalancerMember)\b/m) {
            $text = qq{<Proxy "balancer://example">\n}
                  . ($text =~ /BalancerMember/ ? ''
                     : qq{    BalancerMember "http://127.0.0.1:9" route=a\n})
                  . "$text</Proxy>\n";
        }
        my ($rc, $out) = configtest($text);
        $n++;
        is($rc, 0, "$name line $line: the example passes configtest")
            or diag("$out\n--- the example as tested:\n$text");
    }
}
ok($n >= 9, "configuration examples found and tested: $n");

done_testing();
