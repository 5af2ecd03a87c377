# StickyLBNewSessions hash (consistent hashing of the request's key, with
# or without a stick table; StickyLBKey address as source-address
# placement) and busyness (fewest requests in flight), and the
# configtest rules of StickyLBStore none.
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
use StickyLB::Configtest qw(configtest);

# one kept-alive connection for the thousands of requests below
Apache::TestRequest::user_agent(reset => 1, keep_alive => 1);

# (route of the member that answered, decision, key source) of a request
sub place {
    my ($path, @h) = @_;
    my $x = req('slb_place', $path, @h);
    my ($decision, $source, $route) = slb($x);
    return ($x->code == 200 ? $route : 'status ' . $x->code, $decision,
            $source);
}

sub member_of { return (place(@_))[0] }

# --- hash: two balancers that share no store agree on every new key
my (%a, %count, $agree, $new_none);
for my $i (1 .. 1000) {
    my ($ra, $da, $sa) = place('/hash-a/', 'X-Key' => "k$i");
    my $rb = member_of('/hash-b/', 'X-Key' => "k$i");
    $a{$i} = $ra;
    $count{$ra}++;
    $agree++ if $ra eq $rb;
    $new_none++ if $da eq 'new' && $sa eq 'header';
}
is($agree, 1000, 'two balancers with no shared store (members listed in another order) agree on 1000 of 1000 new keys');
is($new_none, 1000, 'StickyLBStore none: every request is a new session placed by its header key');
is_deeply([sort keys %count], [qw(m1 m2 m3 m4 m5)], 'the keys spread over the five members')
    or diag explain \%count;
ok(!grep({ $_ < 120 || $_ > 280 } values %count), 'about a fifth each (120 to 280 of 1000)')
    or diag explain \%count;

# the hash alone is the stickiness: the same key, the same member
my $same = 0;
$same += member_of('/hash-a/', 'X-Key' => "k$_") eq $a{$_} for 1 .. 200;
is($same, 200, 'a key asked again goes to its member, with nothing remembered');

# --- a member leaving (m3 disabled) moves only its own keys
my ($moved, $moved_other, $on_m3) = (0, 0, 0);
for my $i (1 .. 1000) {
    my $r4 = member_of('/hash-4/', 'X-Key' => "k$i");
    $on_m3++ if $a{$i} eq 'm3';
    next if $r4 eq $a{$i};
    $moved++;
    $moved_other++ unless $a{$i} eq 'm3';
}
is($moved_other, 0, 'removing one member of five moves no key of the others');
is($moved, $on_m3, "it moves exactly the keys that were on it ($on_m3)");
cmp_ok($moved, '<=', 250, 'at most 25% of the keys moved');

# --- loadfactor 2:1 gives a 2:1 split
my %w;
$w{ member_of('/hash-w/', 'X-Key' => "user-$_") }++ for 1 .. 10000;
my $ratio = ($w{w2} || 0) / ($w{w1} || 1);
ok($ratio > 1.9 && $ratio < 2.1, sprintf('loadfactor 2:1 gives %d:%d (%.3f, within 5%% of 2) over 10000 keys', $w{w2} || 0, $w{w1} || 0, $ratio))
    or diag explain \%w;

# --- no key in the request: placed as with requests (round robin)
my %nk;
for (1 .. 4) {
    my ($r, $d, $s) = place('/hash-nokey/');
    $nk{"$r $d $s"}++;
}
is_deeply(\%nk, { 't1 new none' => 2, 't2 new none' => 2 }, 'a request with no key falls back to requests');

