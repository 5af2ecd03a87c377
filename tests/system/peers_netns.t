#!/usr/bin/env perl
# System test, as root: the peers scenario of docker/docker-compose.yml on
# separate hosts made of Linux network namespaces that this test creates.
#
#   client 10.77.0.100        lb1 10.77.0.11   lb2 10.77.0.12
#   mc1 10.77.0.21  mc2 10.77.0.22    t1 .31  t2 .32  t3 .33  (port 8080)
#
# Each host is a namespace of its own (name prefix slbnet<PID>-), with `lo`
# up and one veth pair to a bridge in a "switch" namespace; the addresses
# exist only inside those namespaces, nothing is added to the root
# namespace's interfaces or routes.  A host is cut off by setting the
# switch side of its veth down (a link down: its packets vanish, nothing
# answers, nothing is refused).
#
# lb1 and lb2 run docker/lb.conf, the file of the containers, with each
# one's environment (as docker/peers-local.sh does): the module built in
# $SLB_BUILD_DIR, a stick table in memcached on mc1 + mc2 with replicas=1,
# namespace "app", JSESSIONID learned from t/backend.pl --no-route-suffix
# (ids without a route: only the shared table makes them sticky).
#
# Phases (figures asserted, per-session tables printed with diag):
#   1. docker/client.sh in the client namespace: 12 sessions created
#      through lb1 continue on the same backend through lb2;
#   2. lb1 reloaded (apache2 -k graceful) under traffic and lb2 stopped:
#      the sessions stick through lb1; lb2 started again (empty local
#      table): they stick through it (bindings come from memcached);
#   3. mc1 cut off: the sessions stay sticky through both balancers, no
#      5xx, latency bounded by the memcached timeouts; 12 new sessions
#      created meanwhile (6 through each) stick through their creator, and
#      how many the other balancer finds at once is printed (measured, not
#      asserted: see phase 3); mc1 back: bindings are written to it again
#      and, within a few seconds, every session sticks through both
#      balancers (the misses until then are counted and printed);
#   4. t2 cut off: lb1 and lb2 mark it down (the module's probe), its
#      sessions fail over through lb1, and lb2 agrees on the new member
#      within cache= + 1 s (README), at its first request; no 5xx; t2
#      back: no bounce-back;
#   5. the recovery window, six times: mc1 or mc2 cut off for 1.5 s with
#      traffic through one balancer only, restored; new sessions created
#      during the 3.5 s after each return alternately through each
#      balancer and continued through both: none may break.
#
# Every process is started with `ip netns exec` and stopped by its PID (its
# process group); every namespace is deleted at the end, also when the
# test fails or dies.  Takes about 25 s.
use strict;
use warnings;
use FindBin;
use Test::More;
use Cwd ();
use Digest::SHA ();
use File::Temp qw(tempdir);
use IPC::Open2 qw(open2);
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

plan skip_all => 'needs root (network namespaces)' if $> != 0;
my $IP = (grep { -x } qw(/usr/sbin/ip /sbin/ip /usr/bin/ip /bin/ip))[0];
plan skip_all => 'iproute2 (ip) missing' unless $IP;
my $HTTPD = $ENV{HTTPD} || '/usr/sbin/apache2';
my $MEMCACHED = (grep { -x } qw(/usr/bin/memcached /usr/local/bin/memcached))[0];
plan skip_all => "$HTTPD missing" unless -x $HTTPD;
plan skip_all => 'memcached missing' unless $MEMCACHED;

my $top = Cwd::abs_path("$FindBin::Bin/../..");
my $P = "slbnet$$";                   # namespace names: $P-lb1, $P-sw, ...
my $SW = "$P-sw";
my (@made_ns, %proc, $client_pid, $client_in, $client_out, $dir);
my $t_start = time;

