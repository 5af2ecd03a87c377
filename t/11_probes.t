# Health: active probes from the watchdog singleton (no client traffic
# needed), HTTP status checks, a black-holed member that stalls nobody,
# slow start, passive marking, and a member left to mod_proxy_hcheck.
# Probes: interval 1 s, timeout 500 ms, fall 2, rise 2, WatchdogInterval
# 200 ms: a member is marked down within interval x fall + 1.5 s (the
# slack: scheduling granularity and the batch's longest timeout).
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Apache::Test ();
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends;

my $mgr = url('slb_probe', '/balancer-manager');

# the status cell of a member of a balancer in balancer-manager
sub status_of {
    my ($port, $bal) = @_;
    $bal //= 'probed';
    my $page = Apache::TestRequest::GET($mgr)->content;
    my ($section) = $page =~ m{(balancer://\Q$bal\E</a>.*?)(?:<h3>|\z)}s;
    $section //= '';
    while ($section =~ m{<tr>(.*?)</tr>}sg) {
        my $row = $1;
        next unless $row =~ /127\.0\.0\.1:\Q$port\E</;
        my @cells = $row =~ m{<td[^>]*>(.*?)</td>}sg;
        for (@cells) { s/<[^>]*>//g }
        my ($st) = grep { /\b(Init|Ok|Err|HcFl|Dis|Stop|Drn)\b/ } @cells;
        return $st // '';
    }
    return '';
}
sub is_down { return status_of(@_) =~ /HcFl/ ? 1 : 0 }

sub wait_for {
    my ($what, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < $limit) {
        return time - $t0 if $what->();
        sleep 0.1;
    }
    return undef;
}

# the black hole: listens (the kernel completes handshakes) and never reads
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                 LocalPort => $ENV{SLB_HOLE_PORT},
                                 Listen => 64, ReuseAddr => 1)
    or die "hole: $!";
start_backend(route => 't4', port => backend_port('t4'));

my $up = wait_for(sub { !is_down(backend_port('t4')) && status_of(backend_port('t4')) ne '' }, 5);
ok(defined $up, 't4 is up');
my $t = wait_for(sub { is_down(backend_port('t3')) }, 4);
ok(defined $t, sprintf('a member that answers 500 to the HTTP probe is marked down (%.1f s)', $t // -1))
    or diag(Apache::TestRequest::GET($mgr)->content);
$t = wait_for(sub { is_down($ENV{SLB_HOLE_PORT}) }, 4);
ok(defined $t, sprintf('a member that never answers is marked down (%.1f s)', $t // -1));
ok(!is_down(backend_port('t1')) && !is_down(backend_port('t2'))
   && status_of(backend_port('t1')) =~ /Ok/, 'healthy members stay up');

# t4 killed with no client traffic at all
sleep 1.2;
stop_backend('t4');
$t = wait_for(sub { is_down(backend_port('t4')) }, 6);
ok(defined $t && $t <= 3.5,
   sprintf('t4 killed: marked down in %.1f s without traffic (bound 2 x 1 s + 1.5 s, with a black-holed member probed alongside)', $t // -1));

my %n;
for (1 .. 12) {
    my $x = req('slb_probe', '/probed/');
    $n{ $x->code . ' ' . backend($x) }++;
}
ok(!grep({ /t4|t3|hole/ } keys %n) && !grep({ !/^200 / } keys %n),
   'new sessions avoid the members marked down: ' . join(', ', map { "$_ x$n{$_}" } sort keys %n));
my $x = req('slb_probe', '/probed/', Cookie => 'JSESSIONID=0a1b.t4');
ok($x->code == 200 && backend($x) =~ /^t[12]$/ && (slb($x))[0] eq 'failover',
   'a session on t4 fails over (' . $x->code . ' ' . backend($x) . ')');

# t4 back: marked up after rise, then ramped up (slow start 30 s)
start_backend(route => 't4', port => backend_port('t4'));
$t = wait_for(sub { !is_down(backend_port('t4')) }, 6);
ok(defined $t && $t <= 3.5, sprintf('t4 back: marked up in %.1f s (rise 2)', $t // -1));
%n = ();
$n{ backend(req('slb_probe', '/probed/')) }++ for 1 .. 30;
ok(($n{t4} // 0) <= 4, 'slow start: t4 gets ' . ($n{t4} // 0)
   . ' of 30 new sessions right after it came back (full share: 10)');
is(backend(req('slb_probe', '/probed/', Cookie => 'JSESSIONID=0a1b.t4')), 't4',
   'sessions on t4 reach it again');
ok(is_down(backend_port('t3')) && is_down($ENV{SLB_HOLE_PORT}), 'the failing members stay down');
stop_backend('t4');
close $hole;

# passive marking: two 500s in a row put t2 in error
for (1 .. 2) {
    req('slb_probe', '/passive/status/500', Cookie => 'JSESSIONID=0a1b.t2');
}
$x = req('slb_probe', '/passive/', Cookie => 'JSESSIONID=0a1b.t2');
is(backend($x) . ' ' . (slb($x))[0], 't1 failover', 'passive: after 2 listed statuses t2 is in error, its session fails over');
like(status_of(backend_port('t2'), 'passive'), qr/Err/, 'passive: balancer-manager shows t2 in error');
# after its retry= (2 s) t2 is tried again and answers listed statuses
# only: two in a row mark it again (the count re-arms every time, with no
# good answer in between), three times over
for my $round (1 .. 3) {
    sleep 2.3;
    my @b = map { backend(req('slb_probe', '/passive/status/500', Cookie => 'JSESSIONID=0a1b.t2')) } 1 .. 2;
    is("@b", 't2 t2', "passive, round $round: after retry= t2 is tried again (and answers 500)");
    $x = req('slb_probe', '/passive/', Cookie => 'JSESSIONID=0a1b.t2');
    is(backend($x) . ' ' . (slb($x))[0], 't1 failover',
       "passive, round $round: two listed statuses mark t2 in error again");
}

# the ratio form: one client hitting a 500 URL three times ejects nobody
my $t2 = 'JSESSIONID=0a1b.t2';
my @b = map { backend(req('slb_probe', '/ratio/status/500', Cookie => $t2)) } 1 .. 3;
is("@b", 't2 t2 t2', 'ratio: three 500s are answered by t2');
$x = req('slb_probe', '/ratio/', Cookie => $t2);
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'ratio=50 min-requests=20: three 500s from one client do not eject t2');
# 20 responses in the window (4 above), 12 of them (60%) listed: the 20th
# ejects it
@b = map { backend(req('slb_probe', '/ratio/', Cookie => $t2)) } 1 .. 7;
push @b, map { backend(req('slb_probe', '/ratio/status/503', Cookie => $t2)) } 1 .. 9;
is(join(' ', grep { $_ ne 't2' } @b), '', 'ratio: up to the 20th response t2 stays in (19 seen)');
$x = req('slb_probe', '/ratio/', Cookie => $t2);
is(backend($x) . ' ' . (slb($x))[0], 't1 failover', 'ratio: 12 listed statuses of 20 (60%) eject t2');
like(status_of(backend_port('t2'), 'ratio'), qr/Err/, 'ratio: balancer-manager shows t2 in error');

# the cap: three members, max-ejected=50: t1 goes out, t2 stays in
for my $m ('t1', 't2') {
    req('slb_probe', '/capped/status/500', Cookie => "JSESSIONID=0a1b.$m") for 1 .. 2;
}
$x = req('slb_probe', '/capped/', Cookie => 'JSESSIONID=0a1b.t1');
is((slb($x))[0], 'failover', 'max-ejected=50: t1 ejected');
$x = req('slb_probe', '/capped/', Cookie => 'JSESSIONID=0a1b.t2');
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'max-ejected=50: t2, failing as much, stays in');
my $errs = grep { status_of(backend_port($_), 'capped') =~ /Err/ } qw(t1 t2 t3);
is($errs, 1, 'max-ejected=50 of 3 members: one in error');

# a repeat offender: out 1 s the first time, 2 s the second
my $repeat = sub { backend(req('slb_probe', $_[0], Cookie => $t2)) };
$repeat->('/repeat/status/500') for 1 .. 2;
is($repeat->('/repeat/'), 't1', 'eject=1: two listed statuses eject t2');
sleep 1.4;
is($repeat->('/repeat/status/500'), 't2', 'eject=1: t2 is back after 1 s');
$repeat->('/repeat/status/500');
is($repeat->('/repeat/'), 't1', 'eject=1: ejected again');
sleep 1.4;
is($repeat->('/repeat/'), 't1', 'eject=1: the second time still out after 1.4 s');
sleep 1.0;
is($repeat->('/repeat/'), 't2', 'eject=1: back after 2 s (doubled)');

# mod_proxy_hcheck on a member: the module leaves it alone
my $log = Apache::Test::vars('t_logs') . '/error_log';
open my $fh, '<', $log or die $!;
my @lines = <$fh>;
close $fh;
my $skip = grep { /SLB0303: member http:\/\/127\.0\.0\.1:9 of balancer:\/\/hc is checked by mod_proxy_hcheck/ } @lines;
ok($skip, 'a member with hcmethod= is left to mod_proxy_hcheck (logged)');
ok((grep { /SLB0306: member \S+ of balancer:\/\/capped is failing .* stays in: the cap of StickyLBPassive \(1 of 3 members out, max-ejected=50%\)/ } @lines),
   'the member the cap keeps in is logged (SLB0306)');
$t = wait_for(sub { is_down(9, 'hc') }, 5);
ok(defined $t, 'mod_proxy_hcheck marks that member down itself');

done_testing();
