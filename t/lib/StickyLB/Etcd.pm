package StickyLB::Etcd;
# etcd for the discovery tests: one etcd (Debian's etcd-server, 3.4) on
# loopback ports chosen here, its data under t/logs, started with a pid
# file and stopped by that PID; keys put and deleted through its JSON
# gateway (HTTP::Tiny); backends that register themselves with
# docker/etcd-register.sh, as the docker demo's containers do.
use strict;
use warnings;
use Exporter 'import';
use File::Spec;
use File::Path qw(remove_tree);
use HTTP::Tiny;
use MIME::Base64 qw(encode_base64 decode_base64);
use JSON::PP ();
use POSIX ':sys_wait_h';
use Time::HiRes qw(time sleep);
use StickyLB::Backends ();

our @EXPORT = qw(etcd_bin start_etcd stop_etcd etcd_port etcd_url
                 etcd_put etcd_del etcd_keys
                 register_member unregister_member kill_member
                 member_registered);

my $LOGS = StickyLB::Backends::logs_dir();
my $TOP = $ENV{SLB_TOP}
    || File::Spec->catdir(StickyLB::Backends::t_dir(), File::Spec->updir());
my $REGISTER = File::Spec->catfile($TOP, 'docker', 'etcd-register.sh');
my %E;          # port, peer, dir, pid
my %REG;        # route => pid of its etcd-register.sh
my $http = HTTP::Tiny->new(timeout => 2);

sub etcd_bin { return -x '/usr/bin/etcd' ? '/usr/bin/etcd' : undef }
sub etcd_port { return $E{port} }
sub etcd_url { return "http://127.0.0.1:$E{port}" }

sub _b64 { return encode_base64($_[0], '') }

sub _post {
    my ($path, $body) = @_;
    return $http->post(etcd_url() . $path,
                       { content => JSON::PP::encode_json($body),
                         headers => { 'Content-Type' => 'application/json' } });
}

sub _healthy {
    my $r = eval { _post('/v3/kv/range', { key => _b64("\0") }) };
    return $r && $r->{success};
}

sub _pid_alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    waitpid($pid, WNOHANG);
    return kill(0, $pid) ? 1 : 0;
}

# @cmd in the background (with the environment variables of %$env), its
# input /dev/null, its output appended to $log; its pid, also written to
# $pid_name under t/logs
sub _spawn {
    my ($log, $pid_name, $env, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        $ENV{$_} = $env->{$_} for keys %$env;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    if (open my $fh, '>', File::Spec->catfile($LOGS, $pid_name)) {
        print $fh "$pid\n";
        close $fh;
    }
    return $pid;
}

# 1 once $ready->() is true (asked every 50 ms), 0 after 10 s; dies with
# $exited when process $pid ends first
sub _wait_ready {
    my ($pid, $ready, $exited) = @_;
    my $t = time + 10;
    while (time < $t) {
        return 1 if $ready->();
        die $exited unless _pid_alive($pid);
        sleep 0.05;
    }
    return 0;
}

# etcd on fresh ports with a fresh data directory, or again on the same
# ports and data (restart => 1); dies when it does not answer within 10 s
sub start_etcd {
    my (%o) = @_;
    die "start_etcd: etcd is running (pid $E{pid})\n" if _pid_alive($E{pid});
    unless ($o{restart} && $E{port}) {
        $E{port} = StickyLB::Backends::free_port();
        $E{peer} = StickyLB::Backends::free_port();
        $E{dir} = File::Spec->catdir($LOGS, "etcd-$E{port}");
        remove_tree($E{dir});
    }
    my $client = "http://127.0.0.1:$E{port}";
    my $peer = "http://127.0.0.1:$E{peer}";
    my $log = File::Spec->catfile($LOGS, 'etcd.log');
    my $pid = _spawn($log, 'etcd.pid', {},
        etcd_bin(), '--name', 'default', '--data-dir', "$E{dir}/data",
        '--listen-client-urls', $client, '--advertise-client-urls', $client,
        '--listen-peer-urls', $peer, '--initial-advertise-peer-urls', $peer,
        '--initial-cluster', "default=$peer", '--log-level', 'warn');
    $E{pid} = $pid;
    return $pid if _wait_ready($pid, \&_healthy, "etcd exited at start (see $log)\n");
    stop_etcd();
    die "etcd did not answer on $client within 10 s (see $log)\n";
}

# stops etcd by its PID (TERM, KILL after 5 s); wipe => 1 removes its data
sub stop_etcd {
    my (%o) = @_;
    my $pid = $E{pid};
    if ($pid && _pid_alive($pid)) {
        kill 'TERM', $pid;
        my $t = time + 5;
        while (time < $t && _pid_alive($pid)) {
            sleep 0.05;
        }
        if (_pid_alive($pid)) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
        }
    }
    $E{pid} = undef;
    unlink File::Spec->catfile($LOGS, 'etcd.pid');
    remove_tree($E{dir}) if $o{wipe} && $E{dir};
}

