# HTTP probes of https:// members speak TLS: against a real TLS backend (a
# private Apache with mod_ssl, its certificate signed by a CA the test
# makes with the openssl CLI in t/logs/tls), probed by lb2.
#   ca=<the CA>, member by name and by address: up; host= naming the
#   certificate: up (SNI and the name checked from host=); no ca= (the
#   system's store): down, "certificate verify failed"; verify=off: up;
#   host= another name: down, "hostname mismatch"; a plain HTTP server as
#   an https:// member: down, "TLS handshake failed: ..."; a member that
#   accepts connections and never handshakes: down at the probe's timeout;
#   a tcp probe of an https:// member: a plain connect, up (also to that
#   member that never handshakes); an http://
#   member under the same line: probed in clear, up.  The reasons are in
#   the status page, HTML and JSON.  A request through the balancer to the
#   https:// member (mod_proxy, SSLProxyEngine) works.
# Configtest: a ca= file that does not exist or holds no certificate is an
# error naming StickyLBProbe and the file; verify=/ca= on a tcp probe too.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use IO::Socket::INET;
use File::Copy qw(copy);
use POSIX ();
use Time::HiRes qw(time sleep);
use Apache::TestRequest ();
use StickyLB::Backends qw(:all);
use StickyLB::Services;
use StickyLB::Configtest qw(configtest);

my $mod_ssl = '/usr/lib/apache2/modules/mod_ssl.so';
plan skip_all => "no $mod_ssl" unless -f $mod_ssl;
plan skip_all => 'no openssl command' unless `openssl version 2>/dev/null` =~ /OpenSSL/;

my $dir = logs_dir() . '/tls';
mkdir $dir unless -d $dir;
my $tls_port = free_port();
my $hole_port = free_port();
my $plain_port = free_port();
my $t1 = backend_port('t1');
my $plain_pid;

END {
    local $?;
    stop_lb2();
    stop_tls_backend($dir);
    if ($plain_pid) { kill 'TERM', $plain_pid; waitpid($plain_pid, 0) }
}

# ---- a CA and a server certificate (names localhost, probe.test, 127.0.0.1)
sub openssl {
    my @args = @_;
    my $pid = open(my $ph, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec 'openssl', @args or POSIX::_exit(127);
    }
    my $out = do { local $/; <$ph> };
    close $ph;
    die "openssl @args: $out" if $?;
    return $out;
}
open my $ext, '>', "$dir/server.ext" or die $!;
print $ext "basicConstraints=CA:FALSE\n",
           "keyUsage=critical,digitalSignature,keyEncipherment\n",
           "extendedKeyUsage=serverAuth\n",
           "subjectAltName=DNS:localhost,DNS:probe.test,IP:127.0.0.1\n";
close $ext;
openssl(qw(req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2),
        '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem", '-subj', '/CN=stickylb test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
openssl(qw(req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes),
        '-keyout', "$dir/server.key", '-out', "$dir/server.csr", '-subj', '/CN=localhost');
openssl(qw(x509 -req -days 2 -set_serial 2), '-in', "$dir/server.csr",
        '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key", '-extfile', "$dir/server.ext",
        '-out', "$dir/server.pem");
# the server sends its certificate and the CA's
{
    open my $c, '>', "$dir/chain.pem" or die $!;
    for my $f ("$dir/server.pem", "$dir/ca.pem") {
        open my $in, '<', $f or die $!;
        print {$c} <$in>;
        close $in;
    }
    close $c;
}
open my $junk, '>', "$dir/junk.pem" or die $!;
print $junk "this is not a certificate\n";
close $junk;
my $ca = "$dir/ca.pem";

# ---- configtest
sub bal {
    my ($probe) = @_;
    return qq{<Proxy "balancer://ct">\n    BalancerMember "https://localhost:9" route=a\n}
         . qq{    ProxySet lbmethod=stickylb\n    StickyLBProbe $probe\n</Proxy>\n};
}
my ($rc, $out) = configtest(bal("http ca=$ca"));
is($rc, 0, 'configtest: ca= a CA file passes') or diag $out;
copy($ca, StickyLB::Configtest::dir() . '/relative-ca.pem') or die $!;
($rc, $out) = configtest(bal('http ca=relative-ca.pem verify=on'));
is($rc, 0, 'configtest: a relative ca= is read from ServerRoot') or diag $out;
($rc, $out) = configtest(bal("http ca=$dir/nonexistent.pem"));
ok($rc != 0 && $out =~ m{StickyLBProbe: ca=\Q$dir\E/nonexistent\.pem: cannot read it \(No such file or directory\)},
   'configtest: a ca= file that does not exist is an error naming StickyLBProbe and the file') or diag $out;
($rc, $out) = configtest(bal("http ca=$dir/junk.pem"));
ok($rc != 0 && $out =~ m{StickyLBProbe: ca=\Q$dir\E/junk\.pem: no CA certificate could be read from it},
   'configtest: a ca= file that holds no certificate is an error naming StickyLBProbe and the file') or diag $out;
for my $bad ('tcp verify=off', "tcp ca=$ca", 'tcp verify=on') {
    ($rc, $out) = configtest(bal($bad));
    ok($rc != 0 && $out =~ /StickyLBProbe: verify= and ca= need an http probe/,
       "configtest: '$bad' is an error") or diag $out;
}
($rc, $out) = configtest(bal("http verify=off ca=$ca"));
ok($rc != 0 && $out =~ /StickyLBProbe: ca= has no effect with verify=off/,
   'configtest: ca= with verify=off is an error') or diag $out;
($rc, $out) = configtest(bal('http verify=maybe'));
ok($rc != 0 && $out =~ /StickyLBProbe: verify='maybe' must be on or off/,
   'configtest: verify= takes on or off') or diag $out;

# ---- the TLS backend, a black hole, lb2
start_tls_backend(dir => $dir, port => $tls_port, cert => "$dir/chain.pem",
                  key => "$dir/server.key");
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $hole_port,
                                 Listen => 64, ReuseAddr => 1) or die "hole: $!";