# --- with a stick table the binding is still written: a failover re-pin
# sticks; without one, the key goes back to its member
start_backend(route => 't4', port => backend_port('t4'));
my $key;
for my $i (1 .. 100) {
    if (member_of('/hash-shm/', 'X-Key' => "f$i") eq 't4') {
        $key = "f$i";
        last;
    }
}
ok(defined $key, 'a key the hash gives t4') or BAIL_OUT('no key on t4');
is(member_of('/hash-none/', 'X-Key' => $key), 't4', 'the balancer without a table gives it t4 too');
my ($r, $d) = place('/hash-shm/', 'X-Key' => $key);
is("$r $d", 't4 sticky', 'with a table the key is bound (sticky)');
# the same key on one keep-alive connection (the connection remembers the
# member the hash gave it, with the members it was chosen among)
my ($ka, $kahp) = keepalive('slb_place');
sub ka_member {
    my ($code, $h) = keepalive_get($ka, $kahp, '/hash-none/', 'X-Key' => $key);
    return ($code // 0) == 200 ? (split / /, $h->{'x-slb'} // '')[2] // ''
                               : 'status ' . ($code // 'none');
}
my @ka = map { ka_member() } 1 .. 5;
is("@ka", 't4 t4 t4 t4 t4', 'keep-alive: the key on t4, five requests');
stop_backend('t4');
my $moved_to = member_of('/hash-shm/', 'X-Key' => $key);
like($moved_to, qr/^t[12]$/, "t4 down: the session fails over to $moved_to");
is(member_of('/hash-none/', 'X-Key' => $key), $moved_to, 'the balancer without a table moves it to the same member (the next by the hash)');
@ka = map { ka_member() } 1 .. 3;
is("@ka", "$moved_to $moved_to $moved_to", 'keep-alive: the connection follows the member set (t4 in error)');
start_backend(route => 't4', port => backend_port('t4'));
sleep 1.5;    # retry=1
($r, $d) = place('/hash-shm/', 'X-Key' => $key);
is("$r $d", "$moved_to sticky", 't4 back: the re-pinned session stays on its new member');
is(member_of('/hash-none/', 'X-Key' => $key), 't4', 'without a table it goes back to t4');
@ka = map { ka_member() } 1 .. 3;
is("@ka", 't4 t4 t4', 'keep-alive: back on t4 with the member');
close $ka;
stop_backend('t4');

# --- a keep-alive connection remembers the member its key got among the
# members it was chosen from: a member disabled (balancer-manager) or
# given another loadfactor is seen on the next request of the connection
{
    my $mgr = url('slb_place', '/balancer-manager');
    my $manage = sub { return manage_balancer($mgr, 'hash-ka', @_) };
    my %url = (k1 => 'http://127.0.0.1:' . backend_port('t1') . '/ka1',
               k2 => 'http://127.0.0.1:' . backend_port('t2') . '/ka2',
               k3 => 'http://127.0.0.1:' . backend_port('t3') . '/ka3');
    my ($ka, $hp) = keepalive('slb_place');
    my $on = sub {
        my @got;
        for (1 .. $_[0]) {
            my ($code, $h) = keepalive_get($ka, $hp, '/hash-ka/', 'X-Key' => 'ka-key');
            push @got, ($code // 0) == 200 ? (split / /, $h->{'x-slb'} // '')[2] // ''
                                           : 'status ' . ($code // 'none');
        }
        return "@got";
    };
    my $first = $on->(1);
    like($first, qr/^k[123]$/, "keep-alive: the key on $first");
    is($on->(4), join(' ', ($first) x 4), 'keep-alive: four more requests on the same member');
    $manage->(w => $url{$first}, w_status_D => 1);
    my $next = $on->(1);
    ok($next =~ /^k[123]$/ && $next ne $first, "keep-alive: $first disabled, the next request on $next");
    is($on->(3), join(' ', ($next) x 3), 'keep-alive: and stays there');
    is(member_of('/hash-ka/', 'X-Key' => 'ka-key'), $next, 'a new connection agrees');
    $manage->(w => $url{$first}, w_status_D => 0);
    is($on->(3), join(' ', ($first) x 3), "keep-alive: $first enabled again, back on it");
    close $ka;
}

# --- source-address placement: StickyLBKey address + hash
my %src;
my ($src_agree, $src_same) = (0, 0);
for my $i (1 .. 300) {
    my $ip = sprintf('10.%d.%d.%d', $i % 7, int($i / 7) % 256, $i % 251);
    my ($ra, $da, $sa) = place('/src-a/', 'X-Forwarded-For' => $ip);
    $src{"$sa $ra"}++;
    $src_agree++ if member_of('/src-b/', 'X-Forwarded-For' => $ip) eq $ra;
    $src_same++ if member_of('/src-a/', 'X-Forwarded-For' => $ip) eq $ra;
}
is($src_agree, 300, 'by client address: two balancers agree on 300 of 300 addresses');
is($src_same, 300, 'an address comes back to its member');
is_deeply([sort keys %src], ['address m1', 'address m2', 'address m3'], 'the addresses spread over the three members (key source: address)')
    or diag explain \%src;

# --- busyness: requests in flight on t1 keep new sessions off it
sub slow_on_t1 {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        Apache::TestRequest::user_agent(reset => 1, keep_alive => 0);
        req('slb_place', '/busy/sleep/2500', Cookie => 'ROUTEID=t1');
        POSIX::_exit(0);
    }
    return $pid;
}
my @slow = map { slow_on_t1() } 1 .. 2;
sleep 0.5;    # both are at t1 now
my %busy;
for (1 .. 6) {
    my ($r, $d) = place('/busy/');
    $busy{"$r $d"}++;
}
is_deeply(\%busy, { 't2 new' => 6 }, 'two slow requests on t1: six new sessions in a row go to t2')
    or diag explain \%busy;
($r, $d) = place('/busy/', Cookie => 'ROUTEID=t1');
is("$r $d", 't1 sticky', 'a session of t1 still goes to t1 while it is busy');
my $deadline = time + 10;
for my $pid (@slow) {
    while (waitpid($pid, POSIX::WNOHANG()) == 0 && time < $deadline) {
        sleep 0.05;
    }
}
# nothing in flight: a tie, broken by the weighted round robin, in which
# t1 is behind now
%busy = ();
for (1 .. 4) {
    my ($r, $d) = place('/busy/');
    $busy{$r}++;
}
cmp_ok($busy{t1} || 0, '>=', 2, 'nothing in flight: t1 takes new sessions again')
    or diag explain \%busy;

# --- configtest: what StickyLBStore none can do
sub balancer { my $d = shift; return qq{<Proxy "balancer://b">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n $d\n</Proxy>\n} }
my ($rc, $out) = configtest(balancer("StickyLBStore none\n StickyLBKey address\n StickyLBNewSessions hash"));
is($rc, 0, 'StickyLBStore none with a key and hash passes configtest') or diag $out;
($rc, $out) = configtest(balancer("StickyLBStore none\n StickyLBKey address"));
ok($rc != 0 && $out =~ /StickyLBStore none in balancer:\/\/b: .*StickyLBNewSessions hash/, 'StickyLBStore none with a key but no hash is refused, naming the fix') or diag $out;
($rc, $out) = configtest("StickyLBStore none\n" . balancer("StickyLBLearnCookie PHPSESSID\n StickyLBNewSessions hash"));
ok($rc != 0 && $out =~ /StickyLBStore none in balancer:\/\/b: StickyLBLearnCookie needs a stick table/, 'StickyLBStore none (inherited) with learned cookies is refused') or diag $out;
($rc, $out) = configtest(balancer("StickyLBNewSessions hash"));
ok($rc == 0 && $out =~ /SLB0005: StickyLBNewSessions hash in balancer:\/\/b has no key to hash/, 'hash with no key: a warning') or diag $out;
($rc, $out) = configtest(balancer("StickyLBNewSessions busyness"));
is($rc, 0, 'busyness passes configtest') or diag $out;
($rc, $out) = configtest(balancer("StickyLBNewSessions hsah"));
ok($rc != 0 && $out =~ /did you mean hash\?/, 'a misspelt placement names the word meant') or diag $out;

done_testing();
