# Discovery of members from etcd (StickyLBDiscover etcd), against a real
# etcd (Debian's etcd-server 3.4) started here on free loopback ports and
# stopped by PID, in front of a second Apache (lb2) that has only these
# balancers.  The members are t/backend.pl processes that register
# themselves with docker/etcd-register.sh, as the docker demo's
# containers do: a key under the prefix with a lease kept alive, deleted
# on SIGTERM before the backend stops (DRAIN_WAIT later).
#
# balancer://etcd (wait=1s: a watch; interval=300ms, grace=3s):
#   e1, e2 at the start; e3 registered: new sessions reach it within
#   interval + 1 s, existing sessions do not move; e1 unregistered (its
#   script TERMed): drained, its sessions stay for grace=, then disabled:
#   they fail over once and stay on their new member, the others are
#   untouched; etcd stopped: the set is unchanged, no 5xx under a
#   burst, the failures counted; etcd back: a change is picked up (e1
#   registered again gets its slot and route back); garbage values:
#   ignored and counted (JSON, Prometheus); e3's script killed (-9): its
#   lease expires and etcd deletes the key: e3 leaves.
# balancer://etcdpoll (wait=0: a range every interval=500ms; its first
#   endpoint refuses): the seed's form, a key ending in host:port.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use StickyLB::Client;
use StickyLB::Backends qw(:DEFAULT free_port);
use StickyLB::Services;
use StickyLB::Etcd;
use StickyLB::Discovery;
use StickyLB::Configtest ();

plan skip_all => 'etcd (etcd-server) not installed' unless etcd_bin();
my $t_start = time;

my $P = '/stickylb-test/web/';
my $PP = '/stickylb-test/poll/';
my %port = map { $_ => free_port() } qw(e1 e2 e3);
my $dead = free_port();

END { local $?; stop_lb2(); }

# ---- the status page and sessions (StickyLB::Discovery) --------------------
discovery_setup(status => sub { lb2_get("/stickylb-status?$_[0]") },
                get => sub { lb2_get(@_) },
                balancer => 'etcd', path => '/etcd/');

# ---- the docker scenario's configuration passes configtest as the container
# reads it (its ${VAR}s from the environment docker-compose.etcd.yml sets)
{
    my $f = "$ENV{SLB_TOP}/docker/lb-etcd.conf";
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    my %env = (LB_NAME => 'lb', LB_PORT => 80, ETCD_ENDPOINTS => 'http://etcd:2379',
               ETCD_PREFIX => '/services/web/');
    $text =~ s/^\s*#.*$//mg;       # comments: Apache does not expand them
    $text =~ s/\$\{(\w+)\}/$env{$1} \/\/ die "docker\/lb-etcd.conf: \${$1} not set by the test\n"/ge;
    my ($rc, $out) = StickyLB::Configtest::configtest($text);
    is($rc, 0, 'docker/lb-etcd.conf passes configtest') or diag $out;
}

# ---- etcd, e1 and e2 registered, then the load balancer -------------------------
ok(start_etcd(), 'etcd started on 127.0.0.1:' . etcd_port());
my $ep = etcd_url();
register_member(route => 'e1', port => $port{e1}, prefix => $P, drain_wait => 8);
register_member(route => 'e2', port => $port{e2}, prefix => $P);
my $keys = etcd_keys($P);
is_deeply([sort keys %$keys], [sort map { "${P}127.0.0.1:$port{$_}" } qw(e1 e2)],
          'etcd-register.sh: one key per member, host:port under the prefix');
is_deeply(JSON::PP::decode_json($keys->{"${P}127.0.0.1:$port{e1}"}),
          { url => "http://127.0.0.1:$port{e1}", route => 'e1' },
          'etcd-register.sh: the value names the member (url, route)');
# the poll balancer: the seed's form (the key ends in host:port, any value)
etcd_put("${PP}127.0.0.1:$port{e2}", 'up');

start_lb2(<<"CONF");
WatchdogInterval 100ms
<Proxy "balancer://etcd">
    ProxySet lbmethod=stickylb growth=4
    StickyLBDiscover etcd $ep prefix=$P interval=300ms wait=1s timeout=400ms backoff-max=1s grace=3s
</Proxy>
ProxyPass "/etcd" "balancer://etcd"
<Proxy "balancer://etcdpoll">
    ProxySet lbmethod=stickylb growth=2
    StickyLBDiscover etcd http://127.0.0.1:$dead,$ep prefix=$PP interval=500ms timeout=400ms
</Proxy>
ProxyPass "/poll" "balancer://etcdpoll"
<Location "/stickylb-status">
    SetHandler stickylb-status
</Location>
CONF

