package StickyLB::Services;
# memcached, a second Apache load balancer and a TLS backend (a private
# Apache with mod_ssl) for the mod_stickylb tests.  Every process is
# started with a pid file under t/logs and stopped by that PID, never by
# name.
use strict;
use warnings;
use Exporter 'import';
use File::Spec;
use IO::Socket::INET;
use POSIX ':sys_wait_h';
use Time::HiRes qw(time sleep);
use StickyLB::Backends ();

our @EXPORT = qw(start_memcached stop_memcached memcached_port
                 start_lb2 stop_lb2 lb2_url lb2_get lb2_error_log
                 start_tls_backend stop_tls_backend hosts_ns_available);

my $LOGS = StickyLB::Backends::logs_dir();

sub _port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return $s ? 1 : 0;
}

sub _pid_alive { my $p = shift; return $p && kill(0, $p) }

sub _read_pid {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    my $p = <$fh>;
    close $fh;
    return defined $p && $p =~ /(\d+)/ ? $1 : undef;
}

sub _stop_pid {
    my ($pid) = @_;
    return unless _pid_alive($pid);
    kill 'TERM', $pid;
    my $t = time + 5;
    while (time < $t) {
        waitpid($pid, WNOHANG);
        return unless _pid_alive($pid);
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub memcached_port { return $ENV{SLB_MC1_PORT} }

# memcached on 127.0.0.1:$SLB_MC1_PORT, in the foreground of a child
sub start_memcached {
    my $port = memcached_port();
    my $pidf = File::Spec->catfile($LOGS, 'memcached.pid');
    stop_memcached();
    my $bin = -x '/usr/bin/memcached' ? '/usr/bin/memcached' : 'memcached';
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', File::Spec->catfile($LOGS, 'memcached.log');
        open STDERR, '>&', \*STDOUT;
        exec $bin, '-l', '127.0.0.1', '-p', $port, '-U', '0', '-m', '16',
                   '-c', '256';
        exit 127;
    }
    open my $fh, '>', $pidf or die "$pidf: $!";
    print $fh "$pid\n";
    close $fh;
    my $t = time + 5;
    while (time < $t) {
        return $pid if _port_open($port);
        sleep 0.05;
    }
    die "memcached did not start on port $port\n";
}

sub stop_memcached {
    my $pidf = File::Spec->catfile($LOGS, 'memcached.pid');
    my $pid = _read_pid($pidf);
    _stop_pid($pid) if $pid;
    unlink $pidf;
}

# ---- a second Apache instance: the load balancer "lb2"
sub _lb2_dir { return File::Spec->catdir($LOGS, 'lb2') }

sub lb2_url { my ($path) = @_; return "http://127.0.0.1:$ENV{SLB_LB2_PORT}$path" }

sub lb2_error_log { return File::Spec->catfile(_lb2_dir(), 'error_log') }

my $HOSTS_NS = File::Spec->catfile(StickyLB::Backends::t_dir(), 'hosts_ns.pl');

# 1 when t/hosts_ns.pl works here (unprivileged user namespaces)
sub hosts_ns_available {
    system($^X, $HOSTS_NS, '--check');
    return $? == 0 ? 1 : 0;
}

# start lb2 with the given balancer configuration (a string of directives);
# with hosts => FILE it runs in namespaces of its own where FILE is
# /etc/hosts (t/hosts_ns.pl)
sub start_lb2 {
    my ($balancers, %o) = @_;
    my $dir = _lb2_dir();
    mkdir $dir unless -d $dir;
    stop_lb2();
    my $inherit = File::Spec->catfile($LOGS, 'inherit.conf');
    open my $in, '<', $inherit or die "$inherit: $!";
    # no mod_mime (it wants a mime.types file)
    my @load = grep { /^LoadModule/ && !/mime_module/ } <$in>;
    close $in;
    my $user = getpwuid($<);
    my $conf = File::Spec->catfile($dir, 'httpd.conf');
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh @load, <<"CONF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$ENV{SLB_LB2_PORT}
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error_log"
LogLevel warn stickylb:debug
StartServers 1
<Location "/">
    Require all granted
</Location>
Header always set X-SLB "%{STICKYLB_DECISION}e %{STICKYLB_KEY_SOURCE}e %{STICKYLB_ROUTE}e"
Header always set X-LB lb2
$balancers
CONF
    close $fh;
    my $wrap = $o{hosts} ? "'$^X' '$HOSTS_NS' '$o{hosts}' " : '';
    return _start_httpd('lb2', $conf, $dir, $ENV{SLB_LB2_PORT}, $wrap);
}

# start a private Apache (-f conf -k start, optionally through a wrapper
# command) and wait, at most 10 s, until it listens on port with its pid
# file written
sub _start_httpd {
    my ($what, $conf, $dir, $port, $wrap) = @_;
    my $httpd = $ENV{SLB_HTTPD} || '/usr/sbin/apache2';
    my $out = `$wrap'$httpd' -f '$conf' -k start 2>&1`;
    die "$what did not start: $out" if $?;
    my $t = time + 10;
    while (time < $t) {
        return 1 if _port_open($port) && -s "$dir/httpd.pid";
        sleep 0.05;
    }
    die "$what did not listen on $port\n";
}

sub stop_lb2 {
    my $dir = _lb2_dir();
    my $pid = _read_pid("$dir/httpd.pid");
    return unless $pid && _pid_alive($pid);
    kill 'TERM', $pid;
    my $t = time + 10;
    while (time < $t && _pid_alive($pid)) {
        sleep 0.05;
    }
    kill 'KILL', $pid if _pid_alive($pid);
    unlink "$dir/httpd.pid";
}

# ---- a TLS backend: a private Apache with mod_ssl, serving DIR/htdocs
# (a file "health" holding "UP") on 127.0.0.1:PORT, and every response
# with "X-Backend: tls".
#   start_tls_backend(dir => DIR, port => PORT, cert => chain.pem,
#                     key => key.pem)
sub start_tls_backend {
    my (%o) = @_;
    my $dir = $o{dir};
    mkdir "$dir/htdocs" unless -d "$dir/htdocs";
    open my $h, '>', "$dir/htdocs/health" or die "$dir/htdocs/health: $!";
    print $h "UP\n";
    close $h;
    stop_tls_backend($dir);
    my $mods = '/usr/lib/apache2/modules';
    my $conf = "$dir/httpd.conf";
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh <<"CONF";
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule headers_module $mods/mod_headers.so
LoadModule ssl_module $mods/mod_ssl.so
ServerRoot "$dir"
ServerName localhost
Listen 127.0.0.1:$o{port} https
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error_log"
LogLevel info ssl:info
StartServers 1
DocumentRoot "$dir/htdocs"
<Directory "$dir/htdocs">
    Require all granted
</Directory>
Header always set X-Backend tls
SSLEngine on
SSLCertificateFile "$o{cert}"
SSLCertificateKeyFile "$o{key}"
CONF
    close $fh;
    return _start_httpd('the TLS backend', $conf, $dir, $o{port}, '');
}

sub stop_tls_backend {
    my ($dir) = @_;
    my $pid = _read_pid("$dir/httpd.pid");
    return unless $pid && _pid_alive($pid);
    kill 'TERM', $pid;
    my $t = time + 10;
    while (time < $t && _pid_alive($pid)) {
        sleep 0.05;
    }
    kill 'KILL', $pid if _pid_alive($pid);
    unlink "$dir/httpd.pid";
}

sub lb2_get {
    my ($path, @headers) = @_;
    require Apache::TestRequest;
    return Apache::TestRequest::GET(lb2_url($path), @headers);
}

1;
