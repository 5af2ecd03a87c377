# The module's own route cookie: insert, attributes, indirect, nocache,
# re-issue on failover, exactly once per response, error responses.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;

my $r = req('slb_cookie', '/rc/');
is($r->code, 200, 'first request answered');
my $b = backend($r);
like($b, qr/^t[123]$/, "member $b");
my @rc = set_cookies($r, 'ROUTEID');
is(scalar @rc, 1, 'exactly one route cookie set');
is($rc[0], "ROUTEID=$b; Path=/; Domain=example.test; Max-Age=600; Secure; HttpOnly; SameSite=Strict",
   'route cookie with the configured attributes');
like($r->header('Cache-Control') // '', qr/\bprivate\b/, 'nocache: response marked private');

# The cookie brings the client back; it is not re-issued, and the backend
# does not see it (indirect) while other cookies pass unchanged.
my $ok = 0;
for (1 .. 8) {
    my $x = req('slb_cookie', '/rc/', Cookie => "a=1; ROUTEID=$b; b=2");
    $ok++ if backend($x) eq $b
          && !set_cookies($x, 'ROUTEID')
          && body_field($x, 'cookie') eq 'a=1; b=2'
          && (slb($x))[0] eq 'sticky'
          && (slb($x))[1] eq 'route-cookie';
}
is($ok, 8, 'route cookie sticks, not re-issued, hidden from the backend');
# indirect takes out the route cookie and its separator only: every other
# byte of the header reaches the backend as the client sent it (quoted
# commas, ';' inside quotes, spacing)
for my $case (['pref="a,b"; ROUTEID=%s', 'pref="a,b"'],
              ['ROUTEID=%s;  pref="a, b" ;x=1', 'pref="a, b" ;x=1'],
              ['q="x;y";ROUTEID=%s ;  z="1,2,3"', 'q="x;y" ;  z="1,2,3"'],
              ['a=1,ROUTEID=%s; ROUTEID=%s;b="c, d"', 'a=1;b="c, d"']) {
    my ($send, $want) = @$case;
    (my $c = $send) =~ s/%s/$b/g;
    my $y = req('slb_cookie', '/rc/', Cookie => $c);
    is(backend($y) . ' | ' . (body_field($y, 'h-cookie') // '(none)'), "$b | $want",
       "indirect, byte for byte: '$c' reaches $b as '$want'");
}

my $x = req('slb_cookie', '/rc/', Cookie => 'ROUTEID=t2');
is(backend($x), 't2', 'ROUTEID=t2 goes to t2');
is(body_field($x, 'cookie'), '', 'a Cookie header holding only the route cookie is removed');
ok(!defined $x->header('Cache-Control'), 'no Cache-Control added when no cookie is set');

$x = req('slb_cookie', '/rc/', Cookie => 'ROUTEID=.t3');
is(backend($x), 't3', 'the classic ".route" form is understood');
is(scalar(set_cookies($x, 'ROUTEID')), 0, 'and not re-issued');

$x = req('slb_cookie', '/rc/', Cookie => 'ROUTEID=nosuch');
my $nb = backend($x);
@rc = set_cookies($x, 'ROUTEID');
is(scalar @rc, 1, 'unknown route: a new route cookie');
like($rc[0] // '', qr/^ROUTEID=\Q$nb\E;/, 'naming the member that answered');

# Failover: the member of the cookie is down; the session moves and the
# cookie is re-issued once (the finder ran twice for the first request).
for my $i (1 .. 3) {
    my $f = req('slb_cookie', '/rcfail/', Cookie => 'ROUTEID=dead');
    is($f->code, 200, "failover $i answered");
    is(backend($f), 't2', "failover $i went to t2");
    my @c = set_cookies($f, 'ROUTEID');
    is(scalar @c, 1, "failover $i: one route cookie");
    like($c[0] // '', qr/^ROUTEID=t2;/, "failover $i: re-pinned to t2");
    is(envinfo($f)->{changed}, '1', "failover $i: BALANCER_ROUTE_CHANGED");
}
my $f = req('slb_cookie', '/rcfail/', Cookie => 'ROUTEID=dead');
is((slb($f))[0], 'failover', 'decision is failover');

# Error responses from the backend carry the cookie too.
$x = req('slb_cookie', '/rc/status/500');
is($x->code, 500, 'backend 500 passed through');
is(scalar(set_cookies($x, 'ROUTEID')), 1, 'route cookie on a backend 500');

# Error responses made by Apache (ProxyErrorOverride) as well.
for my $st (500, 404) {
    $x = req('slb_cookie', "/rceo/status/$st");
    is($x->code, $st, "ProxyErrorOverride $st");
    my @c = set_cookies($x, 'ROUTEID');
    is(scalar @c, 1, "route cookie once on Apache's $st page");
    like($c[0] // '', qr/^ROUTEID=t1;/, "naming t1 ($st)");
}

# Read-only route cookie: used, not set, not hidden.
$x = req('slb_cookie', '/rcread/', Cookie => 'ROUTEID=t2');
is(backend($x), 't2', 'read-only route cookie routes');
is(body_field($x, 'cookie'), 'ROUTEID=t2', 'not hidden without indirect');
$x = req('slb_cookie', '/rcread/');
is(scalar(set_cookies($x, 'ROUTEID')), 0, 'not inserted without insert');

done_testing();