my $t = wait_for(sub { my $m = members_of(); $m->{e1} && $m->{e2} }, 5);
ok(defined $t, sprintf('e1 and e2 discovered (%.1f s after the start)', $t // -1));
my $m = members_of();
is(states(), 'e1=up,e2=up', 'two members, up');
is($m->{e1}{name}, "http://127.0.0.1:$port{e1}", 'member URL: the value\'s url');
is(($m->{e1}{discovered} // {})->{state}, 'active', 'JSON: e1 discovered, active');
is(($m->{e1}{discovered} // {})->{origin}, "${P}127.0.0.1:$port{e1}", 'JSON: it came from its key');
my $bj = balancer_of('etcd');
like($bj->{discovery}{source} // '', qr/^etcd \Q$ep\E/, 'JSON: the balancer\'s source');
ok(($bj->{discovery}{last_sync} // 0) > 0, 'JSON: last sync');
is($bj->{discovery}{malformed} // -1, 0, 'JSON: nothing malformed');

ok(defined wait_for(sub { scalar(keys %{ members_of('etcdpoll') }) == 1 }, 3),
   'etcdpoll: the key ending in host:port discovered, past a refused first endpoint');
my ($pm) = values %{ members_of('etcdpoll') };
is($pm->{name}, "http://127.0.0.1:$port{e2}", 'etcdpoll: the member\'s URL from its key');
is((visit(undef, '/poll/'))[0], 'e2', 'etcdpoll: a request reaches it');

my $sessions = new_sessions(20);
my %on;
$on{$_}++ for values %$sessions;
ok(($on{e1} // 0) >= 4 && ($on{e2} // 0) >= 4,
   'new sessions on both (e1 x' . ($on{e1} // 0) . ', e2 x' . ($on{e2} // 0) . ')');

# ---- e3 registered ---------------------------------------------------------------
register_member(route => 'e3', port => $port{e3}, prefix => $P, ttl => 2);
$t = wait_for(sub { my ($b) = visit(undef); $b eq 'e3' }, 4);
ok(defined $t && $t <= 0.3 + 1 + 0.3,
   sprintf('e3 registered: a new session on it after %.2f s (interval 0.3 s + 1 s)', $t // -1));
is(moved($sessions), 0, 'e3 registered: no existing session moved');

# ---- e1 unregistered (SIGTERM to its script): drained for grace=, then disabled ---
my %e1 = map { $_ => $sessions->{$_} } grep { $sessions->{$_} eq 'e1' } keys %$sessions;
unregister_member('e1');
ok(defined wait_for(sub { !member_registered($P, $port{e1}) }, 2), 'e1\'s script deleted its key');
ok(defined wait_for(sub { state_of('e1') eq 'draining' }, 2), 'e1 unregistered: draining');
is((members_of()->{e1}{discovered} // {})->{state}, 'leaving', 'JSON: discovered state leaving');
my $after = leaving('e1', \%e1, $sessions, ' (its backend still runs)');
unregister_member('e1', wait => 10);     # its backend stops after DRAIN_WAIT

# ---- etcd stopped: nothing changes, no 5xx ----------------------------------------
my %all = %$after;
stop_etcd();
my ($codes5, $reqs) = burst(\%all, 2.5);
is($codes5, 0, "etcd stopped: no 5xx in $reqs requests over 2.5 s");
is(moved(\%all), 0, 'etcd stopped: no session moved');
is(states(), 'e1=disabled,e2=up,e3=up', 'etcd stopped: the set is unchanged');
$bj = balancer_of('etcd');
ok(($bj->{discovery}{errors} // 0) >= 1, 'JSON: the failures are counted (' . ($bj->{discovery}{errors} // 0) . ')');
like($bj->{discovery}{last_error} // '', qr/\Q$ep\E: .*refused/, 'JSON: the last error names the endpoint and why');

# ---- etcd back: a change is picked up ---------------------------------------------
start_etcd(restart => 1);
my $t0 = time;
register_member(route => 'e1', port => $port{e1}, prefix => $P);
my $treg = time - $t0;
$t = wait_for(sub { state_of('e1') eq 'up' }, 4);
ok(defined $t, sprintf('etcd back: e1 registered again (its script took %.1f s), up %.1f s after it started',
                       $treg, time - $t0));
$m = members_of();
is(scalar(keys %$m), 3, 'e1 back in its own slot (3 members, no new one)');
is(($m->{e1}{discovered} // {})->{state}, 'active', 'JSON: e1 active again');
is(moved(\%all), 0, 'etcd back: no session moved');

# ---- garbage values: ignored and counted ----------------------------------------------
etcd_put("${P}garbage", 'not json');
etcd_put("${P}bad-url", qq({"url": "http://127.0.0.1:$port{e2}/app"}));
etcd_put("${P}bad-factor", qq({"url": "http://127.0.0.1:9", "loadfactor": 500}));
ok(defined wait_for(sub { (balancer_of('etcd')->{discovery}{malformed} // 0) == 3 }, 3),
   'garbage: 3 values ignored, counted (' . (balancer_of('etcd')->{discovery}{malformed} // 0) . ')');
is(states(), 'e1=up,e2=up,e3=up', 'garbage: the set is unchanged');
my $prom = lb2_get('/stickylb-status?format=prometheus')->content;
like($prom, qr/^stickylb_discovery_malformed\{balancer="balancer:\/\/etcd"\} 3$/m,
     'Prometheus: the malformed entries of the last answer');
like($prom, qr/^stickylb_member_discovered\{balancer="balancer:\/\/etcd",member="http:\/\/127\.0\.0\.1:$port{e3}",route="e3"\} 1/m,
     'Prometheus: e3 is discovered');
my $logged = 0;
if (open my $el, '<', lb2_error_log()) {
    while (<$el>) {
        $logged++ if /SLB0515: discovery of balancer:\/\/etcd .*3 records the source could not read were ignored/;
    }
}
ok($logged >= 1, 'the malformed entries were logged (SLB0515)');
etcd_del("${P}$_") for qw(garbage bad-url bad-factor);

# ---- e3's script killed: nobody deletes its key, the lease expires -------------------
kill_member('e3');
$t = wait_for(sub { !member_registered($P, $port{e3}) }, 5);
ok(defined $t, sprintf('e3 lost: etcd deleted its key when the lease (2 s) expired (%.1f s)', $t // -1));
ok(defined wait_for(sub { state_of('e3') eq 'draining' }, 2), 'e3 lost: draining');

stop_lb2();
diag(sprintf('t/21_discover_etcd.t ran %.1f s', time - $t_start));
done_testing();
