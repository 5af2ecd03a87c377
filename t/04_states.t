# Member states and failover as mod_proxy_balancer defines them: disabled
# and stopped members are never used, draining members keep their
# sessions only, hot standby, redirect=, nofailover, retry=.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Apache::Test ();
use StickyLB::Client;
use StickyLB::Backends;

# the error log from here on (failover lines, checked at the end)
my $error_log = Apache::Test::vars('t_logs') . '/error_log';
my $log_start = -s $error_log // 0;
sub log_since {
    my ($from) = @_;
    open my $fh, '<', $error_log or die "$error_log: $!";
    seek $fh, $from, 0;
    my @l = <$fh>;
    close $fh;
    return @l;
}

for my $bal (qw(dis stop)) {
    my %seen;
    for (1 .. 6) {
        my $x = req('slb_states', "/$bal/", Cookie => 'JSESSIONID=0a1b.t2');
        $seen{ $x->code . ' ' . backend($x) }++;
    }
    is_deeply(\%seen, { '200 t1' => 6 }, "$bal: a client naming the member never gets it");
    my $x = req('slb_states', "/$bal/", Cookie => 'JSESSIONID=0a1b.t2');
    is((slb($x))[0], 'failover', "$bal: decision failover");
    is(envinfo($x)->{changed}, '1', "$bal: BALANCER_ROUTE_CHANGED");
    %seen = ();
    $seen{ backend(req('slb_states', "/$bal/")) }++ for 1 .. 6;
    is_deeply(\%seen, { t1 => 6 }, "$bal: new sessions avoid it");
}

# drain: existing sessions only
my %seen;
$seen{ backend(req('slb_states', '/drain/')) }++ for 1 .. 6;
is_deeply(\%seen, { t1 => 6 }, 'drain: no new sessions on the draining member');
%seen = ();
$seen{ backend(req('slb_states', '/drain/', Cookie => 'JSESSIONID=0a1b.t2')) }++ for 1 .. 4;
is_deeply(\%seen, { t2 => 4 }, 'drain: sessions already on it stay');

# hot standby takes over when the only regular member is down
%seen = ();
for (1 .. 3) {
    my $s = req('slb_states', '/standby/');
    $seen{ $s->code . ' ' . backend($s) }++;
}
is_deeply(\%seen, { '200 t2' => 3 }, 'hot standby serves new sessions when the member is down');
my $x = req('slb_states', '/standby/', Cookie => 'JSESSIONID=0a1b.dead');
is(backend($x), 't2', 'hot standby takes the sessions of the dead member');

# lbsets: the lowest lbset with a usable member takes the new sessions
# (lbset 0's only member is disabled: lbset 1; lbset 2 never)
%seen = ();
$seen{ backend(req('slb_states', '/lbsets/')) }++ for 1 .. 6;
is_deeply(\%seen, { t2 => 6 }, 'lbsets: new sessions in the lowest lbset that has a usable member');
# a session of the higher lbset's member stays there
%seen = ();
$seen{ backend(req('slb_states', '/lbsets/', Cookie => 'JSESSIONID=0a1b.t3')) }++ for 1 .. 3;
is_deeply(\%seen, { t3 => 3 }, 'lbsets: a session on a member of a higher lbset stays on it');

# hot spare: replaces the disabled regular member, idle while none is down
%seen = ();
$seen{ backend(req('slb_states', '/spare/')) }++ for 1 .. 6;
is_deeply(\%seen, { t2 => 3, t3 => 3 }, 'hot spare: takes the place of the disabled member');
%seen = ();
$seen{ backend(req('slb_states', '/spareidle/')) }++ for 1 .. 6;
is_deeply(\%seen, { t1 => 3, t2 => 3 }, 'hot spare: no new session while every regular member is usable');

# redirect=: sessions of the disabled t2 go to t3
%seen = ();
$seen{ backend(req('slb_states', '/redirect/', Cookie => 'JSESSIONID=0a1b.t2')) }++ for 1 .. 4;
is_deeply(\%seen, { t3 => 4 }, 'redirect= followed');
$x = req('slb_states', '/redirect/', Cookie => 'JSESSIONID=0a1b.t2');
is((slb($x))[0], 'redirect', 'decision redirect');
%seen = ();
$seen{ backend(req('slb_states', '/redirect/')) }++ for 1 .. 6;
ok(!$seen{t2}, 'new sessions never on the disabled member');

