#!/usr/bin/env perl
# System test, as root: two Apache load balancers share a stick table in
# two memcached servers (replicas=1, learn mode, Tomcat-like backends that
# put no route in their session ids), and the memcached servers crash and
# come back, again and again, under traffic.  Each recovery is where the
# two balancers can see the servers differently (one took a returning
# server back, the other not yet, or never saw it go): new sessions are
# started during every recovery, through one balancer, and continued
# alternately through both.  Asserted: zero broken sessions (a request
# that reaches a member other than the one that made its session), over
# at least 200 new sessions started in recovery windows, and no 5xx.
# Bounded: 8 cycles of about 5 s, and each loop in count and time.
# Everything is stopped by PID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use StickyLB::System;

plan skip_all => 'needs root (memcached and Apache as nobody)' if $> != 0;
plan skip_all => 'memcached missing' unless -x '/usr/bin/memcached';

my ($m1, $m2) = (free_port(), free_port());
my ($lb1, $lb2) = (free_port(), free_port());
my %port = map { $_ => free_port() } qw(t1 t2 t3);
my $dir = workdir();

END { local $?; stop_all() }

my %mc_pid;
sub mc_start { my ($p) = @_; $mc_pid{$p} = memcached_start($p) }
sub mc_kill { my ($p) = @_; memcached_kill(delete $mc_pid{$p}) }

mc_start($_) for $m1, $m2;
backend_start($_, $port{$_}, '--no-route-suffix') for sort keys %port;
my $conf = <<"CONF";
StickyLBMemcached "--SERVER=127.0.0.1:$m1 --SERVER=127.0.0.1:$m2" replicas=1 retry=1 cache=2
<Proxy "balancer://app">
    BalancerMember "http://127.0.0.1:$port{t1}" route=t1
    BalancerMember "http://127.0.0.1:$port{t2}" route=t2
    BalancerMember "http://127.0.0.1:$port{t3}" route=t3
    ProxySet lbmethod=stickylb
    StickyLBStore memcached
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
</Proxy>
ProxyPass "/stickylb-status" "!"
ProxyPass "/app" "balancer://app"
<Location "/stickylb-status">
    SetHandler stickylb-status
</Location>
CONF
start_apache($lb1, $conf);
start_apache($lb2, $conf, 'lb2');

my ($requests, $bad5xx, $broken, @broken) = (0, 0, 0);
my ($cycle, $recovery_t0) = (0, 0);
sub req {
    my ($lb, $sid) = @_;
    my @r = http_get($lb, '/app/', $sid ? ("Cookie: JSESSIONID=$sid") : ());
    $requests++;
    $bad5xx++ if $r[0] >= 500 || $r[0] == 0;
    return @r;
}
# the member that made a session: its id starts with "<route>x"
sub owner { my ($sid) = @_; return $sid =~ /^(t\d)x/ ? $1 : '' }

# a new session through $first, continued 4 times through both
# balancers in turn; returns 1 when it stayed on its member throughout
sub session {
    my ($first) = @_;
    my ($code, $be, undef, undef, $sid) = req($first);
    return undef unless $code == 200 && $sid && owner($sid) eq $be;
    my $other = $first == $lb1 ? $lb2 : $lb1;
    for my $i (1 .. 4) {
        my ($c, $b, $dec) = req($i % 2 ? $other : $first, $sid);
        if ($c != 200 || $b ne $be) {
            push @broken, sprintf('%s: cycle %d, %.2f s into the recovery, '
                                  . 'request %d through %s reached %s (%d, %s)',
                                  $sid, $cycle, time - $recovery_t0, $i,
                                  ($i % 2 ? $other : $first) == $lb1
                                      ? 'lb1' : 'lb2', $b, $c, $dec);
            return 0;
        }
    }
    return 1;
}

