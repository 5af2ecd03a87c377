# The memcached store: two Apache load balancers (the test server and lb2)
# share one stick table, like HAProxy peers.  Learned sessions continue
# through either; simultaneous new bindings agree (memcached add); a
# failover re-pin reaches the other balancer within StickyLBMemcached
# cache= + 1 s (2 + 1 = 3 s here); bindings survive a full stop/start of a
# balancer; with memcached stopped there is no 5xx, the sessions stay
# sticky and the store recovers when memcached returns.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends;
use StickyLB::Services;
use IO::Socket::INET;

my $BAL = <<"CONF";
RequestHeader set X-Test-Session-Style nosuffix
StickyLBMemcached "--SERVER=127.0.0.1:$ENV{SLB_MC1_PORT}" connect-timeout=50 timeout=50 retry=1 failure-limit=1 cache=2
<Proxy "balancer://shared">
    BalancerMember "http://127.0.0.1:$ENV{SLB_T1_PORT}" route=t1
    BalancerMember "http://127.0.0.1:$ENV{SLB_T2_PORT}" route=t2
    BalancerMember "http://127.0.0.1:$ENV{SLB_T4_PORT}" route=t4 retry=1
    ProxySet lbmethod=stickylb
    StickyLBStore memcached
    StickyLBNamespace shared
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
    StickyLBKey header X-Session
</Proxy>
ProxyPass "/shared" "balancer://shared"
<Proxy "balancer://peers">
    BalancerMember "http://127.0.0.1:$ENV{SLB_T1_PORT}" route=t1
    BalancerMember "http://127.0.0.1:$ENV{SLB_T2_PORT}" route=t2
    BalancerMember "http://127.0.0.1:$ENV{SLB_T3_PORT}" route=t3
    ProxySet lbmethod=stickylb
    StickyLBStore memcached
    StickyLBNamespace peers
    StickyLBKey cookie JSESSIONID
</Proxy>
ProxyPass "/peers" "balancer://peers"
<Location "/stickylb-status">
    SetHandler stickylb-status
</Location>
ProxyPass "/stickylb-status" "!"
CONF

END { local $?; stop_lb2(); stop_memcached(); stop_backend('t4'); }

sub sid_of {
    my ($res) = @_;
    my ($sc) = set_cookies($res, 'JSESSIONID');
    return defined $sc && $sc =~ /^JSESSIONID=([^;]+)/ ? $1 : undef;
}
sub lb1 { my ($path, @h) = @_; return req('slb_mc', $path, @h) }
sub lb2 { my ($path, @h) = @_; return lb2_get($path, @h) }
sub how { my $x = shift; return $x->code . ' ' . backend($x) . ' ' . join(' ', (slb($x))[0, 1]) }

start_memcached();
start_backend(route => 't4', port => backend_port('t4'));
start_lb2($BAL);

# --- a session learned through lb1 continues through lb2, and back
my $r = lb1('/shared/');
my $b = backend($r);
my $sid = sid_of($r);
ok($sid, "lb1: new session on $b");
my $ok = 0;
$ok += how(lb2('/shared/', Cookie => "JSESSIONID=$sid")) eq "200 $b sticky learned" for 1 .. 5;
is($ok, 5, 'lb2 sends the session learned by lb1 to the same member');
$r = lb2('/shared/');
my ($b2, $sid2) = (backend($r), sid_of($r));
$ok = 0;
$ok += how(lb1('/shared/', Cookie => "JSESSIONID=$sid2")) eq "200 $b2 sticky learned" for 1 .. 5;
is($ok, 5, 'lb1 sends the session learned by lb2 to the same member');

