# Signed route cookies (HMAC-SHA256, key rotation), strict mode, opaque
# route names, and maxidle/maxlife of the route cookie.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes qw(sleep);
use StickyLB::Client;

my @keys = ('current-key-0123456789abcdef', 'previous-key-fedcba9876543210');

# v2: the mac covers "v2\0<namespace>\0<cookie name>\0" and the value
# before it (the namespace is the balancer's name unless StickyLBNamespace)
sub forge_for {
    my ($ns, $name, $route, $key, $issued, $refreshed) = @_;
    my $body = sprintf('v2~%s~%x~%x', $route, $issued // time, $refreshed // time);
    return $body . '~' . substr(hmac_sha256_hex("v2\0$ns\0$name\0$body", $key), 0, 32);
}
# the v1 format (the migration window): the mac over the value alone
sub forge_v1 {
    my ($route, $key, $issued, $refreshed) = @_;
    my $body = sprintf('v1~%s~%x~%x', $route, $issued // time, $refreshed // time);
    return $body . '~' . substr(hmac_sha256_hex($body, $key), 0, 32);
}
my $ns = 'balancer://signed';
sub forge { return forge_for($ns, 'ROUTEID', @_) }
sub mac_ok {
    my ($v, $nsx, $name) = @_;
    my ($body, $mac) = ($v // '') =~ /^(.*)~([0-9a-f]{32})$/ or return 0;
    return $mac eq substr(hmac_sha256_hex("v2\0$nsx\0$name\0$body", $keys[0]), 0, 32);
}
sub cookie_value {
    my ($res) = @_;
    my ($c) = set_cookies($res, 'ROUTEID');
    return defined $c && $c =~ /^ROUTEID=([^;]+)/ ? $1 : undef;
}

# --- signed
my $r = req('slb_sign', '/signed/');
my $b = backend($r);
my $v = cookie_value($r);
like($v // '', qr/^v2~\Q$b\E~[0-9a-f]+~[0-9a-f]+~[0-9a-f]{32}$/, "signed cookie for $b (v2)");
ok(mac_ok($v, 'balancer://signed', 'ROUTEID'), 'signed with the first key (HMAC-SHA256 over namespace, cookie name and value)');
my $ok = 0;
for (1 .. 5) {
    my $x = req('slb_sign', '/signed/', Cookie => "ROUTEID=$v");
    $ok++ if backend($x) eq $b && !set_cookies($x, 'ROUTEID');
}
is($ok, 5, 'the signed cookie sticks and is not re-issued');
my $x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge('t2', $keys[1]));
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'a cookie signed with the previous key still verifies (rotation)');
like(cookie_value($x) // '', qr/^v2~t2~/, '... and is re-signed with the current key');
ok(mac_ok(cookie_value($x), 'balancer://signed', 'ROUTEID'), '... current key');
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge('t2', 'an-attacker-key-000000000'));
is((slb($x))[0], 'new', 'a forged signature is ignored');
(my $tampered = forge('t2', $keys[0])) =~ s/^v2~t2~/v2~t3~/;
$x = req('slb_sign', '/signed/', Cookie => "ROUTEID=$tampered");
is((slb($x))[0], 'new', 'a route changed under a valid signature is ignored');
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=t3');
is(backend($x) . ' ' . (slb($x))[0], 't3 sticky', 'without strict an unsigned route is accepted (migration)');
like(cookie_value($x) // '', qr/^v2~t3~/, '... and replaced by a signed one');
# the v1 format, during the migration window: accepted without strict and
# re-issued as v2 (the issue time kept)
my $t0 = time - 30;
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge_v1('t2', $keys[0], $t0, $t0));
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'v1 value without strict: accepted (migration window)');
like(cookie_value($x) // '', qr/^v2~t2~\Q${\ sprintf('%x', $t0)}\E~/, '... and re-issued as v2, issue time kept');
ok(mac_ok(cookie_value($x), 'balancer://signed', 'ROUTEID'), '... bound to its namespace and cookie name');
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge_for('balancer://strict', 'ROUTEID', 't2', $keys[0]));
is((slb($x))[0], 'new', 'a v2 value signed for another namespace is ignored (even without strict)');

# --- strict and opaque
$r = req('slb_sign', '/strict/');
$b = backend($r);
$v = cookie_value($r);
unlike($v // '', qr/t[123]/, "opaque: the cookie does not name the member ($v)");
like($v // '', qr/^v2~[0-9a-f]{16}~/, 'opaque: a token instead of the route');
$ns = 'balancer://strict';
$ok = 0;
$ok += backend(req('slb_sign', '/strict/', Cookie => "ROUTEID=$v")) eq $b for 1 .. 5;
is($ok, 5, 'opaque cookie sticks');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=t2')))[0], 'new', 'strict: an unsigned route is ignored');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge('t2', $keys[0]))))[0], 'new',
   'opaque: a signed route name (not a token) matches no member');
# an opaque cookie issued before a key rotation: its token is the previous
# key's; it still names its member, and is re-issued with the current key
sub token { my ($route, $key) = @_; return substr(hmac_sha256_hex("token2\0balancer://strict\0ROUTEID\0$route", $key), 0, 16) }
sub token_v1 { my ($route, $key) = @_; return substr(hmac_sha256_hex("route\0$route", $key), 0, 16) }
is(token($b, $keys[0]), ($v =~ /^v2~([0-9a-f]{16})~/)[0], 'opaque: the token is HMAC("token2\\0" . namespace . "\\0" . cookie name . "\\0" . route) under the current key');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge_v1(token_v1($b, $keys[0]), $keys[0]))))[0], 'new',
   'strict: a v1 value (opaque token, current key) is ignored');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge_v1('t2', $keys[0]))))[0], 'new',
   'strict: a v1 value is ignored');