# ---------------------------------------------------------------- cleanup
# (runs on success, failure, die, and the signals below)
sub stop_group {
    my ($pid, $secs) = @_;
    return unless $pid && kill(0, $pid);
    # the process group (a backend's connection children, Apache's
    # children), or the process alone when it has no group of its own
    kill('TERM', -$pid) || kill('TERM', $pid);
    my $end = time + ($secs // 5);
    while (time < $end) {
        return if waitpid($pid, POSIX::WNOHANG()) != 0;
        sleep 0.05;
    }
    kill('KILL', -$pid) || kill('KILL', $pid);
    waitpid($pid, 0);
}

sub cleanup {
    if ($client_pid) {
        close $client_in if $client_in;
        stop_group($client_pid, 2);
        $client_pid = undef;
    }
    for my $name (sort keys %proc) {
        stop_group(delete $proc{$name});
    }
    for my $ns (reverse @made_ns) {
        system($IP, 'netns', 'del', $ns);
    }
    @made_ns = ();
}
END {
    my $rc = $?;
    alarm 0;
    cleanup();
    $? = $rc;
}
$SIG{$_} = sub { die "caught SIG$_[0]\n" } for qw(INT TERM HUP PIPE);
# the whole test is bounded: a stuck step fails it (the END block cleans up)
$SIG{ALRM} = sub { die "peers_netns.t: over its 230 s bound\n" };
alarm 230;

# ip netns add must work here (not in every container)
{
    my $probe = "$P-probe";
    if (system("$IP netns add $probe >/dev/null 2>&1") != 0) {
        plan skip_all => 'ip netns add does not work here';
    }
    system($IP, 'netns', 'del', $probe);
}

sub sh {
    my @cmd = @_;
    system(@cmd) == 0 or die "failed ($?): @cmd\n";
}

# ---------------------------------------------------------------- module
my $build = $ENV{SLB_BUILD_DIR} || "$top/_build";
my $module = "$build/.libs/mod_stickylb.so";
unless (-f $module) {
    # (its output on stderr: stdout is TAP)
    system("bash '$top/scripts/build.sh' 1>&2") == 0 or die "scripts/build.sh failed\n";
}
die "no module at $module\n" unless -f $module;
my $libexec = `apxs -q LIBEXECDIR 2>/dev/null` || '/usr/lib/apache2/modules';
chomp $libexec;

$dir = tempdir('stickylb-netns-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{SLB_KEEP_RUN});
chmod 0755, $dir;

# ---------------------------------------------------------------- hosts
my %addr = (
    client => '10.77.0.100',
    lb1 => '10.77.0.11', lb2 => '10.77.0.12',
    mc1 => '10.77.0.21', mc2 => '10.77.0.22',
    t1 => '10.77.0.31', t2 => '10.77.0.32', t3 => '10.77.0.33',
);
my @hosts = qw(client lb1 lb2 mc1 mc2 t1 t2 t3);
sub ns { return "$P-$_[0]" }

# what the root namespace has of ours (must stay empty)
sub root_traces {
    my $links = `$IP -o link show 2>/dev/null`;
    my $addrs = `$IP -o addr show 2>/dev/null`;
    my $routes = `$IP route show 2>/dev/null`;
    my @t = grep { /\Q$P\E/ } split /\n/, $links;
    push @t, grep { /10\.77\.0\./ } split /\n/, "$addrs\n$routes";
    return @t;
}

my @root_before = root_traces();
my $t0 = time;
sh($IP, 'netns', 'add', $SW);
push @made_ns, $SW;
sh($IP, '-n', $SW, 'link', 'set', 'lo', 'up');
sh($IP, '-n', $SW, 'link', 'add', 'br0', 'type', 'bridge');
sh($IP, '-n', $SW, 'link', 'set', 'br0', 'up');
for my $h (@hosts) {
    my $ns = ns($h);
    sh($IP, 'netns', 'add', $ns);
    push @made_ns, $ns;
    # the pair is created inside the switch namespace, its peer moved
    # straight into the host's: neither end ever exists in the root one
    sh($IP, '-n', $SW, 'link', 'add', $h, 'type', 'veth', 'peer', 'name', 'eth0',
       'netns', $ns);
    sh($IP, '-n', $SW, 'link', 'set', $h, 'master', 'br0');
    sh($IP, '-n', $SW, 'link', 'set', $h, 'up');
    sh($IP, '-n', $ns, 'link', 'set', 'lo', 'up');
    sh($IP, '-n', $ns, 'addr', 'add', "$addr{$h}/24", 'dev', 'eth0');
    sh($IP, '-n', $ns, 'link', 'set', 'eth0', 'up');
}
my @ours = grep { /^\Q$P\E-/ } map { (split ' ')[0] } split /\n/, `$IP netns list`;
is(scalar @ours, scalar(@hosts) + 1,
   sprintf('%d namespaces: %s and a switch (%.1f s)', scalar @ours,
           join(' ', @hosts), time - $t0));
my @root_after = root_traces();
is_deeply(\@root_after, \@root_before,
          'nothing added to the root namespace (no link of ours, no 10.77.0.0/24 address or route)')
    or diag(join "\n", @root_after);

sub cut     { sh($IP, '-n', $SW, 'link', 'set', $_[0], 'down') }
sub reattach { sh($IP, '-n', $SW, 'link', 'set', $_[0], 'up') }

# ---------------------------------------------------------------- processes
# spawn_in(name, host, {out, err, env}, cmd...): the command runs in the
# host's namespace as the leader of a process group of its own
sub spawn_in {
    my ($name, $host, $o, @cmd) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $o->{out} // '/dev/null';
        open STDERR, '>', $o->{err} // $o->{out} // '/dev/null';
        @ENV{ keys %{ $o->{env} || {} } } = values %{ $o->{env} || {} };
        delete @ENV{qw(http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};
        { exec $IP, 'netns', 'exec', ns($host), @cmd }
        POSIX::_exit(127);
    }
    $proc{$name} = $pid;
    return $pid;
}

# run_in(host, secs, env, cmd...): a command in a namespace, bounded in
# time; returns (exit status, output)
sub run_in {
    my ($host, $secs, $env, @cmd) = @_;
    my $out = "$dir/run.$$." . int(rand(1e9));
    my $pid = spawn_in('run', $host, { out => $out, env => $env }, @cmd);
    my $end = time + $secs;
    my $rc;
    while (time < $end) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) { $rc = $?; last }
        sleep 0.05;
    }
    unless (defined $rc) {
        stop_group($pid, 1);
        $rc = -1;
    }
    delete $proc{run};
    open my $fh, '<', $out;
    local $/;
    my $text = $fh ? <$fh> // '' : '';
    unlink $out;
    return ($rc, $text);
}

