# Run-time control with balancer-manager: switching a balancer to and from
# lbmethod=stickylb, members added at run time (growth), and the learned
# bindings of such a member across a graceful restart (with and without
# BalancerPersist, on a second Apache).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends;
use StickyLB::Services;
use Time::HiRes qw(time sleep);

my $mgr = url('slb_manager', '/balancer-manager');

sub nonce { return manager_nonce($mgr, $_[0]) }

sub manage { return manage_balancer($mgr, @_) }

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

# ---- a member added in balancer-manager keeps its learned sessions across
# a graceful restart when BalancerPersist brings it back (mod_proxy_balancer
# restores it before the module lists the routes its stick table keeps);
# without BalancerPersist the member itself is gone after the restart
my $lb2_mgr = lb2_url('/bm');
my $t1 = 'http://127.0.0.1:' . backend_port('t1');

sub lb2_manage { return manage_balancer($lb2_mgr, 'keep', @_) }

# lb2's error log from byte $from on (the log is kept across runs)
sub lb2_log_since {
    my ($from) = @_;
    open my $fh, '<', lb2_error_log() or return '';
    seek $fh, $from, 0;
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text // '';
}

sub lb2_graceful {
    my $dir = StickyLB::Backends::logs_dir() . '/lb2';
    my $httpd = $ENV{SLB_HTTPD} || '/usr/sbin/apache2';
    my $from = -s lb2_error_log() // 0;
    my $out = `'$httpd' -f '$dir/httpd.conf' -k graceful 2>&1`;
    die "graceful: $out" if $?;
    # the new generation answers when the log says so
    my $t = time + 10;
    while (time < $t) {
        return 1 if lb2_log_since($from) =~ /resuming normal operations/;
        sleep 0.1;
    }
    return 0;
}

for my $persist ('On', 'Off') {
    # no balancer persisted by an earlier run
    unlink glob(StickyLB::Backends::logs_dir() . '/lb2/*.persist');
    my $from = -s lb2_error_log() // 0;
    start_lb2(<<"CONF");
BalancerPersist $persist
RequestHeader set X-Test-Session-Style nosuffix
<Proxy "balancer://keep">
    BalancerMember "$t1" route=t1
    ProxySet lbmethod=stickylb growth=2
    StickyLBLearnCookie JSESSIONID
</Proxy>
<Location "/bm">
    SetHandler balancer-manager
</Location>
ProxyPass "/bm" "!"
ProxyPass "/" "balancer://keep/"
CONF
    lb2_manage(b_wyes => 1, b_nwrkr => $t3);
    lb2_manage(w => $t3, w_wr => 't3', w_status_D => 0);
    # t1 out for a moment, so that the new session starts on t3
    lb2_manage(w => $t1, w_status_D => 1);
    my $r = lb2_get('/new');
    my ($id) = ($r->header('Set-Cookie') // '') =~ /JSESSIONID=([^;]+)/;
    is(backend($r), 't3', "BalancerPersist $persist: a new session on the member added in balancer-manager");
    ok($id && $id =~ /^t3x/, "BalancerPersist $persist: the member issued its id (" . ($id // 'none') . ')');
    lb2_manage(w => $t1, w_status_D => 0);
    my %seen;
    $seen{ backend(lb2_get('/again', Cookie => "JSESSIONID=$id")) }++ for 1 .. 4;
    is_deeply(\%seen, { t3 => 4 }, "BalancerPersist $persist: the learned session sticks before the restart");
    ok(lb2_graceful(), "BalancerPersist $persist: lb2 restarted gracefully");
    my $page = lb2_get('/bm')->content;
    my $listed = $page =~ /\Q127.0.0.1:${\ backend_port('t3')}\E/ ? 1 : 0;
    %seen = ();
    $seen{ backend(lb2_get('/after', Cookie => "JSESSIONID=$id")) }++ for 1 .. 4;
    my $retired = () = lb2_log_since($from) =~ /SLB0207/g;
    if ($persist eq 'On') {
        ok($listed, 'BalancerPersist On: the added member is back after the restart');
        is_deeply(\%seen, { t3 => 4 }, 'BalancerPersist On: its learned session still sticks to it');
        is($retired, 0, 'BalancerPersist On: no route retired (no SLB0207)');
    }
    else {
        ok(!$listed, 'BalancerPersist Off: the added member is gone after the restart');
        is_deeply(\%seen, { t1 => 4 }, 'BalancerPersist Off: its session continues on a configured member');
        ok($retired >= 1, 'BalancerPersist Off: its route left the stick table (SLB0207)');
    }
    stop_lb2();
}

done_testing();
