package StickyLB::Backends;
#
# Helpers for the mod_stickylb Apache::Test suite: start/stop the Tomcat-like
# test backends (t/backend.pl).
#
#   use lib 't/lib';                      # t/TEST.PL puts t/lib in PERL5LIB
#   use StickyLB::Backends;               # exports the functions below
#
#   start_backend(route => 't4', port => N, %opts)  -> pid
#       %opts: host => '127.0.0.1', cookie_name => 'JSESSIONID',
#              no_route_suffix => 1, args => [extra backend.pl args]
#       port defaults to $ENV{SLB_T4_PORT} (SLB_<ROUTE>_PORT), else free_port().
#       A backend already running for that route is stopped first, so the
#       caller always gets a fresh backend with exactly the given options.
#       Waits (max 5 s) until the port accepts connections, dies otherwise.
#   stop_backend($route)     -> 1 if it was running and is gone now, 0 if it
#       was not running; dies if it would not go away.  SIGTERM, then poll
#       (max 5 s), then SIGKILL.  Always by the PID in t/logs/backend-R.pid.
#   ensure_backends(@routes) -> { route => pid } of the backends it started;
#       default routes: the standard ones started by t/TEST.PL (t1 t2 t3).
#   backend_port($route)     -> port (env SLB_<ROUTE>_PORT, else the port the
#       backend was started on, recorded in t/logs/backend-R.port)
#   backend_pid($route)      -> pid of the running backend or undef
#   backend_running($route)  -> true when its pid is alive
#   backend_url($route, $path) -> "http://127.0.0.1:PORT$path"
#   free_port()              -> a currently unused TCP port on 127.0.0.1
#   port_open($port [, $host]) -> true if a TCP connect succeeds
#   stop_all_backends()      -> stops every backend that has a pid file in t/logs
#
# Standard backends: routes t1 t2 t3 (started by t/TEST.PL) and t4 (reserved,
# started on demand by tests), ports from SLB_T1_PORT .. SLB_T4_PORT.
#
# PIDs live in pid files under t/logs/ (written by backend.pl itself once it
# listens), so any .t process can stop a backend started by another process.
# Nothing is ever killed by name.  Backends are double-forked (re-parented to
# init, which reaps them), so a backend stopped from a process that did not
# start it never lingers as a zombie.
#
use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use Cwd qw(abs_path);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(start_backend stop_backend ensure_backends backend_port
                 free_port);
our @EXPORT_OK = qw(backend_pid backend_running backend_url port_open
                    stop_all_backends standard_routes default_routes
                    t_dir logs_dir pid_file);
our %EXPORT_TAGS = (all => [@EXPORT, @EXPORT_OK]);

our $START_TIMEOUT = 5;
our $STOP_TIMEOUT  = 5;

my @STANDARD = qw(t1 t2 t3 t4);
my @DEFAULT  = qw(t1 t2 t3);

sub standard_routes { @STANDARD }
sub default_routes  { @DEFAULT }

# t/ is two levels up from t/lib/StickyLB/Backends.pm
my $T_DIR = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)),
                                        File::Spec->updir, File::Spec->updir));

sub t_dir    { $T_DIR }
sub logs_dir {
    my $d = File::Spec->catdir($T_DIR, 'logs');
    mkdir $d unless -d $d;
    return $d;
}
sub backend_script { File::Spec->catfile($T_DIR, 'backend.pl') }
sub pid_file  { File::Spec->catfile(logs_dir(), "backend-$_[0].pid") }
sub port_file { File::Spec->catfile(logs_dir(), "backend-$_[0].port") }
sub log_file  { File::Spec->catfile(logs_dir(), "backend-$_[0].log") }

sub _check_route {
    my ($route) = @_;
    die "backend route missing\n" unless defined $route && length $route;
    die "bad backend route '$route'\n" unless $route =~ /^[A-Za-z0-9_-]+$/;
    return $route;
}

sub _env_port {
    my ($route) = @_;
    my $v = $ENV{'SLB_' . uc($route) . '_PORT'};
    return (defined $v && $v =~ /^\d+$/) ? $v : undef;
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c;
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && $pid > 1;
    return 0 unless kill 0, $pid;
    # a zombie still answers kill 0: treat it as gone
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh>;
        close $fh;
        return 0 if defined $stat && $stat =~ /\)\s+([ZX])\s/;
    }
    return 1;
}

# is $pid really our backend.pl for $route? (guards against PID reuse)
sub _is_our_backend {
    my ($pid, $route) = @_;
    my $cmd = _slurp("/proc/$pid/cmdline");
    return 1 unless defined $cmd;    # no /proc: trust the pid file
    my @argv = split /\0/, $cmd;
    return 0 unless grep { /backend\.pl$/ } @argv;
    for my $i (0 .. $#argv - 1) {
        return 1 if $argv[$i] eq '--route' && $argv[$i + 1] eq $route;
    }
    return 0;
}

sub backend_pid {
    my $route = _check_route(shift);
    my $c = _slurp(pid_file($route));
    return undef unless defined $c && $c =~ /^\s*(\d+)\s*$/;
    my $pid = $1;
    return undef unless _alive($pid) && _is_our_backend($pid, $route);
    return $pid;
}

sub backend_running { defined backend_pid($_[0]) ? 1 : 0 }

sub backend_port {
    my $route = _check_route(shift);
    my $p = _env_port($route);
    return $p if defined $p;
    my $c = _slurp(port_file($route));
    return $1 if defined $c && $c =~ /^\s*(\d+)/;
    return undef;
}

