# Discovery of members from DNS (StickyLBDiscover srv / dns), against a
# real DNS server: dnsmasq, started here on 127.0.0.1:$SLB_DNS_PORT,
# answering for *.test only (--local=/test/, --no-resolv, --no-hosts).
#
# How the records change under a running dnsmasq 2.90: on SIGHUP it reads
# its hosts files again (--addn-hosts, so the A records of app.test
# change with a SIGHUP), but not the --srv-host / --host-record lines of
# its configuration file.  SRV changes therefore restart dnsmasq by PID
# with the new file (a restart takes ~100 ms: a fetch in that window
# fails and keeps the set, which is what a registry outage must do).
#
# balancer://disc (srv, interval=500ms, grace=3s): SRV records of d1..d3
# (127.0.0.1, their own ports), routes their first labels.
#   2 members at the start; d3 registered: new sessions reach it within
#   interval + 1 s, existing sessions do not move; d1 unregistered: it
#   drains (its sessions stay for grace=), then is disabled: its sessions
#   fail over once and stay on their new member, the others are
#   untouched; dnsmasq stopped: the set is unchanged, no 5xx under a
#   burst; back: a change is picked up; garbage records: ignored and
#   counted; d1 back: its slot and route again; the prober takes the
#   members added at run time; a graceful restart (registry down) keeps
#   every discovered member and its sessions, cookie-routed and bound in
#   the stick table (whose route registry retires unconfigured routes).
# balancer://disca (dns, A records of app.test:$SLB_DA_PORT): 127.0.0.2
#   and 127.0.0.3, routes a127-0-0-2 and a127-0-0-3 (route-prefix=a);
#   one address removed by a SIGHUP.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use POSIX ();
use Apache::Test ();
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends qw(:DEFAULT logs_dir);
use StickyLB::Discovery;

my $dnsmasq = '/usr/sbin/dnsmasq';
plan skip_all => 'dnsmasq not installed' unless -x $dnsmasq;

my $logs = logs_dir();
my $dport = $ENV{SLB_DNS_PORT};
my %port = map { $_ => $ENV{'SLB_' . uc($_) . '_PORT'} } qw(d1 d2 d3);
my $aport = $ENV{SLB_DA_PORT};
my $conf = "$logs/dnsmasq-disc.conf";
my $hosts = "$logs/dnsmasq-disc.hosts";
my $dlog = "$logs/dnsmasq-disc.log";
my $st = url('slb_disc', '/stickylb-status');
my $t_start = time;

