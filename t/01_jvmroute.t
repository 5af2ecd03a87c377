# Tomcat jvmRoute stickiness: JSESSIONID=<id>.<route> cookie and the
# ;jsessionid= path parameter, new-session spreading, loadfactor and lbset.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;

# A new session: the module chooses, the backend issues its session.
my $r = req('slb_jvm', '/jvm/');
is($r->code, 200, 'new session answered');
my $b = backend($r);
like($b, qr/^t[123]$/, "a member answered ($b)");
my ($dec, $src, $route) = slb($r);
is($dec, 'new', 'decision is new');
is($src, 'none', 'no key in the request');
is($route, $b, 'STICKYLB_ROUTE is the member route');
my $e = envinfo($r);
is($e->{changed}, '1', 'BALANCER_ROUTE_CHANGED set on a new assignment');
is($e->{wroute}, $b, 'BALANCER_WORKER_ROUTE');
is($e->{name}, 'balancer://jvm', 'BALANCER_NAME');
like($e->{worker}, qr{^http://127\.0\.0\.1:\d+$}, 'BALANCER_WORKER_NAME');
my ($sc) = set_cookies($r, 'JSESSIONID');
like($sc, qr/^JSESSIONID=[0-9a-f]{32}\.\Q$b\E;/, 'backend issued a Tomcat-style session');
my ($sid) = ($sc // '') =~ /^JSESSIONID=([^;]+)/;

# The session sticks.
my ($same, $kept, $sticky) = (0, 0, 0);
for (1 .. 12) {
    my $x = req('slb_jvm', '/jvm/page', Cookie => "JSESSIONID=$sid");
    $same++   if backend($x) eq $b;
    $kept++   if (body_field($x, 'new-session') // '') eq '0';
    my ($d, $s) = slb($x);
    $sticky++ if $d eq 'sticky' && $s eq 'session-cookie';
}
is($same, 12, 'all 12 follow-up requests reached the same member');
is($kept, 12, 'the backend knew the session every time');
is($sticky, 12, 'decision sticky from the session cookie');

my $x = req('slb_jvm', '/jvm/page', Cookie => "JSESSIONID=$sid");
$e = envinfo($x);
is($e->{sticky}, 'JSESSIONID', 'BALANCER_SESSION_STICKY names the cookie');
is($e->{route}, $b, 'BALANCER_SESSION_ROUTE is the route');
is($e->{changed}, '(null)', 'BALANCER_ROUTE_CHANGED not set when sticky');

# Every route can be named.
for my $t (qw(t1 t2 t3)) {
    my $y = req('slb_jvm', '/jvm/', Cookie => "JSESSIONID=0123abcd.$t");
    is(backend($y), $t, "JSESSIONID=...$t goes to $t");
}

# Path parameter.
$x = req('slb_jvm', '/jvm/page;jsessionid=0123abcd.t2');
is(backend($x), 't2', ';jsessionid= path parameter routes');
($dec, $src) = slb($x);
is($src, 'url', 'key source is the URL');
is(envinfo($x)->{sticky}, 'jsessionid', 'BALANCER_SESSION_STICKY names the parameter');
$x = req('slb_jvm', '/jvm/page;JSESSIONID=0123abcd.t3');
is(backend($x), 't3', 'path parameter name is case-insensitive');
$x = req('slb_jvm', '/jvm/a;jsessionid=0123abcd.t3/b?q=1');
is(backend($x), 't3', 'path parameter inside the path');
$x = req('slb_jvm', '/jvm/page;jsessionid=0123abcd.t3', Cookie => 'JSESSIONID=0123abcd.t1');
is(backend($x), 't3', 'the URL wins over the cookie');

# New sessions are spread evenly (smooth round robin over equal weights).
my %n;
$n{ backend(req('slb_jvm', '/spread/')) }++ for 1 .. 30;
is(join(',', map { "$_=" . ($n{$_} // 0) } qw(t1 t2 t3)), 't1=10,t2=10,t3=10',
   '30 new sessions: 10 on each member');
# Sticky requests count in the weighting, as in mod_proxy_balancer: after
# 6 requests of a session on t1, the next new sessions go to t2 and t3.
req('slb_jvm', '/spread/', Cookie => 'JSESSIONID=0a.t1') for 1 .. 6;
%n = ();
$n{ backend(req('slb_jvm', '/spread/')) }++ for 1 .. 6;
is($n{t1} // 0, 0, 'new sessions avoid the member that had the sticky traffic: '
   . join(',', map { "$_=" . ($n{$_} // 0) } qw(t1 t2 t3)));

# loadfactor 1:3
%n = ();
$n{ backend(req('slb_jvm', '/weighted/')) }++ for 1 .. 40;
ok(($n{t2} // 0) >= 27 && ($n{t2} // 0) <= 33,
   "loadfactor 1:3 over 40 new sessions: t1=" . ($n{t1} // 0) . " t2=" . ($n{t2} // 0));

# lbset: only lbset 0 while it is usable
%n = ();
$n{ backend(req('slb_jvm', '/lbset/')) }++ for 1 .. 10;
is($n{t2} // 0, 10, 'lbset 0 member takes all new sessions');
$x = req('slb_jvm', '/lbset/', Cookie => 'JSESSIONID=0123abcd.t1');
is(backend($x), 't1', 'a session on the lbset 1 member still sticks');

# StickyLBVariables off: sticky all the same, no STICKYLB_* variables;
# the BALANCER_SESSION_* ones are still set (mod_proxy_balancer's)
{
    my $n = req('slb_jvm', '/novars/');
    my ($sc) = set_cookies($n, 'JSESSIONID');
    my ($sid) = ($sc // '') =~ /^JSESSIONID=([^;]+)/;
    my $y = req('slb_jvm', '/novars/', Cookie => "JSESSIONID=$sid");
    is(backend($y), backend($n), 'StickyLBVariables off: the session sticks');
    is($y->header('X-SLB'), '(null) (null) (null)', 'StickyLBVariables off: no STICKYLB_* variables');
    is(envinfo($y)->{sticky}, 'JSESSIONID', 'StickyLBVariables off: BALANCER_SESSION_STICKY still set');
}

done_testing();