sub backend_url {
    my ($route, $path) = @_;
    my $port = backend_port($route)
        or die "no port known for backend '$route'\n";
    $path = '/' unless defined $path;
    return "http://127.0.0.1:$port$path";
}

sub port_open {
    my ($port, $host) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host || '127.0.0.1',
                                  PeerPort => $port, Proto => 'tcp',
                                  Timeout  => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

my %handed_out;
# A free port BELOW the kernel's ephemeral range (32768-60999 on Linux):
# a port taken from that range can be grabbed as the source port of an
# outgoing connection (to a backend, to memcached) before the process that
# should listen on it starts.
sub free_port {
    my ($lo, $hi) = (20000, 32000);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        my ($elo) = split ' ', scalar <$fh>;
        close $fh;
        $hi = $elo - 1 if $elo && $elo - 1 < $hi;
        $lo = 1024 if $hi - $lo < 1000;
    }
    for (1 .. 200) {
        my $port = $lo + int(rand($hi - $lo));
        next if $handed_out{$port};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1)
            or next;
        close $s;
        $handed_out{$port} = 1;
        return $port;
    }
    die "free_port: no free port found\n";
}

sub _log_tail {
    my ($route) = @_;
    my $c = _slurp(log_file($route));
    return '' unless defined $c;
    my @l = split /\n/, $c;
    @l = @l[-10 .. -1] if @l > 10;
    return join '', map { "    $_\n" } @l;
}

sub start_backend {
    my %o = @_;
    my $route = _check_route($o{route});
    my $host  = $o{host} || '127.0.0.1';
    my $port  = $o{port} || _env_port($route) || free_port();

    stop_backend($route) if backend_running($route);

    my $pidf = pid_file($route);
    unlink $pidf;
    my @cmd = ($^X, backend_script(), '--port', $port, '--route', $route,
               '--host', $host, '--pidfile', $pidf);
    push @cmd, '--cookie-name', $o{cookie_name} if $o{cookie_name};
    push @cmd, '--no-route-suffix' if $o{no_route_suffix};
    push @cmd, @{ $o{args} } if $o{args};

    my $log = log_file($route);
    pipe(my $r, my $w) or die "pipe: $!\n";
    my $mid = fork;
    die "fork: $!\n" unless defined $mid;
    if ($mid == 0) {
        # intermediate child: fork the backend and exit at once, so the
        # backend is re-parented to init (no zombie in whoever stops it)
        close $r;
        my $pid = fork;
        POSIX::_exit(1) unless defined $pid;
        if ($pid) {
            syswrite $w, "$pid\n";
            POSIX::_exit(0);
        }
        close $w;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    close $w;
    my $line = <$r>;
    close $r;
    waitpid $mid, 0;
    my ($pid) = defined $line ? $line =~ /(\d+)/ : ();
    die "start_backend($route): could not fork the backend\n" unless $pid;

    my $deadline = time + $START_TIMEOUT;
    while (1) {
        my $c = _slurp($pidf);
        last if defined $c && $c =~ /^\s*$pid\s*$/ && port_open($port, $host);
        unless (_alive($pid)) {
            die "start_backend($route): backend.pl on $host:$port exited\n"
              . _log_tail($route);
        }
        if (time > $deadline) {
            kill 'KILL', $pid;
            unlink $pidf;
            die "start_backend($route): port $host:$port not accepting "
              . "connections after ${START_TIMEOUT}s\n" . _log_tail($route);
        }
        sleep 0.05;
    }
    if (open my $fh, '>', port_file($route)) {
        print $fh "$port\n";
        close $fh;
    }
    return $pid;
}

sub stop_backend {
    my $route = _check_route(shift);
    my $pidf = pid_file($route);
    my $pid = backend_pid($route);
    unless ($pid) {
        unlink $pidf;
        return 0;
    }
    kill 'TERM', $pid;
    my $deadline = time + $STOP_TIMEOUT;
    while (_alive($pid) && time < $deadline) {
        waitpid $pid, POSIX::WNOHANG();    # in case it is our own child
        sleep 0.05;
    }
    if (_alive($pid)) {
        kill 'KILL', $pid;
        my $d2 = time + 1;
        while (_alive($pid) && time < $d2) {
            waitpid $pid, POSIX::WNOHANG();
            sleep 0.05;
        }
    }
    die "stop_backend($route): pid $pid did not exit\n" if _alive($pid);
    unlink $pidf;
    return 1;
}

sub ensure_backends {
    my @routes = @_ ? @_ : @DEFAULT;
    my %started;
    for my $route (@routes) {
        my $port = _env_port($route);
        my $pid = backend_pid($route);
        my $recorded = backend_port_recorded($route);
        next if $pid && (!$port || ($recorded && $recorded == $port))
                     && port_open($recorded || $port);
        $started{$route} = start_backend(route => $route,
                                         ($port ? (port => $port) : ()));
    }
    return \%started;
}

sub backend_port_recorded {
    my $c = _slurp(port_file($_[0]));
    return (defined $c && $c =~ /^\s*(\d+)/) ? $1 : undef;
}

sub stop_all_backends {
    my $dir = logs_dir();
    opendir my $dh, $dir or return 0;
    my @routes = map { /^backend-([A-Za-z0-9_-]+)\.pid$/ ? $1 : () } readdir $dh;
    closedir $dh;
    my $n = 0;
    for my $route (sort @routes) {
        $n += eval { stop_backend($route) } || 0;
        warn $@ if $@;
    }
    return $n;
}

1;
