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
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use StickyLB::System;

if ($> != 0) {
    plan skip_all => 'needs root (iptables)';
}
my $iptables = (grep { -x } qw(/usr/sbin/iptables /sbin/iptables))[0];
plan skip_all => 'iptables missing' unless $iptables;

my ($mcport, $lb) = (free_port(), free_port());
my %port = map { $_ => free_port() } qw(t1 t2 t3);
my $rule;

sub drop_rule {
    my ($op) = @_;
    system($iptables, $op, 'INPUT', '-i', 'lo', '-p', 'tcp', '--dport', $mcport,
           '-j', 'DROP') == 0 or die "iptables $op failed\n";
    $rule = $op eq '-I' ? 1 : 0;
}

END {
    local $?;
    drop_rule('-D') if $rule;
    stop_all();
}

memcached_start($mcport);
backend_start($_, $port{$_}, '--no-route-suffix') for sort keys %port;
start_apache($lb, <<"CONF");
StickyLBMemcached "--SERVER=127.0.0.1:$mcport" connect-timeout=50 timeout=50 retry=1 failure-limit=1 cache=2
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
CONF

sub get { my ($sid) = @_; return http_get($lb, '/app/', $sid ? ("Cookie: JSESSIONID=$sid") : ()) }

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