# nofailover: 503 rather than another member
$x = req('slb_states', '/nofail/', Cookie => 'JSESSIONID=0a1b.t2');
is($x->code, 503, 'nofailover: session on a disabled member gets 503');
$x = req('slb_states', '/nofail/', Cookie => 'JSESSIONID=0a1b.nosuch');
is($x->code . ' ' . backend($x), '200 t1', 'nofailover: an unknown route is a new session');
$x = req('slb_states', '/nofail/', Cookie => 'JSESSIONID=0a1b.t1');
is($x->code . ' ' . backend($x), '200 t1', 'nofailover: usable member sticks');

# retry=: a member in error gets its sessions back after the retry time
stop_backend('t4');
$x = req('slb_states', '/retry/', Cookie => 'JSESSIONID=0a1b.t4');
is($x->code . ' ' . backend($x), '200 t1', 'member down: session fails over, no error');
$x = req('slb_states', '/retry/', Cookie => 'JSESSIONID=0a1b.t4');
is((slb($x))[0], 'failover', 'member in error: decision failover');
start_backend(route => 't4', port => backend_port('t4'));
select(undef, undef, undef, 1.5);    # retry=1
$x = req('slb_states', '/retry/', Cookie => 'JSESSIONID=0a1b.t4');
is($x->code . ' ' . backend($x), '200 t4', 'after retry= the member is tried again and serves its session');
is((slb($x))[0], 'sticky', 'decision sticky again');
stop_backend('t4');

# A failover is logged once per session move, at info, with the balancer,
# the old and new routes and the reason; the re-pinned session's next
# requests are sticky and log nothing.
my $from = -s $error_log;
my %moved;
for my $s (1 .. 3) {
    $x = req('slb_states', '/movecookie/', Cookie => 'ROUTEID=t2');
    my ($c) = set_cookies($x, 'ROUTEID');
    my ($route) = ($c // '') =~ /^ROUTEID=(t[13]);/;
    ok($route && (slb($x))[0] eq 'failover', "route cookie session $s: moved off the stopped t2 (to " . ($route // '?') . ')');
    $moved{$route // '?'}++;
    for (1 .. 3) {
        my $y = req('slb_states', '/movecookie/', Cookie => "ROUTEID=$route");
        is(join(' ', (slb($y))[0], backend($y)), "sticky $route", "route cookie session $s: sticky to $route after the move");
    }
}
req('slb_states', '/bindstore/', 'X-Sid' => "s$_") for 1 .. 2;   # bound to t2
for my $s (1 .. 2) {
    $x = req('slb_states', '/movestore/', 'X-Sid' => "s$s");
    is(join(' ', (slb($x))[0, 1], backend($x)), 'failover header t1', "stored session $s: moved off the disabled t2");
    for (1 .. 3) {
        my $y = req('slb_states', '/movestore/', 'X-Sid' => "s$s");
        is(join(' ', (slb($y))[0, 1], backend($y)), 'sticky header t1', "stored session $s: sticky to t1, re-pinned");
    }
}
my @lines = grep { /SLB0102/ } log_since($from);
my @cookie = grep { /\[stickylb:info\].*SLB0102: balancer:\/\/movecookie: failover: session moved from route 't2' to '(t[13])' \(member of 't2' is stopped; key: route-cookie\)/ } @lines;
is(scalar(@cookie), 3, 'one info line per moved route cookie session') or diag @lines;
my %logged;
for (@cookie) { $logged{$1}++ if /to '(t[13])'/ }
is_deeply(\%logged, \%moved, '... naming the member each one moved to');
my @store = grep { /\[stickylb:info\].*SLB0102: balancer:\/\/movestore: failover: session moved from route 't2' to 't1' \(member of 't2' is disabled; key: header\)/ } @lines;
is(scalar(@store), 2, 'one info line per moved stick-table session') or diag @lines;
is(scalar(@lines), 5, 'and no other failover line') or diag @lines;
# a route only the application's id carries is not re-pinned by the module:
# every request of it fails over again, said at debug only
my @jvm = grep { /\[stickylb:info\].*(SLB0102|SLB0108).*balancer:\/\/(dis|stop|retry)\b/ } log_since($log_start);
is(scalar(@jvm), 0, 'jvmRoute sessions failing over on every request: no info line') or diag @jvm;

done_testing();