# --- a cookie the client sends (StickyLBKey cookie JSESSIONID), as the
# haproxy-peers demo's clients send it: bound with memcached add by the
# balancer that saw it first, followed by the other
use Digest::MD5 qw(md5_hex);
sub demo_cookie { return 'c1=1; c2=2; JSESSIONID=' . md5_hex("_$_[0]-$$") }
sub mc_stat {
    my ($name) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{SLB_MC1_PORT}", Timeout => 2)
        or return -1;
    print $s "stats\r\n";
    my $v = -1;
    while (defined(my $l = <$s>)) {
        $v = $1 if $l =~ /^STAT \Q$name\E (\d+)/;
        last if $l =~ /^END/;
    }
    close $s;
    return $v;
}
my $sets0 = mc_stat('cmd_set');
my (%on, $first_new) = ();
$first_new = 0;
for my $x (101 .. 105) {
    my $y = lb2('/peers/', Cookie => demo_cookie($x));
    $on{$x} = backend($y);
    $first_new++ if (slb($y))[0] eq 'new';
}
is($first_new, 5, 'lb2: sessions 101-105 are new (' . join(',', map { $on{$_} } 101 .. 105) . ')');
cmp_ok(mc_stat('cmd_set') - $sets0, '>=', 5, 'their bindings were written to memcached');
$ok = 0;
for my $x (101 .. 105) {
    $ok++ if how(lb1('/peers/', Cookie => demo_cookie($x))) eq "200 $on{$x} sticky cookie";
}
is($ok, 5, 'lb1 sends sessions 101-105 to the members lb2 chose');
my $agree = 0;
for my $k (1 .. 10) {
    my $c = demo_cookie("race$k");
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        lb2('/peers/', Cookie => $c);
        POSIX::_exit(0);
    }
    lb1('/peers/', Cookie => $c);
    waitpid($pid, 0);
    my $then1 = backend(lb1('/peers/', Cookie => $c));
    my $then2 = backend(lb2('/peers/', Cookie => $c));
    $agree++ if $then1 eq $then2 && $then1 =~ /^t/;
}
is($agree, 10, '10 cookie keys first seen by both at once: both agree afterwards');

# --- both balancers see a new key at once: one binding wins, both use it
my $differed = 0;
$agree = 0;
for my $k (1 .. 20) {
    my $key = "race$k-" . int(rand(1e9));
    pipe(my $rd, my $wr) or die;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $rd;
        my $x = lb2('/shared/', 'X-Session' => $key);
        print $wr backend($x);
        close $wr;
        POSIX::_exit(0);    # not exit: END blocks would stop the services
    }
    close $wr;
    my $first1 = backend(lb1('/shared/', 'X-Session' => $key));
    my $first2 = <$rd> // '';
    waitpid($pid, 0);
    $differed++ if $first1 ne $first2;
    my $then1 = backend(lb1('/shared/', 'X-Session' => $key));
    my $then2 = backend(lb2('/shared/', 'X-Session' => $key));
    $agree++ if $then1 eq $then2 && $then1 =~ /^t/;
}
is($agree, 20, "20 keys first seen by both at once: both agree afterwards ($differed first answers differed)");

# --- full stop/start of lb2: its memory is gone, memcached is not
stop_lb2();
start_lb2($BAL);
is(how(lb2('/shared/', Cookie => "JSESSIONID=$sid")), "200 $b sticky learned",
   'after a full stop/start lb2 still knows the session (from memcached)');
$ok = 0;
for my $x (101 .. 105) {
    $ok++ if how(lb2('/peers/', Cookie => demo_cookie($x))) eq "200 $on{$x} sticky cookie";
}
is($ok, 5, '... and the cookie keys 101-105');

# --- failover on lb1 re-pins; lb2 follows within the stated bound
my $on4;
for (1 .. 8) {
    my $n = lb1('/shared/');
    if (backend($n) eq 't4') { $on4 = sid_of($n); last }
}
ok($on4, 'a session on t4');
is(how(lb2('/shared/', Cookie => "JSESSIONID=$on4")), '200 t4 sticky learned', 'lb2 agrees: t4');
stop_backend('t4');
my $f = lb1('/shared/', Cookie => "JSESSIONID=$on4");
my $moved = backend($f);
ok($f->code == 200 && $moved =~ /^t[12]$/, "t4 down: lb1 moves the session to $moved");
sleep 3.0;    # cache=2 plus whole-second granularity
is(how(lb2('/shared/', Cookie => "JSESSIONID=$on4")), "200 $moved sticky learned",
   'within 3 s lb2 follows the re-pin (no failover of its own)');
start_backend(route => 't4', port => backend_port('t4'));
sleep 1.5;    # retry=1: t4 usable again
is(backend(lb1('/shared/', Cookie => "JSESSIONID=$on4")), $moved, 't4 back: lb1 does not bounce back');
is(backend(lb2('/shared/', Cookie => "JSESSIONID=$on4")), $moved, 't4 back: lb2 does not bounce back');

# --- memcached stopped under traffic
stop_memcached();
my ($bad, $max, $stuck) = (0, 0, 0);
for my $i (1 .. 30) {
    my $t0 = time;
    my $x = $i % 2 ? lb1('/shared/', Cookie => "JSESSIONID=$sid")
                   : lb2('/shared/', Cookie => "JSESSIONID=$sid");
    my $dt = time - $t0;
    $max = $dt if $dt > $max;
    $bad++ if $x->code >= 500;
    $stuck++ if backend($x) eq $b;
    sleep 0.1;
}
is($bad, 0, 'memcached down: no 5xx in 30 requests');
is($stuck, 30, 'memcached down: the session stays on its member through both balancers');
ok($max < 0.5, sprintf('memcached down: slowest request %.0f ms (timeouts 50+50 ms)', $max * 1000));
my $n = lb1('/shared/');
my ($nb, $nsid) = (backend($n), sid_of($n));
is(how(lb1('/shared/', Cookie => "JSESSIONID=$nsid")), "200 $nb sticky learned",
   'memcached down: a new session is still learned and sticky on lb1');