# ---------------------------------------------------------------- client
# One process in the client namespace does every request of phases 2-4:
# one JSON line in (address, path, cookie), one JSON line out (status,
# X-Load-Balancer, backend, session, new-session, Set-Cookie id, ms).
# Each request is bounded by its timeout.
my $client_pl = "$dir/client.pl";
open my $cfh, '>', $client_pl or die $!;
print $cfh <<'CLIENT';
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);
$| = 1;
$SIG{PIPE} = 'IGNORE';
my $json = JSON::PP->new->canonical;
while (my $line = <STDIN>) {
    my $q = $json->decode($line);
    my %r = (code => 0, lb => '-', backend => '-', session => '-', new => '-',
             set => '', body => '');
    my $t0 = time;
    my $to = $q->{timeout} || 10;
    my $s = IO::Socket::INET->new(PeerAddr => $q->{addr}, PeerPort => $q->{port},
                                  Timeout => $to);
    if (!$s) {
        $r{error} = "connect: $!";
    }
    elsif ($q->{mcget}) {
        # memcached text protocol: get
        print $s "get $q->{mcget}\r\n";
        my $sel = IO::Select->new($s);
        my $buf = '';
        while ($buf !~ /^END\r?$/m && $sel->can_read($t0 + $to - time)) {
            last unless sysread $s, $buf, 65536, length $buf;
        }
        ($r{value}) = $buf =~ /^VALUE \S+ \d+ \d+\r\n(.*?)\r\n/m;
        $r{code} = $buf =~ /^END\r?$/m ? 200 : 0;
    }
    elsif ($q->{stats}) {
        # memcached text protocol: stats
        print $s "stats\r\n";
        my $sel = IO::Select->new($s);
        my $buf = '';
        while ($buf !~ /^END\r?$/m && $sel->can_read($t0 + $to - time)) {
            last unless sysread $s, $buf, 65536, length $buf;
        }
        ($r{items}) = $buf =~ /^STAT curr_items (\d+)/m;
        $r{code} = defined $r{items} ? 200 : 0;
    }
    else {
        my $req = "GET $q->{path} HTTP/1.0\r\nHost: $q->{host}\r\n";
        $req .= "Cookie: $q->{cookie}\r\n" if $q->{cookie};
        print $s "$req\r\n";
        my $sel = IO::Select->new($s);
        my $resp = '';
        while ((my $left = $t0 + $to - time) > 0) {
            last unless $sel->can_read($left);
            last unless sysread $s, $resp, 65536, length $resp;
        }
        my ($head, $body) = split /\r\n\r\n/, $resp, 2;
        $head //= '';
        $body //= '';
        ($r{code}) = $head =~ m{^HTTP/\d\.\d (\d{3})};
        $r{code} //= 0;
        ($r{lb}) = $head =~ /^X-Load-Balancer: (\S+)/mi;
        ($r{set}) = $head =~ /^Set-Cookie: JSESSIONID=([^;\s]+)/mi;
        ($r{backend}) = $body =~ /^backend: (\S+)/m;
        ($r{session}) = $body =~ /^session: (\S+)/m;
        ($r{new}) = $body =~ /^new-session: (\d)/m;
        $r{body} = $body if $q->{want_body};
        $r{$_} //= '-' for qw(lb backend session new);
        $r{set} //= '';
    }
    $r{ms} = sprintf '%.1f', (time - $t0) * 1000;
    print $json->encode(\%r), "\n";
}
CLIENT
close $cfh;
{
    local %ENV = %ENV;
    delete @ENV{qw(http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};
    $client_pid = open2($client_out, $client_in, $IP, 'netns', 'exec', ns('client'),
                        'perl', $client_pl);
}
my $json = JSON::PP->new->canonical;

sub ask {
    my (%q) = @_;
    print $client_in $json->encode(\%q), "\n";
    my $line = <$client_out>;
    die "the client process in the client namespace died\n" unless defined $line;
    return $json->decode($line);
}

# one request of a session (sid, or undef for a new one) through lb1 / lb2
sub req {
    my ($lb, $sid, $path, $timeout) = @_;
    return ask(addr => $addr{$lb}, port => 80, host => $lb,
               path => $path // '/app/', timeout => $timeout // 10,
               cookie => $sid ? "JSESSIONID=$sid" : undef);
}

sub status_of {
    my ($lb) = @_;
    my $r = ask(addr => $addr{$lb}, port => 80, host => $lb, timeout => 5,
                path => '/stickylb-status?format=json', want_body => 1);
    return undef unless $r->{code} == 200;
    return eval { $json->decode($r->{body}) };
}

sub member_states {
    my ($lb) = @_;
    my $st = status_of($lb) or return {};
    my %s;
    for my $b (@{ $st->{balancers} || [] }) {
        $s{ $_->{route} } = $_->{state} for @{ $b->{members} || [] };
    }
    return \%s;
}

sub mc_items {
    my ($mc, $timeout) = @_;
    my $r = ask(addr => $addr{$mc}, port => 11211, stats => 1, timeout => $timeout || 1);
    return $r->{code} == 200 ? $r->{items} : undef;
}

# the binding of a session id on one memcached server (the module's key:
# "slb1:" + SHA-1 of "<namespace>\0<id>", value "1 <created> <route>")
sub mc_binding {
    my ($mc, $sid) = @_;
    my $key = 'slb1:' . Digest::SHA::sha1_hex("app\0$sid");
    my $r = ask(addr => $addr{$mc}, port => 11211, mcget => $key, timeout => 1);
    my ($route) = ($r->{value} // '') =~ /^1 \d+ (\S+)$/;
    return $route;
}

# ---------------------------------------------------------------- services
for my $mc (qw(mc1 mc2)) {
    spawn_in($mc, $mc, { out => "$dir/$mc.log" }, $MEMCACHED, '-u', 'nobody',
             '-l', $addr{$mc}, '-p', '11211', '-U', '0', '-m', '16');
}
for my $t (qw(t1 t2 t3)) {
    spawn_in($t, $t, { out => "$dir/$t.log" }, 'perl', "$top/t/backend.pl",
             '--host', $addr{$t}, '--port', '8080', '--route', $t,
             '--no-route-suffix');
}

my %lbenv;
for my $lb (qw(lb1 lb2)) {
    mkdir "$dir/$lb";
    open my $fh, '>', "$dir/$lb/httpd.conf" or die $!;
    # what Debian's apache2.conf and the image's enabled modules give
    # docker/lb.conf (as in docker/peers-local.sh)
    print $fh <<"CONF";
ServerRoot "$dir/$lb"
Listen \${LB_PORT}
PidFile "$dir/$lb/httpd.pid"
DefaultRuntimeDir "$dir/$lb"
Mutex file:$dir/$lb default
LogLevel warn
User nobody
Group nogroup
LoadModule mpm_event_module $libexec/mod_mpm_event.so
LoadModule authz_core_module $libexec/mod_authz_core.so
LoadModule authz_host_module $libexec/mod_authz_host.so
LoadModule headers_module $libexec/mod_headers.so
LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so
LoadModule proxy_module $libexec/mod_proxy.so
LoadModule proxy_http_module $libexec/mod_proxy_http.so
LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so
LoadModule stickylb_module $module
<Location "/">
    Require all granted
</Location>
Include "$top/docker/lb.conf"
CONF
    close $fh;
    $lbenv{$lb} = {
        LB_NAME => $lb, LB_PORT => 80, STICKYLB_NAMESPACE => 'app',
        MEMCACHED_SERVERS => "--SERVER=$addr{mc1}:11211 --SERVER=$addr{mc2}:11211",
        BACKEND_T1 => "$addr{t1}:8080", BACKEND_T2 => "$addr{t2}:8080",
        BACKEND_T3 => "$addr{t3}:8080",
    };
}

sub lb_up {
    my ($lb) = @_;
    my $end = time + 10;
    while (time < $end) {
        my $r = req($lb, undef, '/stickylb-status', 2);
        return 1 if $r->{code} == 200;
        sleep 0.1;
    }
    return 0;
}

sub lb_start {
    my ($lb) = @_;
    unlink "$dir/$lb/httpd.pid";
    # in the foreground, as in the container (lb.conf logs to stdout/stderr)
    spawn_in($lb, $lb, { out => "$dir/$lb/access.log", err => "$dir/$lb/error.log",
                         env => $lbenv{$lb} },
             $HTTPD, '-f', "$dir/$lb/httpd.conf", '-D', 'FOREGROUND');
    return lb_up($lb);
}

# apache2 -k graceful|stop inside the balancer's namespace, with its environment
sub lb_ctl {
    my ($lb, $what) = @_;
    my ($rc, $out) = run_in($lb, 15, $lbenv{$lb}, $HTTPD, '-f', "$dir/$lb/httpd.conf",
                            '-k', $what);
    diag("apache2 -k $what ($lb): $out") if $rc != 0;
    return $rc == 0;
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $ppid;
    }
    return @kids;
}

sub show_logs {
    for my $lb (qw(lb1 lb2)) {
        for my $f ("$dir/$lb/error.log", "$dir/$lb/access.log") {
            open my $fh, '<', $f or next;
            my @l = <$fh>;
            diag("--- $f (last 15 lines)\n", @l[ (@l > 15 ? -15 : 0) .. -1 ]);
        }
    }
}

my $svc_ok = 1;
for my $mc (qw(mc1 mc2)) {
    my $ok = 0;
    for (1 .. 100) { if (defined mc_items($mc)) { $ok = 1; last } sleep 0.1 }
    $svc_ok &&= $ok;
}
for my $t (qw(t1 t2 t3)) {
    my $ok = 0;
    for (1 .. 100) {
        my $r = ask(addr => $addr{$t}, port => 8080, host => $t, path => '/', timeout => 2);
        if ($r->{code} == 200) { $ok = 1; last }
        sleep 0.1;
    }
    $svc_ok &&= $ok;
}
ok($svc_ok, 'mc1, mc2 (memcached) and t1, t2, t3 (t/backend.pl) answer from the client host');
ok(lb_start('lb1') && lb_start('lb2'), 'lb1 and lb2 (docker/lb.conf) answer from the client host')
    or do { show_logs(); die "the balancers did not start\n" };

# a per-session table for diag(): rows of [session, columns..., result]
sub table {
    my ($title, $head, @rows) = @_;
    my $fmt = '%-37s' . ('  %-14s' x (@$head - 2)) . "  %s\n";
    return join '', "$title\n\n", sprintf($fmt, @$head),
                    map { sprintf $fmt, @$_ } @rows;
}

my (%owner, @sids);
my $bad5xx = sub { my $r = shift; return $r->{code} >= 500 || $r->{code} == 0 };

# ================================================================ phase 1
# docker/client.sh itself, from the client host
my $t1 = time;
my ($crc, $cout) = run_in('client', 60,
                          { LB1_URL => "http://$addr{lb1}", LB2_URL => "http://$addr{lb2}",
                            SESSIONS => 12, REQUESTS => 3, WAIT => 15 },
                          'bash', "$top/docker/client.sh");
diag("docker/client.sh in the client namespace:\n$cout");
is($crc, 0, 'phase 1: docker/client.sh exits 0');
my ($passed, $failed) = $cout =~ /^peers: (\d+) passed, (\d+) failed$/m;
is(($passed // "-") . " " . ($failed // "-"), '12 0', 'phase 1: "peers: 12 passed, 0 failed"');
my $rows = 0;
for my $line (split /\n/, $cout) {
    my ($sid, $b1, $b2, $res) = $line =~ /^(t\dx[0-9a-f]{32})\s+(\S+)\s+(\S+)\s+(.*)$/ or next;
    $rows++;
    next unless $res eq 'same' && $b2 eq join(',', ($b1) x 3) && $sid =~ /^\Q$b1\Ex/;
    $owner{$sid} = $b1;
    push @sids, $sid;
}
is($rows, 12, 'phase 1: 12 sessions in the table of client.sh');
is(scalar @sids, 12, 'phase 1: each created through lb1 and answered 3 times through lb2 by the backend that created it');
my %per;
$per{ $owner{$_} }++ for @sids;
ok((grep { ($per{$_} // 0) >= 2 } qw(t1 t2 t3)) == 3,
   'phase 1: the 12 sessions are spread over t1, t2, t3 ('
   . join(', ', map { "$_: " . ($per{$_} // 0) } qw(t1 t2 t3)) . ')');
diag(sprintf 'phase 1: %.1f s', time - $t1);
die "phase 1 left no sessions to go on with\n" unless @sids == 12;

# ================================================================ phase 2
# lb1 reloaded under traffic, lb2 stopped; then lb2 started again
my $t2 = time;
my $lb1_parent = $proc{lb1};
my %gen1 = map { $_ => 1 } children_of($lb1_parent);
ok(scalar(keys %gen1) > 0, 'phase 2: lb1 has children (' . scalar(keys %gen1) . ')');
my ($n2, $bad2, $moved2, $reloaded, $graceful_rc, %col) = (0, 0, 0, undef, undef);
{
    # apache2 -k graceful in lb1's namespace, while every session goes on
    # through lb1, until only children of the new generation are left
    # (bounded: 10 s, 2000 requests; at least 3 rounds of the 12 sessions)
    my $g = spawn_in('graceful', 'lb1', { out => "$dir/lb1/graceful.out", env => $lbenv{lb1} },
                     $HTTPD, '-f', "$dir/lb1/httpd.conf", '-k', 'graceful');
    my $start = time;
    my $end = $start + 10;
    while (time < $end && $n2 < 2000) {
        for my $sid (@sids) {
            my $r = req('lb1', $sid, '/app/reload');
            $n2++;
            $bad2++ if $r->{code} != 200;
            $moved2++ if $r->{backend} ne $owner{$sid} || $r->{new} ne '0';
        }
        if (!defined $graceful_rc && waitpid($g, POSIX::WNOHANG()) == $g) {
            $graceful_rc = $?;
            delete $proc{graceful};
        }
        if (defined $graceful_rc && !defined $reloaded) {
            my @now = children_of($lb1_parent);
            $reloaded = time - $start if @now && !grep { $gen1{$_} } @now;
        }
        last if defined $reloaded && $n2 >= 36;
        sleep 0.05;
    }
}
is($graceful_rc, 0, "phase 2: apache2 -k graceful in lb1's namespace");
ok(defined $reloaded, sprintf('phase 2: lb1 reloaded: its children all of a new generation after %.1f s, same parent', $reloaded // -1));
ok(kill(0, $lb1_parent), 'phase 2: lb1 parent process still running after the graceful restart');
is("$bad2 $moved2", '0 0', "phase 2: $n2 requests through lb1 during its reload: 0 errors, 0 moved");

my $lb2_parent = $proc{lb2};
ok(lb_ctl('lb2', 'stop'), "phase 2: apache2 -k stop in lb2's namespace");
{
    my ($gone, $end) = (0, time + 10);
    while (time < $end) {
        if (waitpid($lb2_parent, POSIX::WNOHANG()) == $lb2_parent) { $gone = 1; last }
        sleep 0.05;
    }
    ok($gone, 'phase 2: lb2 stopped (its parent exited)');
    stop_group(delete $proc{lb2}) unless $gone;
    delete $proc{lb2};
}
is(req('lb2', $sids[0], '/app/', 2)->{code}, 0, 'phase 2: lb2 refuses connections');
my ($bad, $moved) = (0, 0);
for my $sid (@sids) {
    my @seen;
    for (1 .. 2) {
        my $r = req('lb1', $sid, '/app/lb2-stopped');
        push @seen, $r->{backend};
        $bad++ if $bad5xx->($r) || $r->{lb} ne 'lb1';
        $moved++ if $r->{backend} ne $owner{$sid} || $r->{new} ne '0';
    }
    $col{$sid}{lb1} = join ',', @seen;
}
is("$bad $moved", '0 0', 'phase 2: lb2 stopped: the 12 sessions stick through lb1 (24 requests: 0 errors, 0 moved)');
ok(lb_start('lb2'), 'phase 2: lb2 started again');
{
    my $st = status_of('lb2');
    is($st ? $st->{store}{table}{entries} : 'no status', 0,
       'phase 2: lb2 restarted with an empty local table (status page: 0 bindings)');
}
($bad, $moved) = (0, 0);
for my $sid (@sids) {
    my @seen;
    for (1 .. 2) {
        my $r = req('lb2', $sid, '/app/lb2-restarted');
        push @seen, $r->{backend};
        $bad++ if $bad5xx->($r) || $r->{lb} ne 'lb2';
        $moved++ if $r->{backend} ne $owner{$sid} || $r->{new} ne '0';
    }
    $col{$sid}{lb2} = join ',', @seen;
}
is("$bad $moved", '0 0', 'phase 2: the 12 sessions stick through the restarted lb2 (24 requests: 0 errors, 0 moved; bindings from memcached)');
diag(table('phase 2: lb1 reloaded (graceful), lb2 stopped, then started again:',
           ['session', 'owner', 'lb1 (lb2 down)', 'lb2 restarted', 'result'],
           map { [$_, $owner{$_}, $col{$_}{lb1}, $col{$_}{lb2},
                  ($col{$_}{lb1} . ',' . $col{$_}{lb2}) eq join(',', ($owner{$_}) x 4)
                      ? 'same' : 'MOVED'] } @sids));
diag(sprintf 'phase 2: %.1f s', time - $t2);

# ================================================================ phase 3
# mc1 cut off (link down) for 6 s of traffic through both balancers
my $t3 = time;
my $items_before = mc_items('mc1') // -1;
cut('mc1');
my $cut_at = time;
is(mc_items('mc1', 0.5), undef, 'phase 3: mc1 cut off (link down: no answer from it)');
my (@new, %created_by, %other_of, %new_at, %in_mc2, %at_other);
my ($n3, $bad3, $moved3, $max3, $sum3) = (0, 0, 0, 0, 0);
my $note3 = sub {
    my ($r) = @_;
    $n3++;
    $bad3++ if $bad5xx->($r);
    $max3 = $r->{ms} if $r->{ms} > $max3;
    $sum3 += $r->{ms};
    return $r;
};
{
    # the 12 sessions alternately through lb1 and lb2; every 5th request a
    # new session, through lb1 and lb2 in turn, at once continued through
    # the other balancer (bounded: 6 s, 6000 requests)
    my ($i, $end) = (0, time + 6);
    while (time < $end && $n3 < 6000) {
        if ($i % 5 == 2 && @new < 12) {
            my $from = @new % 2 ? 'lb2' : 'lb1';
            my $to = $from eq 'lb1' ? 'lb2' : 'lb1';
            my $r = $note3->(req($from, undef, '/app/mc1-down'));
            if ($r->{code} == 200 && $r->{new} eq '1' && $r->{set} =~ /^\Q$r->{backend}\Ex/) {
                my $sid = $r->{set};
                push @new, $sid;
                $owner{$sid} = $r->{backend};
                $created_by{$sid} = $from;
                $other_of{$sid} = $to;
                $new_at{$sid} = time - $cut_at;
                # is the binding on the memcached server that answers?
                $in_mc2{$sid} = mc_binding('mc2', $sid);
                $at_other{$sid} = $note3->(req($to, $sid, '/app/mc1-down'));
            }
        }
        else {
            my $sid = $sids[$i % @sids];
            my $r = $note3->(req($i % 2 ? 'lb2' : 'lb1', $sid, '/app/mc1-down'));
            $moved3++ if $r->{backend} ne $owner{$sid} || $r->{new} ne '0';
        }
        $i++;
    }
}
# the new sessions through the balancer that created them, mc1 still cut
# off and their cached bindings older than cache= (2 s) by now
my %at_creator;
$at_creator{$_} = $note3->(req($created_by{$_}, $_, '/app/mc1-down')) for @new;
my $span3 = time - $cut_at;
my $shared = grep { my $r = $at_other{$_}; $r->{backend} eq $owner{$_} && $r->{new} eq '0' } @new;
my $kept = grep { my $r = $at_creator{$_}; $r->{backend} eq $owner{$_} && $r->{new} eq '0' } @new;
ok($n3 >= 200, sprintf('phase 3: %d requests in %.1f s with mc1 cut off', $n3, $span3));
is($bad3, 0, 'phase 3: no 5xx (nor lost request) with mc1 cut off');
is($moved3, 0, 'phase 3: the 12 sessions stayed on their backend through both balancers');
is(scalar @new, 12, 'phase 3: 12 new sessions created meanwhile (6 through lb1, 6 through lb2)');
is($kept, 12, 'phase 3: each new session sticks through the balancer that created it');
# a request costs at most a couple of memcached calls bounded by
# connect-timeout / timeout (50 ms each) before mc1 is left out for retry=
ok($max3 < 600, sprintf('phase 3: slowest request %.0f ms, mean %.1f ms (bound 600 ms: 50 ms timeouts + scheduling)',
                        $max3, $sum3 / ($n3 || 1)));
# a new session reaches the other balancer at once: a memcached call that
# times out on mc1 (the creator's add, the other balancer's lookup) is
# tried again at once on mc2, mc1 left out of that handle
is($shared, 12, 'phase 3: each new session is answered at once by its backend through the other balancer');
diag(table('phase 3: new sessions created with mc1 cut off:',
           ['session', 'at', 'created via', 'on mc2', 'other lb', 'creator again', 'at once'],
           map { [$_, sprintf('%.2f s', $new_at{$_}), "$created_by{$_}->$owner{$_}",
                  $in_mc2{$_} ? 'yes' : 'no', "$other_of{$_}->$at_other{$_}{backend}",
                  "$created_by{$_}->$at_creator{$_}{backend}",
                  $at_other{$_}{backend} eq $owner{$_} && $at_other{$_}{new} eq '0'
                      ? 'shared' : 'NOT SHARED'] } @new));

reattach('mc1');
my $up_at = time;
{
    # traffic until bindings are written to mc1 again (bounded: 10 s);
    # the new sessions through their creator, which publishes again a
    # binding memcached does not have when it re-validates it
    my ($items, $i, $end) = (undef, 0, time + 10);
    my @mix = map { [$_, undef] } @sids;
    push @mix, map { [$_, $created_by{$_}] } @new;
    while (time < $end) {
        my ($sid, $lb) = @{ $mix[$i % @mix] };
        $lb //= $i % 2 ? 'lb2' : 'lb1';
        my $r = req($lb, $sid, '/app/mc1-back');
        $bad3++ if $bad5xx->($r);
        $moved3++ if $r->{backend} ne $owner{$sid} || $r->{new} ne '0';
        $i++;
        next if $i % @mix;
        $items = mc_items('mc1') // $items;
        last if defined $items && $items > $items_before;
        sleep 0.05;
    }
    ok(defined $items && $items > $items_before,
       sprintf('phase 3: mc1 back: bindings written to it again within %.1f s (%d items, %d before the cut)',
               time - $up_at, $items // -1, $items_before));
}
is("$bad3 $moved3", '0 0', 'phase 3: mc1 back: no 5xx, the sessions stick through the balancer that has them');
# Every session through both balancers (its creator first), round after
# round, until a round where each one answers from its backend through
# both (bound: 12 s after mc1's return), and at least 7 s after it, so
# that the store has settled before phase 4.  A binding made during the
# outage was written to mc2 only (mc1 left out); a lookup that mc1, back
# and empty, answers "not found" reads the replica (mc2) and adds the
# binding back to mc1, so no balancer misses it.  A child process leaves
# mc1 out until retry= (2 s) after its last failure on it, and each
# libmemcached handle puts it back in its list a second or two later
# (next_retry, whole seconds): 7 s = 2 + 2 + cache= 2 + 1.
my ($rounds, $misses, $late, $clean_at, %missed) = (0, 0, 0);
($bad, $moved) = (0, 0);
while (time < $up_at + 12 && $rounds < 200) {
    my $m = 0;
    for my $sid (@sids, @new) {
        my $first = $created_by{$sid} // 'lb1';
        for my $lb ($first, $first eq 'lb1' ? 'lb2' : 'lb1') {
            my $r = req($lb, $sid, '/app/mc1-back');
            $bad++ if $bad5xx->($r);
            next if $r->{backend} eq $owner{$sid} && $r->{new} eq '0';
            $m++;
            $missed{$sid}++;
            diag(sprintf "phase 3: mc1 back (%.1f s): %s through %s: %s %s (new=%s), expected %s%s, on mc1: %s, on mc2: %s",
                 time - $up_at, $sid, $lb, $r->{code}, $r->{backend}, $r->{new}, $owner{$sid},
                 ($created_by{$sid} ? ", created via $created_by{$sid}" : ''),
                 mc_binding('mc1', $sid) // 'none', mc_binding('mc2', $sid) // 'none')
                if $missed{$sid} <= 2;
        }
    }
    $rounds++;
    $misses += $m;
    $late += $m if defined $clean_at;
    $clean_at //= time - $up_at if $m == 0;
    last if defined $clean_at && time - $up_at >= 7;
    sleep 0.1;
}
my $last_lb2 = time;       # (phase 4: when lb2 last saw the sessions)
ok(defined $clean_at && $clean_at <= 12,
   sprintf('phase 3: mc1 back: every one of the 24 sessions sticks through both balancers %.1f s after mc1 returned (bound 12 s)',
           $clean_at // -1));
is($late, 0, sprintf('phase 3: mc1 back: and keeps doing so until %.1f s after (%d rounds of 48 requests)',
                     time - $up_at, $rounds));
is($bad, 0, 'phase 3: mc1 back: no 5xx');
is($misses, 0, 'phase 3: mc1 back: no answer from another backend meanwhile (' . scalar(keys %missed)
   . ' sessions missed: a binding written to mc2 during the outage is read from the replica)');
push @sids, @new;
diag(sprintf 'phase 3: %.1f s', time - $t3);

# ================================================================ phase 4
# t2 cut off (link down): the probes of lb1 and lb2 mark it down, its
# sessions fail over through lb1, lb2 agrees; then t2 comes back
my $t4 = time;
my @victims = grep { $owner{$_} eq 't2' } @sids;
my @others = grep { $owner{$_} ne 't2' } @sids;
ok(@victims >= 3, 'phase 4: ' . scalar(@victims) . ' of the ' . scalar(@sids) . ' sessions are on t2');
my ($n4, $bad4, $moved4, $cut4, %down_at, %repinned) = (0, 0, 0);
# a request of a session that must stay where it is; an old id re-pinned
# after t2's failure stays on its new member, which never knew it and so
# issues a new id each time (new-session: 1)
my $other_req = sub {
    my ($lb, $sid, $path) = @_;
    my $r = req($lb, $sid, $path);
    $n4++;
    $bad4++ if $bad5xx->($r);
    if ($r->{backend} ne $owner{$sid} || ($r->{new} ne '0' && !$repinned{$sid})) {
        $moved4++;
        diag(sprintf 'phase 4: %s via %s: %s (new=%s), expected %s, %.1f s after the cut; on mc1: %s, on mc2: %s',
             $sid, $lb, $r->{backend}, $r->{new}, $owner{$sid}, time - $cut4,
             mc_binding('mc1', $sid) // 'none', mc_binding('mc2', $sid) // 'none') if $moved4 <= 10;
    }
};
cut('t2');
$cut4 = time;
{
    # until both balancers mark t2 down, bounded by 4 s: interval 1 s x
    # fall 2 + timeout 0.5 s + the 100 ms tick = 2.6 s (README), + slack
    # for a loaded machine; and until lb2 last saw t2's sessions more than
    # cache= + 1 = 3 s ago (so that its first request for them asks
    # memcached instead of trusting its cached binding)
    my ($i, $end) = (0, $cut4 + 6);
    while (time < $end && (keys(%down_at) < 2 || time - $last_lb2 < 3)) {
        # the other sessions go on meanwhile, through both balancers
        $other_req->($_, $others[$i++ % @others], '/app/t2-cut') for qw(lb1 lb2);
        for my $lb (qw(lb1 lb2)) {
            next if defined $down_at{$lb};
            my $state = member_states($lb)->{t2} // '';
            $down_at{$lb} = time - $cut4 if $state eq 'down-by-probe';
        }
        sleep 0.05;
    }
}
ok((grep { defined $_ && $_ <= 4 } @down_at{qw(lb1 lb2)}) == 2,
   sprintf('phase 4: t2 cut off: marked down by the probe of lb1 after %s s, of lb2 after %s s (bound 4 s)',
           map { defined $_ ? sprintf('%.1f', $_) : 'never' } @down_at{qw(lb1 lb2)}));

my (%new_owner, %new_sid, %repin_at, %lb2_first, %lb2_agreed, %lb2_new, %lb2_tries);
for my $sid (@victims) {
    my $r = req('lb1', $sid, '/app/t2-down');
    $repin_at{$sid} = time;
    $n4++;
    $bad4++ if $bad5xx->($r);
    $new_owner{$sid} = $r->{backend};
    # the new member does not know the session: it issues a new id, which
    # the browser sends from now on
    $new_sid{$sid} = $r->{new} eq '1' ? $r->{set} // '' : '';
}
my $over = grep { $new_owner{$_} =~ /^t[13]$/ } @victims;
is($over, scalar @victims, "phase 4: through lb1, each of t2's " . scalar(@victims)
   . ' sessions failed over to t1 or t3');
my $issued = grep { $new_sid{$_} =~ /^\Q$new_owner{$_}\Ex/ } @victims;
is($issued, scalar @victims, 'phase 4: each got a new session id from its new member');

# lb2: the old id follows lb1's re-pin within cache= + 1 = 3 s (README:
# a binding older than cache=2 s is re-validated in memcached); polled
# every 100 ms from the re-pin.  The new id was learned by lb1 (add).
for my $sid (@victims) {
    my $deadline = $repin_at{$sid} + 3;
    $lb2_tries{$sid} = 0;
    while ($lb2_tries{$sid} < 40) {
        my $r = req('lb2', $sid, '/app/t2-down');
        $lb2_tries{$sid}++;
        $n4++;
        $bad4++ if $bad5xx->($r);
        $lb2_first{$sid} //= $r->{backend};
        if ($r->{backend} eq $new_owner{$sid}) {
            $lb2_agreed{$sid} = time - $repin_at{$sid};
            last;
        }
        if (time > $deadline) {
            diag(sprintf 'phase 4: lb2 still answers %s for %s (lb1: %s) %.1f s after the re-pin; on mc1: %s, on mc2: %s',
                 $r->{backend}, $sid, $new_owner{$sid}, time - $repin_at{$sid},
                 mc_binding('mc1', $sid) // 'none', mc_binding('mc2', $sid) // 'none');
            last;
        }
        sleep 0.1;
    }
    my $r = req('lb2', $new_sid{$sid}, '/app/t2-down-new-id');
    $n4++;
    $bad4++ if $bad5xx->($r);
    $lb2_new{$sid} = $r->{backend} eq $new_owner{$sid} && $r->{new} eq '0' ? $r->{backend} : "$r->{backend}(new=$r->{new})";
}
my @agreed = grep { defined $lb2_agreed{$_} } @victims;
my ($slowest) = sort { $b <=> $a } map { $lb2_agreed{$_} } @agreed;
is(scalar @agreed, scalar @victims,
   sprintf('phase 4: lb2 agrees on the new member of each old id within 3 s of the re-pin (slowest %.2f s)',
           $slowest // -1));
my $first_ok = grep { $lb2_first{$_} eq $new_owner{$_} } @victims;
is($first_ok, scalar @victims,
   "phase 4: lb2's first request for each old id goes to the new member (its cached binding is older than cache=: re-validated)");
is(scalar(grep { $lb2_new{$_} eq $new_owner{$_} } @victims), scalar @victims,
   'phase 4: the new ids continue on their new member through lb2');
# from now on: the re-pinned old ids and the new ids live on the new member
for my $sid (@victims) {
    $owner{$sid} = $new_owner{$sid};
    $repinned{$sid} = 1;
    $owner{ $new_sid{$sid} } = $new_owner{$sid} if $new_sid{$sid};
}
my @all = (@sids, grep { $_ } map { $new_sid{$_} } @victims);

# t2 back: marked up by the probes (rise 2), and nothing bounces back
reattach('t2');
my $back4 = time;
my %up_at;
{
    # bounded by 5 s: a probe in flight when the link comes back may still
    # fail, then rise 2 passes: (rise + 1) x interval 1 s + timeout 0.5 s +
    # the tick = 3.6 s, + slack
    my ($i, $end) = (0, $back4 + 5);
    while (time < $end && keys(%up_at) < 2) {
        $other_req->($_, $all[$i++ % @all], '/app/t2-back') for qw(lb1 lb2);
        for my $lb (qw(lb1 lb2)) {
            next if defined $up_at{$lb};
            $up_at{$lb} = time - $back4 if (member_states($lb)->{t2} // '') eq 'up';
        }
        sleep 0.05;
    }
}
ok((grep { defined $_ && $_ <= 5 } @up_at{qw(lb1 lb2)}) == 2,
   sprintf('phase 4: t2 back: marked up by lb1 after %s s, by lb2 after %s s (bound 5 s: rise 2)',
           map { defined $_ ? sprintf('%.1f', $_) : 'never' } @up_at{qw(lb1 lb2)}));
my %after;
for my $sid (@all) {
    my @seen;
    for my $lb (qw(lb1 lb2)) {
        my $r = req($lb, $sid, '/app/t2-back');
        $n4++;
        $bad4++ if $bad5xx->($r);
        $moved4++ if $r->{backend} ne $owner{$sid} || ($r->{new} ne '0' && !$repinned{$sid});
        push @seen, $r->{backend};
    }
    $after{$sid} = join ',', @seen;
}
is($moved4, 0, 'phase 4: no session moved besides those of t2, none bounced back to t2 ('
   . scalar(@all) . ' sessions through both balancers)');
is($bad4, 0, "phase 4: $n4 requests, no 5xx (nor lost request)");
diag(table('phase 4: t2 cut off, its sessions failed over through lb1; lb2; t2 back:',
           ['session', 'lb1 (t2 cut)', 'lb2 first', 'lb2 agreed', 'new id: lb2', 'result'],
           map { [$_, $new_owner{$_}, $lb2_first{$_},
                  defined $lb2_agreed{$_} ? sprintf('%.2f s (%d req)', $lb2_agreed{$_}, $lb2_tries{$_}) : 'NEVER',
                  $lb2_new{$_},
                  (defined $lb2_agreed{$_} && $lb2_new{$_} eq $new_owner{$_}
                   && $after{$_} eq "$new_owner{$_},$new_owner{$_}") ? 'agree' : 'DIFFER'] } @victims));
diag(sprintf 'phase 4: %.1f s', time - $t4);

# ================================================================ phase 5
# The recovery window, again and again: mc1 or mc2 cut off (link down)
# for 1.5 s with traffic through one balancer only (the other sees nothing
# of the outage), then restored; during the 3.5 s after each return, new
# sessions are created alternately through lb1 and lb2 and continued at
# once twice through the other balancer and once through their creator.
# No session may break (bounded: 6 cycles, 40 new sessions each).
my $t5 = time;
my ($new5, $broken5, $bad5, @broken5) = (0, 0, 0);
for my $cycle (1 .. 6) {
    my $host = $cycle % 2 ? 'mc1' : 'mc2';
    my $busy = $cycle % 3 ? 'lb1' : 'lb2';
    cut($host);
    my $end = time + 1.5;
    my $k = 0;
    while (time < $end && $k < 200) {
        my $r = req($busy, $k % 3 ? $all[$k % @all] : undef, '/app/cut-again');
        $bad5++ if $bad5xx->($r);
        $k++;
    }
    reattach($host);
    my $back = time;
    my $n = 0;
    while (time - $back < 3.5 && $n < 40) {
        my $from = $n % 2 ? 'lb2' : 'lb1';
        my $to = $from eq 'lb1' ? 'lb2' : 'lb1';
        $n++;
        my $r = req($from, undef, '/app/recovery');
        $bad5++ if $bad5xx->($r);
        next unless $r->{code} == 200 && $r->{new} eq '1' && $r->{set} =~ /^\Q$r->{backend}\Ex/;
        my ($sid, $be) = ($r->{set}, $r->{backend});
        $new5++;
        for my $lb ($to, $from, $to) {
            my $x = req($lb, $sid, '/app/recovery');
            $bad5++ if $bad5xx->($x);
            next if $x->{backend} eq $be && $x->{new} eq '0';
            $broken5++;
            push @broken5, sprintf('cycle %d (%s cut, %s busy), %.2f s after the return: %s created via %s on %s, '
                                   . 'then via %s on %s (new=%s); on mc1: %s, on mc2: %s',
                                   $cycle, $host, $busy, time - $back, $sid, $from, $be, $lb,
                                   $x->{backend}, $x->{new}, mc_binding('mc1', $sid) // 'none',
                                   mc_binding('mc2', $sid) // 'none');
            last;
        }
        sleep 0.02;
    }
}
ok($new5 >= 100, "phase 5: $new5 new sessions created in the recovery windows of 6 cut-offs");
is($broken5, 0, 'phase 5: none of them broke between the balancers') or diag(join "\n", @broken5[0 .. ($#broken5 < 9 ? $#broken5 : 9)]);
is($bad5, 0, 'phase 5: no 5xx (nor lost request)');
diag(sprintf 'phase 5: %.1f s', time - $t5);

# ---------------------------------------------------------------- the end
{
    my @crashes;
    for my $lb (qw(lb1 lb2)) {
        open my $fh, '<', "$dir/$lb/error.log" or next;
        push @crashes, map { "$lb: $_" } grep { /exit signal|AH00052|AH00060/ } <$fh>;
    }
    is(scalar @crashes, 0, 'no Apache child of lb1 or lb2 crashed (error logs)')
        or diag(@crashes);
}
show_logs() unless Test::More->builder->is_passing;
my @pids = (values(%proc), $client_pid);
cleanup();
is(scalar(grep { kill 0, $_ } @pids), 0, 'every process started is stopped (by PID)');
my @left = grep { /^\Q$P\E-/ } map { (split ' ')[0] } split /\n/, `$IP netns list`;
is(scalar @left, 0, 'every namespace created is deleted (and with it every veth)');
diag(sprintf 'peers_netns.t: %.1f s in all', time - $t_start);
done_testing();