# a plain HTTP server that answers at once, whatever it is sent
my $plain = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $plain_port,
                                  Listen => 64, ReuseAddr => 1) or die "plain: $!";
$plain_pid = fork // die "fork: $!";
if ($plain_pid == 0) {
    $SIG{TERM} = sub { POSIX::_exit(0) };
    while (my $c = $plain->accept) {
        syswrite $c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        close $c;
    }
    POSIX::_exit(0);
}
close $plain;

my $P = 'path=/health interval=1 timeout=500ms rise=1 fall=1';
my %bal = (
    ca     => ["https://localhost:$tls_port", "http $P ca=$ca"],
    ip     => ["https://127.0.0.1:$tls_port", "http $P ca=$ca"],
    sni    => ["https://127.0.0.1:$tls_port", "http $P ca=$ca host=probe.test"],
    sys    => ["https://localhost:$tls_port", "http $P"],
    off    => ["https://localhost:$tls_port", "http $P verify=off"],
    name   => ["https://localhost:$tls_port", "http $P ca=$ca host=wrong.test"],
    plain  => ["https://127.0.0.1:$plain_port", "http $P ca=$ca"],
    hole   => ["https://127.0.0.1:$hole_port", "http $P ca=$ca"],
    tcp    => ["https://localhost:$tls_port", "tcp interval=1 timeout=500ms rise=1 fall=1"],
    # a plain connect: up (a handshake would time out)
    tcphole => ["https://127.0.0.1:$hole_port", "tcp interval=1 timeout=500ms rise=1 fall=1"],
);
my $conf = <<"CONF";
<IfModule !ssl_module>
    LoadModule ssl_module $mod_ssl
</IfModule>
WatchdogInterval 200ms
SSLProxyEngine on
SSLProxyVerify require
SSLProxyCheckPeerName on
SSLProxyCACertificateFile "$ca"
<Location "/stickylb-status">
    SetHandler stickylb-status
</Location>
CONF
for my $name (sort keys %bal) {
    my ($member, $probe) = @{ $bal{$name} };
    $conf .= <<"CONF";
<Proxy "balancer://$name">
    BalancerMember "$member" route=$name
    ProxySet lbmethod=stickylb
    StickyLBProbe $probe
</Proxy>
CONF
}
# an http:// member under a line with ca=: probed in clear
$conf .= <<"CONF";
<Proxy "balancer://mixed">
    BalancerMember "http://127.0.0.1:$t1" route=t1
    BalancerMember "https://localhost:$tls_port" route=tls
    ProxySet lbmethod=stickylb
    StickyLBProbe http $P ca=$ca
</Proxy>
ProxyPass "/stickylb-status" "!"
ProxyPass "/tls" "balancer://ca"
CONF
start_lb2($conf);

