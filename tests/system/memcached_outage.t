#!/usr/bin/env perl
# System test, as root: memcached made unreachable by dropping its packets
# (an iptables DROP rule on loopback for its port: connections hang, they
# are not refused) while clients use an Apache with mod_stickylb on the
# memcached store.  Asserts: no 5xx, the added latency stays bounded by
# the configured timeouts, sessions stay on their member, and the store
# recovers by itself when the rule is removed.  Everything it starts is
# stopped by PID; the rule is removed in every case.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

if ($> != 0) {
    plan skip_all => 'needs root (iptables)';
}
my $iptables = (grep { -x } qw(/usr/sbin/iptables /sbin/iptables))[0];
plan skip_all => 'iptables missing' unless $iptables;

my $top = "$FindBin::Bin/../..";
my $build = $ENV{SLB_BUILD_DIR} || "$top/_build";
my $module = "$build/.libs/mod_stickylb.so";
die "no $module" unless -f $module;
my $libexec = `apxs -q LIBEXECDIR`;
chomp $libexec;

my $dir = tempdir('stickylb-outage-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my (@pids, $rule);

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        return 1 if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port, Timeout => 1);
        sleep 0.05;
    }
    die "nothing listens on $port\n";
}

sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        { exec @cmd }
        POSIX::_exit(127);
    }
    push @pids, $pid;
    return $pid;
}

my ($mcport, $lb) = (free_port(), free_port());
my %port = map { $_ => free_port() } qw(t1 t2 t3);

sub drop_rule {
    my ($op) = @_;
    system($iptables, $op, 'INPUT', '-i', 'lo', '-p', 'tcp', '--dport', $mcport,
           '-j', 'DROP') == 0 or die "iptables $op failed\n";
    $rule = $op eq '-I' ? 1 : 0;
}

END {
    local $?;
    drop_rule('-D') if $rule;
    if (-s "$dir/httpd.pid") {
        system('/usr/sbin/apache2', '-f', "$dir/httpd.conf", '-k', 'stop');
        for (1 .. 100) { last unless -e "$dir/httpd.pid"; sleep 0.05 }
    }
    for my $p (@pids) { kill 'TERM', $p; waitpid($p, 0) }
}

spawn("$dir/memcached.log", '/usr/bin/memcached', '-u', 'nobody', '-l',
      '127.0.0.1', '-p', $mcport, '-U', '0', '-m', '16');
for my $r (sort keys %port) {
    spawn("$dir/$r.log", 'perl', "$top/t/backend.pl", '--host', '127.0.0.1',
          '--port', $port{$r}, '--route', $r, '--no-route-suffix');
}
wait_port($_) for $mcport, values %port;

open my $fh, '>', "$dir/httpd.conf" or die $!;
print $fh <<"CONF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$lb
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error.log"
LogLevel warn
User nobody
Group nogroup
LoadModule mpm_event_module $libexec/mod_mpm_event.so
LoadModule authz_core_module $libexec/mod_authz_core.so
LoadModule headers_module $libexec/mod_headers.so
LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so
LoadModule proxy_module $libexec/mod_proxy.so
LoadModule proxy_http_module $libexec/mod_proxy_http.so
LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so
LoadModule stickylb_module $module
StickyLBMemcached "--SERVER=127.0.0.1:$mcport" connect-timeout=50 timeout=50 retry=1 failure-limit=1 cache=2
Header always set X-SLB "%{STICKYLB_DECISION}e %{STICKYLB_KEY_SOURCE}e"
<Proxy "balancer://app">
    BalancerMember "http://127.0.0.1:$port{t1}" route=t1
    BalancerMember "http://127.0.0.1:$port{t2}" route=t2
    BalancerMember "http://127.0.0.1:$port{t3}" route=t3
    ProxySet lbmethod=stickylb
    StickyLBStore memcached
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
</Proxy>
ProxyPass "/app" "balancer://app"
<Location "/">
    Require all granted
</Location>
CONF
close $fh;
system('/usr/sbin/apache2', '-f', "$dir/httpd.conf", '-k', 'start') == 0
    or die "apache did not start\n";
wait_port($lb);

# one request: (status, backend, decision, seconds, new session id)
sub get {
    my ($cookie) = @_;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $lb,
                                  Timeout => 10) or return (0, '', '', 10);
    print $s "GET /app/ HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        . ($cookie ? "Cookie: JSESSIONID=$cookie\r\n" : '') . "\r\n";
    local $/;
    my $resp = <$s> // '';
    my $dt = time - $t0;
    my ($code) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($be) = $resp =~ /^X-Backend: (\S+)/m;
    my ($dec) = $resp =~ /^X-SLB: (\S+)/m;
    my ($sid) = $resp =~ /^Set-Cookie: JSESSIONID=([^;\s]+)/m;
    return ($code // 0, $be // '', $dec // '', $dt, $sid);
}

# 12 sessions, learned while memcached is fine
my %owner;
for (1 .. 12) {
    my ($code, $be, undef, undef, $sid) = get();
    $owner{$sid} = $be if $code == 200 && $sid;
}
is(scalar keys %owner, 12, '12 sessions learned');

# traffic with memcached black-holed for 6 s (cached bindings are
# re-validated every 2 s, so memcached is asked during the outage);
# bounded in count (3000) and time
drop_rule('-I');
my ($n, $bad, $moved, $max, $total) = (0, 0, 0, 0, 0);
my $deadline = time + 6;
while ($n < 3000 && time < $deadline) {
    for my $sid (keys %owner) {
        my ($code, $be, undef, $dt) = get($sid);
        $n++;
        $bad++ if $code >= 500 || $code == 0;
        $moved++ if $be ne $owner{$sid};
        $max = $dt if $dt > $max;
        $total += $dt;
    }
}
my ($ncode, $nbe, undef, undef, $nsid) = get();
drop_rule('-D');
ok($n >= 120, "$n requests in 6 s while memcached's packets were dropped");
is($bad, 0, 'no 5xx (nor lost request) while memcached is unreachable');
is($moved, 0, 'every session stayed on its member');
# a re-validation costs at most one connect timeout (50 ms) per process
# before the server is ejected for retry= (1 s)
ok($max < 0.6, sprintf('slowest request %.0f ms (bound: 50 ms connect timeout'
                       . ' + 50 ms I/O timeout + scheduling)', $max * 1000));
diag(sprintf('mean %.1f ms over %d requests', 1000 * $total / ($n || 1), $n));
is($ncode, 200, 'a new session during the outage is served');

# recovery: after the retry time, bindings are written to memcached again
sleep 2.5;
my ($rcode, $rbe, undef, undef, $rsid) = get();
my $stored = 0;
for (1 .. 20) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mcport,
                                  Timeout => 2) or last;
    print $s "stats\r\n";
    while (my $line = <$s>) {
        $stored = $1 if $line =~ /^STAT curr_items (\d+)/;
        last if $line =~ /^END/;
    }
    last if $stored >= 13;
    sleep 0.2;
    get($rsid);
}
ok($stored >= 13, "memcached holds the bindings again after the outage ($stored items)");
my ($c2, $b2, $d2) = get($rsid);
is("$c2 $b2 $d2", "200 $rbe sticky", 'a session learned after the outage sticks');

done_testing();
