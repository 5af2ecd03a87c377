# t/00_backends.t - self-test of the harness: the Tomcat-like backends
# (t/backend.pl via StickyLB::Backends) and a plain mod_proxy_balancer
# (balancer://plain, t/conf/extra.conf.in) in front of them.
use strict;
use warnings;

use Apache::Test qw(-withtestmore);    # imports Test::More (but its own plan)
use Apache::TestRequest qw(GET HEAD POST);
use StickyLB::Backends qw(:all);

plan tests => 38;

my $cookie_re = sub {
    my ($route) = @_;
    return qr/^JSESSIONID=([0-9a-f]{32}\.\Q$route\E); Path=\/; HttpOnly$/;
};

# --- modules registered with Apache::Test from t/conf/extra.conf.in
ok(Apache::Test::have_module('proxy_balancer'),
   'need_module/have_module knows mod_proxy_balancer');

# --- each standard backend answers directly, Tomcat-like
my %sid;
for my $route (qw(t1 t2 t3)) {
    my $res = GET backend_url($route, "/direct/$route");
    is($res->code, 200, "$route: direct GET 200");
    is($res->header('X-Backend'), $route, "$route: X-Backend");
    like($res->content, qr/^backend: \Q$route\E$/m, "$route: body names route");
    my $sc = $res->header('Set-Cookie') || '';
    like($sc, $cookie_re->($route), "$route: Tomcat-like Set-Cookie");
    like($res->content, qr/^new-session: 1$/m, "$route: new session");
    ($sid{$route}) = $sc =~ $cookie_re->($route);
}

# --- a known session is not replaced
{
    my $res = GET backend_url('t1', '/again'), Cookie => "JSESSIONID=$sid{t1}";
    ok(!defined $res->header('Set-Cookie'), 't1: own cookie, no new Set-Cookie');
    like($res->content, qr/^new-session: 0$/m, 't1: own cookie, new-session 0');
    like($res->content, qr/^session: \Q$sid{t1}\E$/m, 't1: session in use');
}
{
    my $res = GET backend_url('t1', '/foreign'), Cookie => "JSESSIONID=$sid{t2}";
    like($res->header('Set-Cookie') || '', $cookie_re->('t1'),
         't1: t2 session is unknown, new t1 session issued');
}
{
    my $res = GET backend_url('t1', "/app;jsessionid=$sid{t1}?x=1");
    like($res->content, qr/^new-session: 0$/m, 't1: ;jsessionid= path parameter');
}

# --- POST body, HEAD, /status/NNN
{
    my $res = POST backend_url('t2', '/post'), content => 'a=1&b=2';
    like($res->content, qr/^method: POST$/m, 't2: POST method');
    like($res->content, qr/^body-length: 7$/m, 't2: POST body read');
}
{
    my $res = HEAD backend_url('t2', '/head');
    is($res->code, 200, 't2: HEAD 200');
    ok(!length($res->content) && $res->header('Content-Length') > 0,
       't2: HEAD has Content-Length, no body');
}
{
    my $res = GET backend_url('t3', '/status/503');
    is($res->code, 503, 't3: /status/503');
}

# --- through Apache: plain byrequests balancer
{
    my (%seen, $all_ok, $all_routes, $uri_ok);
    $all_ok = $all_routes = $uri_ok = 1;
    for (1 .. 6) {
        my $res = GET '/plain/hello';
        $all_ok = 0 unless $res->code == 200;
        my $b = $res->header('X-Backend') || '';
        $all_routes = 0 unless $b =~ /^t[123]$/;
        $seen{$b}++;
        $uri_ok = 0 unless $res->content =~ /^uri: \/hello$/m;
    }
    ok($all_ok, '/plain: 6 requests answered 200');
    ok($all_routes, '/plain: answered by t1..t3');
    ok($uri_ok, '/plain: backend saw /hello');
    cmp_ok(scalar(keys %seen), '>=', 2, '/plain: byrequests spreads requests')
        or diag explain \%seen;
}
{
    my $res = GET '/balancer-manager';
    ok($res->code == 200 && $res->content =~ m{balancer://plain},
       '/balancer-manager lists balancer://plain') or diag $res->as_string;
}

# --- start/stop of the reserved backend t4
my $p4 = backend_port('t4');
stop_backend('t4');    # leftover from an aborted run
ok(!StickyLB::Backends::port_open($p4), "t4: port $p4 closed before start");
my $pid4 = start_backend(route => 't4', port => $p4);
ok($pid4 && $pid4 > 1, "t4: started (pid $pid4)");
{
    my $res = GET backend_url('t4', '/hello');
    is($res->header('X-Backend'), 't4', 't4: answers');
}
{
    # restart in --no-route-suffix mode: ids "t4x<hex>", still attributable
    start_backend(route => 't4', port => $p4, no_route_suffix => 1);
    my $res = GET backend_url('t4', '/nosuffix');
    my $sc = $res->header('Set-Cookie') || '';
    like($sc, qr/^JSESSIONID=t4x[0-9a-f]{32}; Path=\/; HttpOnly$/,
         't4: --no-route-suffix session id');
    my ($id) = $sc =~ /^JSESSIONID=([^;]+)/;
    $res = GET backend_url('t4', '/nosuffix'), Cookie => 'JSESSIONID=' . ($id || 'x');
    like($res->content, qr/^new-session: 0$/m, 't4: --no-route-suffix id is known');
}
ok(stop_backend('t4'), 't4: stop_backend');
ok(!StickyLB::Backends::port_open($p4), "t4: port $p4 refuses after stop");

END { local $?; eval { stop_backend("t4") } }
