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

sub forge {
    my ($route, $key, $issued, $refreshed) = @_;
    my $body = sprintf('v1~%s~%x~%x', $route, $issued // time, $refreshed // time);
    return $body . '~' . substr(hmac_sha256_hex($body, $key), 0, 32);
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
like($v // '', qr/^v1~\Q$b\E~[0-9a-f]+~[0-9a-f]+~[0-9a-f]{32}$/, "signed cookie for $b");
my ($body) = ($v // '') =~ /^(.*)~[0-9a-f]{32}$/;
is($v, $body . '~' . substr(hmac_sha256_hex($body, $keys[0]), 0, 32), 'signed with the first key (HMAC-SHA256)');
my $ok = 0;
for (1 .. 5) {
    my $x = req('slb_sign', '/signed/', Cookie => "ROUTEID=$v");
    $ok++ if backend($x) eq $b && !set_cookies($x, 'ROUTEID');
}
is($ok, 5, 'the signed cookie sticks and is not re-issued');
my $x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge('t2', $keys[1]));
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'a cookie signed with the previous key still verifies (rotation)');
like(cookie_value($x) // '', qr/^v1~t2~/, '... and is re-signed with the current key');
($body) = (cookie_value($x) // '') =~ /^(.*)~[0-9a-f]{32}$/;
is(cookie_value($x), $body . '~' . substr(hmac_sha256_hex($body, $keys[0]), 0, 32), '... current key');
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=' . forge('t2', 'an-attacker-key-000000000'));
is((slb($x))[0], 'new', 'a forged signature is ignored');
(my $tampered = forge('t2', $keys[0])) =~ s/^v1~t2~/v1~t3~/;
$x = req('slb_sign', '/signed/', Cookie => "ROUTEID=$tampered");
is((slb($x))[0], 'new', 'a route changed under a valid signature is ignored');
$x = req('slb_sign', '/signed/', Cookie => 'ROUTEID=t3');
is(backend($x) . ' ' . (slb($x))[0], 't3 sticky', 'without strict an unsigned route is accepted (migration)');
like(cookie_value($x) // '', qr/^v1~t3~/, '... and replaced by a signed one');

# --- strict and opaque
$r = req('slb_sign', '/strict/');
$b = backend($r);
$v = cookie_value($r);
unlike($v // '', qr/t[123]/, "opaque: the cookie does not name the member ($v)");
like($v // '', qr/^v1~[0-9a-f]{16}~/, 'opaque: a token instead of the route');
$ok = 0;
$ok += backend(req('slb_sign', '/strict/', Cookie => "ROUTEID=$v")) eq $b for 1 .. 5;
is($ok, 5, 'opaque cookie sticks');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=t2')))[0], 'new', 'strict: an unsigned route is ignored');
is((slb(req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge('t2', $keys[0]))))[0], 'new',
   'opaque: a signed route name (not a token) matches no member');
# an opaque cookie issued before a key rotation: its token is the previous
# key's; it still names its member, and is re-issued with the current key
sub token { my ($route, $key) = @_; return substr(hmac_sha256_hex("route\0$route", $key), 0, 16) }
is(token($b, $keys[0]), ($v =~ /^v1~([0-9a-f]{16})~/)[0], 'opaque: the token is HMAC("route\\0" . route) under the current key');
$ok = 0;
my $reissued;
for (1 .. 5) {
    my $y = req('slb_sign', '/strict/', Cookie => 'ROUTEID=' . forge(token($b, $keys[1]), $keys[1]));
    $ok += backend($y) eq $b && (slb($y))[0] eq 'sticky';
    $reissued = cookie_value($y);
}
is($ok, 5, "opaque: a cookie with the previous key's token sticks to $b (rotation)");
like($reissued // '', qr/^v1~\Q${\ token($b, $keys[0])}\E~/, "... and is re-issued with the current key's token");

# --- maxidle 4 s, maxlife 6 s
$r = req('slb_sign', '/expire/');
$b = backend($r);
$v = cookie_value($r);
sleep 2.2;
$x = req('slb_sign', '/expire/', Cookie => "ROUTEID=$v");
is(backend($x) . ' ' . (slb($x))[0], "$b sticky", 'within maxidle: sticky');
my $v2 = cookie_value($x);
ok($v2 && $v2 ne $v, 'used after maxidle/4: the cookie is refreshed');
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 100, time - 5));
is((slb($x))[0], 'new', 'unused for longer than maxidle: rebalanced');
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 7, time));
is((slb($x))[0], 'new', 'older than maxlife (even if used): rebalanced');
like(cookie_value($x) // '', qr/^v1~t[123]~/, 'rebalanced: a new cookie is issued');
$x = req('slb_sign', '/expire/', Cookie => 'ROUTEID=' . forge($b, $keys[0], time - 3, time - 1));
is((slb($x))[0], 'sticky', 'within both limits: sticky');

done_testing();