# ---- dnsmasq ------------------------------------------------------------
my $dns_pid;
sub write_records {
    my (%o) = @_;    # srv => [names], garbage => [lines], a => [ips],
                     # slow => [ips] (slow.test, with a)
    open my $fh, '>', "$conf.tmp" or die "$conf: $!";
    for my $n (@{ $o{srv} // [] }) {
        print $fh "srv-host=_http._tcp.app.test,$n.test,$port{$n},0,1\n";
    }
    print $fh "$_\n" for @{ $o{garbage} // [] };
    print $fh "host-record=$_.test,127.0.0.1\n" for qw(d1 d2 d3);
    close $fh or die "$conf: $!";
    rename "$conf.tmp", $conf or die "$conf: $!";
    if ($o{a}) {
        open my $h, '>', "$hosts.tmp" or die "$hosts: $!";
        print $h "$_ app.test\n" for @{ $o{a} };
        print $h "$_ slow.test\n" for @{ $o{slow} // [] };
        close $h or die "$hosts: $!";
        rename "$hosts.tmp", $hosts or die "$hosts: $!";
    }
}
sub start_dns {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $dlog;
        open STDERR, '>>', $dlog;
        { no warnings 'exec'; exec $dnsmasq, '--keep-in-foreground', "--port=$dport",
            '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv',
            '--no-hosts', '--local=/test/', "--addn-hosts=$hosts",
            "--conf-file=$conf", '--pid-file=', "--log-facility=$dlog" };
        POSIX::_exit(127);
    }
    $dns_pid = $pid;
    sleep 0.15;        # bound to its port well within this
    return kill(0, $pid);
}
sub stop_dns {
    return unless $dns_pid;
    kill 'TERM', $dns_pid;
    waitpid $dns_pid, 0;
    $dns_pid = undef;
}
sub restart_dns { stop_dns(); return start_dns() }
END { stop_dns() if $dns_pid }

# ---- the status page and sessions (StickyLB::Discovery) --------------------
discovery_setup(status => sub { Apache::TestRequest::GET("$st?$_[0]") },
                get => sub { req('slb_disc', @_) },
                balancer => 'disc', path => '/disc/');

# ---- start: d1 and d2 -----------------------------------------------------
start_backend(route => $_, port => $port{$_}) for qw(d1 d2 d3);
start_backend(route => 'a127-0-0-2', host => '127.0.0.2', port => $aport);
start_backend(route => 'a127-0-0-3', host => '127.0.0.3', port => $aport);
start_backend(route => 'a127-0-0-4', host => '127.0.0.4', port => $aport);
write_records(srv => [qw(d1 d2)], a => ['127.0.0.2', '127.0.0.3'],
              slow => ['127.0.0.2']);
ok(start_dns(), "dnsmasq on 127.0.0.1:$dport");

my $t = wait_for(sub { my $m = members_of('disc'); $m->{d1} && $m->{d2} }, 5);
ok(defined $t, sprintf('d1 and d2 discovered (%.1f s)', $t // -1));
my $m = members_of('disc');
is(scalar(keys %$m), 2, 'two members');
is($m->{d1}{state}, 'up', 'd1 up');
ok($m->{d1}{discovered}, 'JSON: d1 is discovered');
is($m->{d1}{discovered}{state}, 'active', 'JSON: discovered state active');
like($m->{d1}{discovered}{origin} // '', qr/^SRV _http\._tcp\.app\.test d1\.test:\d+$/,
     'JSON: where it came from');
is($m->{d1}{name}, "http://127.0.0.1:$port{d1}", 'member URL: the SRV target\'s address and port');
my $bj = balancer_of('disc');
like($bj->{discovery}{source} // '', qr/^srv _http\._tcp\.app\.test$/, 'JSON: the balancer\'s source');
ok(($bj->{discovery}{last_sync} // 0) > 0, 'JSON: last sync');

my $sessions = new_sessions(20);
my %on;
$on{$_}++ for values %$sessions;
ok(($on{d1} // 0) >= 5 && ($on{d2} // 0) >= 5,
   "new sessions on both (d1 x" . ($on{d1} // 0) . ', d2 x' . ($on{d2} // 0) . ')');

# ---- d3 registered ------------------------------------------------------------
write_records(srv => [qw(d1 d2 d3)]);
restart_dns();
my $t0 = time;
$t = wait_for(sub { my ($b) = visit(undef); $b eq 'd3' }, 4);
ok(defined $t && $t <= 1.5 + 0.3,
   sprintf('d3 registered: a new session on it after %.2f s (interval 0.5 s + 1 s)', $t // -1));
is(moved($sessions), 0, 'd3 registered: no existing session moved');
# the probe and slow start take the member added at run time
ok(defined wait_for(sub { (((members_of('disc')->{d3} // {})->{probe} // {})->{result} // '') eq 'ok' }, 3),
   'd3 is probed (the prober took the member added at run time)')
    or diag(explain(members_of('disc')->{d3}));

# ---- d1 unregistered: drained for grace=, then disabled ---------------------
my %d1 = map { $_ => $sessions->{$_} } grep { $sessions->{$_} eq 'd1' } keys %$sessions;
write_records(srv => [qw(d2 d3)]);
restart_dns();
ok(defined wait_for(sub { state_of('d1') eq 'draining' }, 2), 'd1 unregistered: draining');
is(members_of('disc')->{d1}{discovered}{state}, 'leaving', 'JSON: discovered state leaving');
my $after = leaving('d1', \%d1, $sessions, '');

# ---- dnsmasq stopped: nothing changes, no 5xx -------------------------------
my %all = %$after;
stop_dns();
my ($codes5, $reqs) = burst(\%all, 2.5);
is($codes5, 0, "registry stopped: no 5xx in $reqs requests over 2.5 s");
is(moved(\%all), 0, 'registry stopped: no session moved');
$m = members_of('disc');
is(join(',', map { "$_=$m->{$_}{state}" } sort keys %$m), 'd1=disabled,d2=up,d3=up',
   'registry stopped: the set is unchanged');
$bj = balancer_of('disc');
ok(($bj->{discovery}{errors} // 0) >= 1, 'JSON: the failures are counted (' . ($bj->{discovery}{errors} // 0) . ')');
like($bj->{discovery}{last_error} // '', qr/SRV _http\._tcp\.app\.test/, 'JSON: the last error');

# ---- back, with garbage: the change is picked up, garbage counted -----------
write_records(srv => [qw(d2 d3 d1)],
              garbage => ['srv-host=_http._tcp.app.test,bad_name!.test,80,0,1',
                          'srv-host=_http._tcp.app.test,nowhere.test,81,0,1']);
start_dns();
$t = wait_for(sub { state_of('d1') eq 'up' }, 4);
ok(defined $t, sprintf('registry back: d1 registered again, up (%.1f s after the start)', $t // -1));
$m = members_of('disc');
is(scalar(keys %$m), 3, 'd1 back in its own slot (3 members, no new one)');
is($m->{d1}{discovered}{state}, 'active', 'JSON: d1 active again');
$bj = balancer_of('disc');
ok(($bj->{discovery}{malformed} // 0) >= 1,
   'garbage: ignored and counted (' . ($bj->{discovery}{malformed} // 0) . ')');
is(moved(\%all), 0, 'registry back: no session moved');

# ---- dns kind: A records, SIGHUP ------------------------------------------------
$m = members_of('disca');
is(join(',', sort keys %$m), 'a127-0-0-2,a127-0-0-3', 'disca: routes from the addresses (route-prefix=a)');
my $as = new_sessions(10, '/da/');
my $t_slow = time;
write_records(srv => [qw(d1 d2 d3)], a => ['127.0.0.2'],
              slow => ['127.0.0.2', '127.0.0.4']);
kill 'HUP', $dns_pid;
ok(defined wait_for(sub { state_of('a127-0-0-3', 'disca') eq 'disabled' }, 4),
   'disca: 127.0.0.3 gone from the A records (SIGHUP): drained, then disabled');
is(moved({ map { $_ => $as->{$_} } grep { $as->{$_} eq 'a127-0-0-2' } keys %$as }, '/da/'), 0,
   "disca: 127.0.0.2's sessions stay");

# ---- slow start applies to a discovered member ------------------------------------
# balancer://discs (StickyLBSlowStart 60): 127.0.0.4 joins slow.test with the
# same SIGHUP; its share of new sessions ramps from 1% of its loadfactor
# over 60 s, so a few seconds after it is added it takes about 1 of 30
# (at most 4 s: under 7% of its weight), where its full share would be 15
ok(defined wait_for(sub { members_of('discs')->{'a127-0-0-4'} }, 4),
   sprintf('discs: 127.0.0.4 discovered (%.1f s after the SIGHUP)', time - $t_slow));
my %slow;
$slow{ (visit(undef, '/ds/'))[0] }++ for 1 .. 30;
ok(($slow{'a127-0-0-4'} // 0) <= 5,
   'discs: slow start: the member just discovered took ' . ($slow{'a127-0-0-4'} // 0)
   . ' of 30 new sessions (full share 15), the other ' . ($slow{'a127-0-0-2'} // 0));

# ---- Prometheus and HTML ---------------------------------------------------------
my $prom = Apache::TestRequest::GET("$st?format=prometheus")->content;
like($prom, qr/^stickylb_discovery_fetches_total\{balancer="balancer:\/\/disc"\} \d+/m,
     'Prometheus: fetches');
like($prom, qr/^stickylb_discovery_malformed\{balancer="balancer:\/\/disc"\} [1-9]/m,
     'Prometheus: malformed entries of the last answer');
like($prom, qr/^stickylb_member_discovered\{balancer="balancer:\/\/disc",member="http:\/\/127\.0\.0\.1:\d+",route="d1"\} 1/m,
     'Prometheus: d1 is discovered');
SKIP: {
    skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
    open my $pf, '>', "$logs/disc-metrics.txt" or die $!;
    print $pf $prom;
    close $pf;
    my $out = `/usr/bin/promtool check metrics < '$logs/disc-metrics.txt' 2>&1`;
    is($? >> 8, 0, 'promtool check metrics accepts the discovery metrics') or diag $out;
    unlink "$logs/disc-metrics.txt";
}
my $page = Apache::TestRequest::GET($st)->content;
like($page, qr/srv _http\._tcp\.app\.test/, 'HTML: the source');

# ---- graceful restart: the members and their sessions stay ------------------------
my %before = %all;
# sessions bound in the stick table (a header key): the restart retires
# the routes no longer configured, and must keep the discovered ones
my %keyed;
for my $i (1 .. 12) {
    $keyed{"k$i"} = backend(req('slb_disc', '/disc/', 'X-Disc-Key' => "k$i"));
}
sub keys_moved {
    my $n = 0;
    for my $k (keys %keyed) {
        $n++ if backend(req('slb_disc', '/disc/', 'X-Disc-Key' => $k)) ne $keyed{$k};
    }
    return $n;
}
is(keys_moved(), 0, 'keyed sessions stick (stick table)');
is(scalar(grep { !/^d[123]$/ } values %keyed), 0,
   'keyed sessions on discovered members (' . join(',', sort values %keyed) . ')');
my $pidfile = "$logs/httpd.pid";
open my $fh, '<', $pidfile or die "$pidfile: $!";
chomp(my $hpid = <$fh>);
close $fh;
stop_dns();          # the set comes back from the last generation, not the source
ok(kill('USR1', $hpid), "graceful restart (SIGUSR1 to $hpid), registry down");
sleep 1.0;
my $up = wait_for(sub { my (undef, undef, $c) = visit(undef); $c == 200 }, 5);
ok(defined $up, 'the server answers after the graceful restart');
$m = members_of('disc');
is(join(',', map { "$_=$m->{$_}{state}" } sort keys %$m), 'd1=up,d2=up,d3=up',
   'after the restart: the discovered members are back, same routes');
is(moved(\%before), 0, 'after the restart: no session moved (' . scalar(keys %before) . ')');
is(keys_moved(), 0, "after the restart: the stick table's bindings to discovered members stay (12)");
start_dns();
sleep 1.2;
is(moved(\%before), 0, 'after the source answered again: no session moved');

my $restored = 0;
if (open my $el, '<', "$logs/error_log") {
    while (<$el>) {
        $restored++ if /SLB0504: 3 discovered members of balancer:\/\/disc restored/;
    }
}
ok($restored >= 1, 'the restart logged the members restored');

stop_dns();
stop_backend($_) for qw(d1 d2 d3 a127-0-0-2 a127-0-0-3 a127-0-0-4);
unlink $conf, $hosts;
diag(sprintf('t/20_discover_dns.t ran %.1f s', time - $t_start));
done_testing();
