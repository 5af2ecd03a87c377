# The classic mod_proxy_balancer recipes keep working with lbmethod=stickylb:
# ROUTEID set by mod_headers from BALANCER_* variables, and
# stickysession=JSESSIONID|jsessionid.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;

for my $path ('/classic/', '/classic2/') {
    my $r = req('slb_classic', $path);
    is($r->code, 200, "$path new session");
    my $b = backend($r);
    my @rc = set_cookies($r, 'ROUTEID');
    is(scalar @rc, 1, "$path: mod_headers set ROUTEID once (BALANCER_ROUTE_CHANGED)");
    is($rc[0] // '', "ROUTEID=.$b; path=/", "$path: ROUTEID=.%{BALANCER_WORKER_ROUTE}e");

    my $ok = 0;
    for (1 .. 8) {
        my $x = req('slb_classic', $path, Cookie => "ROUTEID=.$b");
        $ok++ if backend($x) eq $b && !set_cookies($x, 'ROUTEID');
    }
    is($ok, 8, "$path: ROUTEID=.$b sticks, no new cookie");

    my $x = req('slb_classic', $path, Cookie => "ROUTEID=.$b");
    my $e = envinfo($x);
    is($e->{route}, $b, "$path: BALANCER_SESSION_ROUTE");
    is($e->{sticky}, 'ROUTEID', "$path: BALANCER_SESSION_STICKY");
    is($e->{wroute}, $b, "$path: BALANCER_WORKER_ROUTE");

    $x = req('slb_classic', $path, Cookie => 'ROUTEID=.nosuch');
    @rc = set_cookies($x, 'ROUTEID');
    is(scalar @rc, 1, "$path: unknown route gets a new ROUTEID");
    is($rc[0] // '', 'ROUTEID=.' . backend($x) . '; path=/', "$path: naming the new member");
}

my $x = req('slb_classic', '/classic2/', Cookie => 'ROUTEID=.t2');
is(join(' ', (slb($x))[0, 1]), 'sticky route-cookie', 'without stickysession= the module reads ROUTEID itself');

# stickysession=JSESSIONID|jsessionid
$x = req('slb_classic', '/classicjvm/', Cookie => 'JSESSIONID=0a1b.t2');
is(backend($x), 't2', 'stickysession=JSESSIONID cookie');
$x = req('slb_classic', '/classicjvm/x;jsessionid=0a1b.t3');
is(backend($x), 't3', 'stickysession=jsessionid path parameter');
$x = req('slb_classic', '/classicjvm/');
is(envinfo($x)->{changed}, '1', 'new session: BALANCER_ROUTE_CHANGED');
like(join(' ', set_cookies($x, 'JSESSIONID')), qr/\.\Q${\ backend($x)}\E;/, 'backend issued its session');

done_testing();