# sessions made before the first outage, used in every cycle
my @old;
for (1 .. 20) {
    my ($code, $be, undef, undef, $sid) = req($lb1);
    push @old, $sid if $code == 200 && $sid;
}
is(scalar @old, 20, '20 sessions before any outage');
sub old_ok {
    my ($lb) = @_;
    my $moved = 0;
    for my $sid (@old) {
        my (undef, $b) = req($lb, $sid);
        $moved++ if $b ne owner($sid);
    }
    return $moved;
}

# cycles: which servers crash, which balancer carries the traffic during
# the outage (the other sees nothing of it), and how they come back
my @cycles = (
    [[$m1, $m2], 'lb2', 'together'],
    [[$m1],      'lb1', 'together'],
    [[$m2],      'lb2', 'together'],
    [[$m1, $m2], 'both', 'one after the other'],
    [[$m1, $m2], 'lb1', 'together'],
    [[$m2],      'both', 'together'],
    [[$m1],      'lb2', 'together'],
    [[$m1, $m2], 'lb2', 'one after the other'],
);
my ($new_in_recovery, $ok_in_recovery, $new_in_outage, $old_moved) = (0, 0, 0, 0);
my $t_start = time;
for my $c (@cycles) {
    my ($servers, $who, $how) = @$c;
    $cycle++;
    mc_kill($_) for @$servers;
    # the outage: sessions made and used through one balancer or both
    my $until = time + 0.6;
    my $n = 0;
    while (time < $until && $n < 40) {
        my $first = $who eq 'lb1' ? $lb1 : $who eq 'lb2' ? $lb2
                  : ($n % 2 ? $lb1 : $lb2);
        my ($code, $be, undef, undef, $sid) = req($first);
        $n++;
        req($first, $sid) if $sid;
    }
    $new_in_outage += $n;
    # the recovery: new sessions started alternately on each balancer
    # and continued through both, from the moment the servers are back
    # until the window has closed (2 x retry + 1 s = 3 s) and a second more
    if ($how eq 'together') {
        mc_start($_) for @$servers;
    }
    else {
        mc_start($servers->[0]);
    }
    my $t0 = $recovery_t0 = time;
    my $restarted_second = $how eq 'together';
    my $k = 0;
    while (time - $t0 < 4 && $k < 150) {
        if (!$restarted_second && time - $t0 > 1.0) {
            mc_start($servers->[1]);
            $restarted_second = 1;
        }
        my $r = session($k % 2 ? $lb1 : $lb2);
        $k++;
        sleep 0.015;
        next unless defined $r;
        $new_in_recovery++;
        $ok_in_recovery += $r;
    }
    mc_start($servers->[1]) unless $restarted_second;
    $old_moved += old_ok($lb1) + old_ok($lb2);
}
my $took = time - $t_start;
diag(sprintf('%d cycles in %.0f s: %d new sessions in recovery windows, '
             . '%d made during outages, %d requests',
             scalar @cycles, $took, $new_in_recovery, $new_in_outage,
             $requests));
ok($new_in_recovery >= 200, "at least 200 new sessions started during the "
                            . "recoveries ($new_in_recovery)");
is($new_in_recovery - $ok_in_recovery, 0,
   'no session started during a recovery broke between the balancers')
    or diag(join "\n", @broken[0 .. ($#broken < 9 ? $#broken : 9)]);
is($old_moved, 0, 'the 20 sessions made before the outages kept their '
                  . 'members through every cycle (bindings re-published '
                  . 'by the balancers that cached them)');
is($bad5xx, 0, "no 5xx nor lost request in $requests requests");
ok($took < 100, sprintf('bounded: %.0f s', $took));

# what the balancers did (the child that answers): the window's counters
for my $lb ($lb1, $lb2) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $lb,
                                  Timeout => 5) or next;
    print $s "GET /stickylb-status?format=prometheus HTTP/1.0\r\n\r\n";
    local $/;
    my $body = <$s> // '';
    my @m = $body =~ /^(stickylb_memcached_(?:window_hits_total|recovery_window|errors_total)\S* \S+)/mg;
    diag(($lb == $lb1 ? 'lb1' : 'lb2') . ': ' . join(', ', @m));
}
done_testing();