sub etcd_put {
    my ($key, $val) = @_;
    my $r = _post('/v3/kv/put', { key => _b64($key), value => _b64($val) });
    die "etcd put $key: $r->{status} $r->{content}\n" unless $r->{success};
}

sub etcd_del {
    my ($key) = @_;
    my $r = _post('/v3/kv/deleterange', { key => _b64($key) });
    die "etcd delete $key: $r->{status} $r->{content}\n" unless $r->{success};
}

# { key => value } under a prefix
sub etcd_keys {
    my ($prefix) = @_;
    my $end = $prefix;
    substr($end, -1, 1) = chr(ord(substr($end, -1, 1)) + 1);
    my $r = _post('/v3/kv/range', { key => _b64($prefix), range_end => _b64($end) });
    die "etcd range $prefix: $r->{status}\n" unless $r->{success};
    my $j = JSON::PP::decode_json($r->{content});
    return { map { decode_base64($_->{key}) => decode_base64($_->{value} // '') }
             @{ $j->{kvs} // [] } };
}

# a backend t/backend.pl (route, port) run by docker/etcd-register.sh,
# which registers it under prefix; options: ttl, drain_wait, loadfactor,
# no_route (the key and value say no route: the balancer derives one)
sub register_member {
    my (%o) = @_;
    my $route = $o{route};
    my $port = $o{port};
    my $log = StickyLB::Backends::log_file($route);
    my $pidf = StickyLB::Backends::pid_file($route);
    unlink $pidf;
    my $pid = _spawn($log, "etcd-register-$route.pid",
        { ETCD_ENDPOINTS => etcd_url(), ETCD_PREFIX => $o{prefix},
          MEMBER_URL => "http://127.0.0.1:$port",
          ROUTE => $o{no_route} ? '' : $route, ETCD_TTL => $o{ttl} // 4,
          DRAIN_WAIT => $o{drain_wait} // 0, LOADFACTOR => $o{loadfactor} // '' },
        'bash', $REGISTER, '--', $^X, StickyLB::Backends::backend_script(),
        '--port', $port, '--route', $route, '--host', '127.0.0.1',
        '--pidfile', $pidf);
    $REG{$route} = $pid;
    return $pid if _wait_ready($pid, sub { member_registered($o{prefix}, $port) },
                               "etcd-register.sh for $route exited (see $log)\n");
    die "$route not registered under $o{prefix} within 10 s (see $log)\n";
}

sub member_registered {
    my ($prefix, $port) = @_;
    my $k = eval { etcd_keys($prefix) } || {};
    return exists $k->{"${prefix}127.0.0.1:$port"};
}

# SIGTERM to its etcd-register.sh (as docker stop does): the key goes at
# once, the backend after DRAIN_WAIT; wait => 1 waits for the script
sub unregister_member {
    my ($route, %o) = @_;
    my $pid = $REG{$route} or return;
    kill 'TERM', $pid;
    return unless $o{wait};
    my $t = time + ($o{wait} > 1 ? $o{wait} : 10);
    while (time < $t && _pid_alive($pid)) {
        sleep 0.05;
    }
    delete $REG{$route} unless _pid_alive($pid);
}

# SIGKILL to its etcd-register.sh (the container lost): nobody deletes
# the key, its lease expires; the backend is stopped too
sub kill_member {
    my ($route) = @_;
    my $pid = delete $REG{$route} or return;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    StickyLB::Backends::stop_backend($route);
}

END {
    local $?;
    for my $route (keys %REG) {
        my $pid = $REG{$route};
        kill 'KILL', $pid if _pid_alive($pid);
        eval { StickyLB::Backends::stop_backend($route) };
        unlink File::Spec->catfile($LOGS, "etcd-register-$route.pid");
    }
    stop_etcd(wipe => 1) if $E{pid};
}

1;