# --- memcached back (empty): the store recovers without a restart
my $mcpid = start_memcached();
sleep 2.5;    # retry=1 (+ the hold of a server that timed out): tried again
is(how(lb1('/shared/', Cookie => "JSESSIONID=$nsid")), "200 $nb sticky learned",
   'memcached back: lb1 still sticky (re-publishes its binding)');
# a session learned on lb1 reaches lb2 once lb1's child has retried the
# server (retry=1 per process and handle); bounded to 6 s
my ($seen2, $ab) = ('', '');
for (1 .. 12) {
    my $after = lb1('/shared/');
    my $asid;
    ($ab, $asid) = (backend($after), sid_of($after));
    $seen2 = how(lb2('/shared/', Cookie => "JSESSIONID=$asid"));
    last if $seen2 eq "200 $ab sticky learned";
    sleep 0.5;
}
is($seen2, "200 $ab sticky learned",
   'memcached back: a session learned on lb1 reaches lb2 again');
# the binding made during the outage: lb1 publishes it when it next
# re-validates it (each use after cache=2 s); bound the wait to 6 s
my $seen = '';
for (1 .. 12) {
    lb1('/shared/', Cookie => "JSESSIONID=$nsid");
    $seen = how(lb2('/shared/', Cookie => "JSESSIONID=$nsid"));
    last if $seen eq "200 $nb sticky learned";
    sleep 0.5;
}
is($seen, "200 $nb sticky learned",
   'memcached back: the binding made during the outage reached lb2');

# --- a drain decided on lb1 is followed by lb2 (same memcached namespace)
require JSON::PP;
my $st = url('slb_mc', '/stickylb-status');
my $nonce = JSON::PP::decode_json(Apache::TestRequest::GET("$st?format=json")->content)->{nonce};
my $d = Apache::TestRequest::POST($st, [nonce => $nonce, balancer => 'shared',
                                        member => 't1', action => 'drain']);
is($d->code, 200, 'lb1: drain t1 through the status handler');
like($d->content, qr/"shared":true/, 'lb1: the drain was written to memcached') or diag $d->content;
sub lb2_state {
    my $j = JSON::PP::decode_json(lb2('/stickylb-status?format=json')->content);
    my ($m) = grep { $_->{route} eq 't1' } @{ $j->{balancers}[0]{members} };
    return $m->{state};
}
lb2('/shared/');      # lb2 fetches member states at most every 2 s
sleep 2.2;
my %n;
$n{ backend(lb2('/shared/')) }++ for 1 .. 6;
ok(!$n{t1}, 'lb2 follows the drain within 2 s: new sessions ' . join(',', map { "$_=$n{$_}" } sort keys %n));
is(lb2_state(), 'draining', "lb2's status page shows t1 draining");
my $u = Apache::TestRequest::POST($st, [nonce => $nonce, balancer => 'shared',
                                        member => 't1', action => 'undrain']);
is($u->code, 200, 'lb1: undrain t1');
# every lb2 child fetches at most every 2 s; poll with traffic, bounded 5 s
my ($t0, $state) = (time, '');
while (time - $t0 < 5) {
    lb2('/shared/');
    $state = lb2_state();
    last if $state eq 'up';
    sleep 0.2;
}
is($state, 'up', sprintf('lb2 follows the undrain (%.1f s)', time - $t0));
# member states are read on lb2's watchdog, not on its request threads:
# lb2 follows a maintenance with no proxied request at all (status page
# reads only), within the sync interval (1 s) plus the watchdog's 0.1 s
# granularity; bounded 3 s
my $mt = Apache::TestRequest::POST($st, [nonce => $nonce, balancer => 'shared',
                                         member => 't1', action => 'maintenance']);
is($mt->code, 200, 'lb1: maintenance on t1');
($t0, $state) = (time, '');
while (time - $t0 < 3) {
    $state = lb2_state();
    last if $state eq 'disabled';
    sleep 0.1;
}
my $took = time - $t0;
is($state, 'disabled', sprintf('lb2 follows the maintenance without traffic (%.1f s)', $took));
ok($took < 1.6, sprintf('... within 1.6 s (%.1f s)', $took));
my $en = Apache::TestRequest::POST($st, [nonce => $nonce, balancer => 'shared',
                                         member => 't1', action => 'enable']);