sub status { return JSON::PP::decode_json(lb2_get('/stickylb-status?format=json')->content) }
sub member {
    my ($j, $bal, $route) = @_;
    my ($b) = grep { $_->{name} eq "balancer://$bal" } @{ $j->{balancers} };
    my ($m) = grep { $_->{route} eq ($route // $bal) } @{ $b ? $b->{members} : [] };
    return $m;
}
sub result { my $m = shift; return $m && $m->{probe} ? $m->{probe}{result} // '' : '' }

my %want_up = map { $_ => 1 } qw(ca ip sni off tcp tcphole);
my @down = qw(sys name plain hole);
# every member probed at least twice (rise=1, fall=1: its state follows its
# last probe), within 8 s
my $j;
my $t0 = time;
while (time - $t0 < 8) {
    $j = status();
    my $settled = grep {
        my $m = member($j, $_);
        $m && $m->{probe} && ($want_up{$_} ? $m->{state} eq 'up' : $m->{state} eq 'down-by-probe')
    } keys %bal;
    last if $settled == keys %bal && time - $t0 > 2.5;
    sleep 0.2;
}
my $show = sub {
    my $m = shift;
    return $m ? "$m->{state}: " . result($m) : 'no such member';
};

for my $b (qw(ca ip sni off tcp tcphole)) {
    my $m = member($j, $b);
    is($m && $m->{state}, 'up', "https member, StickyLBProbe $bal{$b}[1] on $bal{$b}[0]: up")
        or diag $show->($m);
    is(result($m), 'ok', "  ($b: the last probe passed)");
}
my $m = member($j, 'sys');
ok($m && $m->{state} eq 'down-by-probe'
   && result($m) =~ /^TLS handshake failed: certificate verify failed \(self-signed certificate in certificate chain\)$/,
   'no ca= (the system store): down, the reason says the verification failed') or diag $show->($m);
$m = member($j, 'name');
ok($m && $m->{state} eq 'down-by-probe'
   && result($m) eq 'TLS handshake failed: certificate verify failed (hostname mismatch)',
   'host=wrong.test with verification: down, hostname mismatch') or diag $show->($m);
$m = member($j, 'plain');
ok($m && $m->{state} eq 'down-by-probe' && result($m) =~ /^TLS handshake failed: \S/,
   'a plain HTTP server as an https:// member: down (' . result($m) . ')') or diag $show->($m);
$m = member($j, 'hole');
ok($m && $m->{state} eq 'down-by-probe' && result($m) eq 'timeout (TLS handshake)',
   'a member that never handshakes: down, timeout (TLS handshake)') or diag $show->($m);
ok($m && $m->{probe}{latency_ms} >= 450 && $m->{probe}{latency_ms} < 900,
   "  ... at the probe's timeout (500 ms): " . ($m ? $m->{probe}{latency_ms} : '?') . ' ms');
for my $r (qw(t1 tls)) {
    $m = member($j, 'mixed', $r);
    is($m && $m->{state} . ' ' . result($m), 'up ok',
       "the same line probes an " . ($r eq 't1' ? 'http:// member in clear' : 'https:// member over TLS'))
        or diag $show->($m);
}
$m = member($j, 'ca');
is($m && $m->{probe}{address}, "127.0.0.1:$tls_port", 'JSON: the address probed');

# the status page (HTML) shows the reasons
my $html = lb2_get('/stickylb-status')->content;
like($html, qr/TLS handshake failed: certificate verify failed \(self-signed certificate in certificate chain\)/,
     'the status page shows the TLS failure');

# ---- a request through the balancer to the https:// member
my $r = lb2_get('/tls/health');
is($r->code . ' ' . ($r->header('X-Backend') // '') . ' ' . $r->content, "200 tls UP\n",
   'a request through the balancer reaches the https:// member (SSLProxyEngine)');

# ---- the TLS backend stopped: the https member goes down, and back up
stop_tls_backend($dir);
$t0 = time;
my $t;
while (time - $t0 < 5) {
    $m = member(status(), 'ca');
    if ($m && $m->{state} eq 'down-by-probe') { $t = time - $t0; last }
    sleep 0.1;
}
ok(defined $t, sprintf('TLS backend stopped: the https member is down in %.1f s (%s)', $t // -1, result($m)));
start_tls_backend(dir => $dir, port => $tls_port, cert => "$dir/chain.pem",
                  key => "$dir/server.key");
$t0 = time;
undef $t;
while (time - $t0 < 5) {
    $m = member(status(), 'ca');
    if ($m && $m->{state} eq 'up') { $t = time - $t0; last }
    sleep 0.1;
}
ok(defined $t, sprintf('TLS backend back: up again in %.1f s', $t // -1));
close $hole;

# nothing crashed
open my $log, '<', lb2_error_log() or die $!;
my @bad = grep { /AH00052|Segmentation|signal 11|double free/ } <$log>;
close $log;
is(scalar(@bad), 0, 'lb2: no child crashed') or diag @bad;

done_testing();