$ok = 0;
my $reissued;
for (1 .. 5) {
    my $y = req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge(token($b, $keys[1]), $keys[1]));
    $ok += backend($y) eq $b && (slb($y))[0] eq 'sticky';
    $reissued = cookie_value($y);
}
is($ok, 5, "opaque: a cookie with the previous key's token sticks to $b (rotation)");
like($reissued // '', qr/^v2~\Q${\ token($b, $keys[0])}\E~/, "... and is re-issued with the current key's token");

# --- bound to the balancer: bound-a and bound-b share the key file and the
# cookie name, both strict; bound-c has bound-a's namespace but the cookie
# ROUTEB
$r = req('slb_sign', '/bound-a/');
$b = backend($r);
$v = cookie_value($r);
ok(mac_ok($v, 'balancer://bound-a', 'ROUTEID'), "bound-a issues a value for $b bound to its namespace");
$ok = 0;
$ok += backend(req('slb_sign', '/bound-a/', Cookie => "ROUTEID=$v")) eq $b for 1 .. 3;
is($ok, 3, '... sticky on bound-a');
my %seen;
for (1 .. 6) {
    my $y = req('slb_sign', '/bound-b/', Cookie => "ROUTEID=$v");
    $seen{(slb($y))[0]}++;
}
is(join(',', map { "$_=" . ($seen{$_} // 0) } 'sticky', 'new'), 'sticky=0,new=6',
   'replayed to bound-b (same key file, strict): never sticky');
my $y = req('slb_sign', '/bound-b/', Cookie => "ROUTEID=$v");
ok(!mac_ok(cookie_value($y), 'balancer://bound-a', 'ROUTEID') && mac_ok(cookie_value($y), 'balancer://bound-b', 'ROUTEID'),
   '... bound-b issues its own value');
is((slb(req('slb_sign', '/bound-c/', Cookie => "ROUTEB=$v")))[0], 'new',
   'the same value as another cookie name of the same namespace: ignored');
is((slb(req('slb_sign', '/bound-c/', Cookie => 'ROUTEB=' . forge_for('balancer://bound-a', 'ROUTEB', 't2', $keys[0]))))[0], 'sticky',
   '... while one signed for that name and namespace sticks');

# --- maxidle 4 s, maxlife 6 s
$r = req('slb_sign', '/expire/');
$b = backend($r);
$v = cookie_value($r);
sleep 2.2;
$x = req('slb_sign', '/expire/', Cookie => "ROUTEID=$v");
is(backend($x) . ' ' . (slb($x))[0], "$b sticky", 'within maxidle: sticky');
my $v2 = cookie_value($x);
ok($v2 && $v2 ne $v, 'used after maxidle/4: the cookie is refreshed');
$ns = 'balancer://expire';
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 100, time - 5));
is((slb($x))[0], 'new', 'unused for longer than maxidle: rebalanced');
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 7, time));
is((slb($x))[0], 'new', 'older than maxlife (even if used): rebalanced');
like(cookie_value($x) // '', qr/^v2~t[123]~/, 'rebalanced: a new cookie is issued');
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 3, time - 1));
is((slb($x))[0], 'sticky', 'within both limits: sticky');

done_testing();
