# Run-time control with balancer-manager: switching a balancer to and from
# lbmethod=stickylb, and members added at run time (growth).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends;

my $mgr = url('slb_manager', '/balancer-manager');

sub nonce {
    my ($bal) = @_;
    my $page = Apache::TestRequest::GET($mgr)->content;
    my ($n) = $page =~ /[?&;]b=\Q$bal\E&(?:amp;)?nonce=([0-9a-f-]+)/;
    return $n;
}

sub manage {
    my ($bal, %fields) = @_;
    my $n = nonce($bal);
    return Apache::TestRequest::POST($mgr, [b => $bal, nonce => $n, %fields],
                                     Referer => $mgr);
}

sub spread {
    my ($path, $cookie, $n) = @_;
    my %seen;
    $seen{ backend(req('slb_manager', $path, $cookie ? (Cookie => $cookie) : ())) }++ for 1 .. $n;
    return \%seen;
}

ok(nonce('switch'), 'balancer-manager shows the balancer and its nonce');

my $s = spread('/switch/', 'JSESSIONID=0a1b.t2', 6);
ok(keys %$s > 1, 'byrequests without stickysession ignores the session: ' . join(',', sort keys %$s));

my $r = manage('switch', b_lbm => 'stickylb');
ok($r->code == 200 || $r->code == 302, 'switched to stickylb in balancer-manager (' . $r->code . ')');
like(Apache::TestRequest::GET($mgr)->content, qr/stickylb/, 'balancer-manager lists stickylb');
$s = spread('/switch/', 'JSESSIONID=0a1b.t2', 6);
is_deeply($s, { t2 => 6 }, 'after the switch the session sticks');

$r = manage('switch', b_lbm => 'byrequests');
$s = spread('/switch/', 'JSESSIONID=0a1b.t2', 6);
ok(keys %$s > 1, 'switched back to byrequests: ' . join(',', sort keys %$s));

# growth: add t3 to balancer://grow at run time, give it a route, enable it
my $t3 = 'http://127.0.0.1:' . backend_port('t3');
$r = manage('grow', b_wyes => 1, b_nwrkr => $t3);
like(Apache::TestRequest::GET($mgr)->content, qr/\Q127.0.0.1:${\ backend_port('t3')}\E/, 'member added at run time');
$r = manage('grow', w => $t3, w_wr => 't3', w_status_D => 0);
$s = spread('/grow/', 'JSESSIONID=0a1b.t3', 4);
is_deeply($s, { t3 => 4 }, 'sessions reach the member added at run time');
$s = spread('/grow/', 'JSESSIONID=0a1b.t1', 4);
is_deeply($s, { t1 => 4 }, 'the configured member keeps its sessions');
$s = spread('/grow/', undef, 6);
ok(($s->{t1} // 0) > 0 && ($s->{t3} // 0) > 0, 'new sessions use both members: ' . join(',', map { "$_=$s->{$_}" } sort keys %$s));

done_testing();
