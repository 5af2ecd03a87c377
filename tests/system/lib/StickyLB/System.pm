package StickyLB::System;
# Shared pieces of the root-only system tests: a private Apache with
# mod_stickylb, Tomcat-like backends (t/backend.pl), memcached, a tiny HTTP
# client.  Every process is stopped by its PID in stop_all().
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use FindBin ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(free_port wait_port spawn start_apache graceful stop_all
                 http_get workdir backend_start backend_stop
                 memcached_start memcached_kill);

my $top = "$FindBin::Bin/../..";
my $dir = tempdir('stickylb-system-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{SLB_KEEP});
chmod 0755, $dir;
my (@pids, %backend_pid, %apache_conf);

sub workdir { return $dir }

# below the ephemeral range, so no outgoing connection takes it first
my %given;
sub free_port {
    for (1 .. 200) {
        my $p = 20000 + int(rand(12000));
        next if $given{$p};
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                      Listen => 1, ReuseAddr => 1) or next;
        close $s;
        $given{$p} = 1;
        return $p;
    }
    die "no free port\n";
}

sub wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        return 1 if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port, Timeout => 1);
        sleep 0.05;
    }
    die "nothing listens on $port\n";
}

# spawn($log, @cmd): the command runs as the leader of a process group of
# its own, so a backend and the per-connection children it forks can be
# killed together (a dying JVM takes its connections with it)
sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        { exec @cmd }
        POSIX::_exit(127);
    }
    push @pids, $pid;
    return $pid;
}

sub backend_start {
    my ($route, $port, @opt) = @_;
    $backend_pid{$route} = spawn("$dir/$route.log", 'perl', "$top/t/backend.pl",
                                 '--host', '127.0.0.1', '--port', $port,
                                 '--route', $route, @opt);
    wait_port($port);
}

sub backend_stop {
    my ($route) = @_;
    my $pid = delete $backend_pid{$route} or return;
    # the whole group: connection children kept alive by Apache's
    # keep-alive pool would otherwise go on answering as this member
    kill 'KILL', -$pid;
    waitpid($pid, 0);
    @pids = grep { $_ != $pid } @pids;
}

# memcached on 127.0.0.1:$port (as nobody), waited for; its pid
sub memcached_start {
    my ($port) = @_;
    my $pid = spawn("$dir/memcached-$port.log", '/usr/bin/memcached', '-u',
                    'nobody', '-l', '127.0.0.1', '-p', $port, '-U', '0',
                    '-m', '16');
    wait_port($port);
    return $pid;
}

# a crash of the memcached of pid: no goodbye, the bindings it held gone
sub memcached_kill {
    my ($pid) = @_;
    return unless $pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    @pids = grep { $_ != $pid } @pids;
}

# start Apache with the module and the given configuration lines; a
# name (optional) for a second instance and more ("lb2": its files are
# lb2-httpd.conf, lb2-httpd.pid, lb2-error.log in the work dir)
sub start_apache {
    my ($port, $body, $name) = @_;
    $name //= '';
    my $pre = length $name ? "$name-" : '';
    my $build = $ENV{SLB_BUILD_DIR} || "$top/_build";
    my $libexec = `apxs -q LIBEXECDIR`;
    chomp $libexec;
    my $conf = $apache_conf{$name} = "$dir/${pre}httpd.conf";
    mkdir "$dir/${pre}run";
    open my $fh, '>', $conf or die $!;
    print $fh <<"CONF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/${pre}httpd.pid"
DefaultRuntimeDir "$dir/${pre}run"
Mutex file:$dir/${pre}run default
ErrorLog "$dir/${pre}error.log"
LogLevel warn
User nobody
Group nogroup
MaxConnectionsPerChild 0
LoadModule mpm_event_module $libexec/mod_mpm_event.so
LoadModule authz_core_module $libexec/mod_authz_core.so
LoadModule headers_module $libexec/mod_headers.so
LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so
LoadModule proxy_module $libexec/mod_proxy.so
LoadModule proxy_http_module $libexec/mod_proxy_http.so
LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so
LoadModule stickylb_module $build/.libs/mod_stickylb.so
Header always set X-SLB "%{STICKYLB_DECISION}e %{STICKYLB_KEY_SOURCE}e"
<Location "/">
    Require all granted
</Location>
$body
CONF
    close $fh;
    chmod 0777, "$dir/${pre}run";
    system('/usr/sbin/apache2', '-f', $conf, '-k', 'start') == 0
        or die "apache ${pre}did not start\n";
    wait_port($port);
}

sub graceful {
    my ($name) = @_;
    system('/usr/sbin/apache2', '-f', $apache_conf{$name // ''}, '-k',
           'graceful') == 0
        or die "graceful failed\n";
}

sub stop_all {
    for my $name (sort keys %apache_conf) {
        my $pre = length $name ? "$name-" : '';
        next unless -s "$dir/${pre}httpd.pid";
        system('/usr/sbin/apache2', '-f', $apache_conf{$name}, '-k', 'stop');
        for (1 .. 100) { last unless -e "$dir/${pre}httpd.pid"; sleep 0.05 }
    }
    %apache_conf = ();
    for my $p (@pids) { kill 'TERM', $p; waitpid($p, 0) }
    @pids = ();
}

# one HTTP/1.0 request: (status, backend, decision, seconds, Set-Cookie JSESSIONID)
sub http_get {
    my ($port, $path, @headers) = @_;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 10) or return (0, '', '', 10);
    my $h = join '', map { "$_\r\n" } @headers;
    print $s "GET $path HTTP/1.0\r\nHost: 127.0.0.1\r\n$h\r\n";
    local $/;
    my $resp = <$s> // '';
    my $dt = time - $t0;
    my ($code) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($be) = $resp =~ /^X-Backend: (\S+)/m;
    my ($dec) = $resp =~ /^X-SLB: (\S+)/m;
    my ($sid) = $resp =~ /^Set-Cookie: JSESSIONID=([^;\s]+)/m;
    return ($code // 0, $be // '', $dec // '', $dt, $sid);
}

1;