is($en->code, 200, 'lb1: t1 enabled again');
($t0, $state) = (time, '');
while (time - $t0 < 3) {
    $state = lb2_state();
    last if $state eq 'up';
    sleep 0.1;
}
is($state, 'up', sprintf('lb2 follows the enable without traffic (%.1f s)', time - $t0));

# --- memcached late by 100 ms once (stopped with SIGSTOP while lb1 asks
# it: that call times out, failure-limit=1 holds the server): the hold
# ends at lb1's next call (a trial), so lb1 finds at once the sessions
# learned meanwhile by lb2.  Before, lb1 failed every lookup at once for
# retry=1 s (+1 s of libmemcached's whole-second clock) and placed those
# sessions anew.
for my $round (1 .. 3) {
    my @s;
    for (1 .. 10) {
        my $x = lb2('/shared/');
        push @s, [backend($x), sid_of($x)];
    }
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        sleep 0.02;
        lb1('/shared/', 'X-Session' => "late$round-" . int(rand(1e9)));
        POSIX::_exit(0);
    }
    kill 'STOP', $mcpid;
    sleep 0.15;
    kill 'CONT', $mcpid;
    waitpid($pid, 0);
    my ($ok, @got) = (0);
    for my $x (@s) {
        my $h = how(lb1('/shared/', Cookie => "JSESSIONID=$x->[1]"));
        push @got, $h;
        $ok++ if $h eq "200 $x->[0] sticky learned";
    }
    is($ok, 10, "memcached late once (round $round): lb1 sends the 10 sessions lb2 learned "
                . "meanwhile to their members") or diag join(', ', @got);
}

# --- write=quiet and write=async on lb2: a learned binding is written
# without waiting for memcached's reply (quiet: from the request; async:
# by the child's writer thread, batched); stated bound for it to be in
# memcached: 50 ms (measured: a few ms on a loaded CI machine); lb1 then
# agrees on every session
use Digest::SHA qw(sha1_hex);
use IO::Socket::INET;
sub mc_has {
    my ($id) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{SLB_MC1_PORT},
                                  Timeout => 1) or return 0;
    print $s 'get slb1:' . sha1_hex("shared\0$id") . "\r\n";
    my $line = <$s> // '';
    close $s;
    return $line =~ /^VALUE /;
}
for my $mode (qw(quiet async)) {
    (my $conf = $BAL) =~ s/cache=2/cache=2 write=$mode/ or die;
    start_lb2($conf);
    my ($in_mc, $agree, $worst) = (0, 0, 0);
    for (1 .. 20) {
        my $x = lb2('/shared/');
        my $t0 = time;
        my ($xb, $xsid) = (backend($x), sid_of($x));
        next unless $xsid;
        my $seen = 0;
        while (time - $t0 < 0.05) {
            if (mc_has($xsid)) { $seen = 1; last }
            sleep 0.001;
        }
        $worst = time - $t0 if time - $t0 > $worst;
        $in_mc += $seen;
        $agree++ if how(lb1('/shared/', Cookie => "JSESSIONID=$xsid")) eq "200 $xb sticky learned";
    }
    is($in_mc, 20, sprintf('write=%s: 20 learned bindings in memcached within 50 ms (slowest %.1f ms)',
                           $mode, $worst * 1000));
    is($agree, 20, "write=$mode: lb1 sends the 20 sessions learned by lb2 to the same member");
    my $j = JSON::PP::decode_json(lb2('/stickylb-status?format=json')->content);
    is($j->{store}{memcached}{write}, $mode, "write=$mode: lb2's status page names the write mode");
    if ($mode eq 'async') {
        my $prom = lb2('/stickylb-status?format=prometheus')->content;
        like($prom, qr/^stickylb_memcached_writer_bindings_total\{result="written"\} [1-9]/m,
             'write=async: the writer counters in the Prometheus exposition');
        SKIP: {
            skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
            require File::Temp;
            my ($fh, $f) = File::Temp::tempfile(UNLINK => 1);
            print $fh $prom;
            close $fh;
            my $out = `/usr/bin/promtool check metrics < '$f' 2>&1`;
            is($? >> 8, 0, 'promtool accepts the memcached metrics') or diag $out;
        }
        ok($j->{store}{memcached}{writer}{written} >= 1 && $j->{store}{memcached}{writer}{dropped} == 0,
           "write=async: lb2's writer wrote ($j->{store}{memcached}{writer}{written} server-wide), "
           . "dropped none");
    }
    else {
        ok($j->{store}{memcached}{quiet_sets} >= 1,
           "write=quiet: quiet sets counted ($j->{store}{memcached}{quiet_sets} server-wide)");
    }
}
start_lb2($BAL);

done_testing();
