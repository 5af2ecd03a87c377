# Member states and failover as mod_proxy_balancer defines them: disabled
# and stopped members are never used, draining members keep their
# sessions only, hot standby, redirect=, nofailover, retry=.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;
use StickyLB::Backends;

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

done_testing();
