package StickyLB::Configtest;
# configtest(BODY): `apache2 -t` of a private configuration holding BODY,
# with mod_stickylb and the modules its examples use; returns (exit
# status, output).  Also: config_blocks(FILE), the configuration examples
# of a README or Markdown page (for t/14_doc_examples.t).
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use Apache::Test ();

our @EXPORT_OK = qw(configtest config_blocks directives);

my $dir = tempdir(CLEANUP => 1);
my $libexec = '/usr/lib/apache2/modules';

sub dir { return $dir }

sub configtest { return httpd_run('-t', $_[0]) }

sub httpd_run {
    my ($flag, $body) = @_;
    my $httpd = Apache::Test::vars('httpd') || '/usr/sbin/apache2';
    my $module = $ENV{SLB_MODULE} or die "SLB_MODULE not set";
    my $conf = "$dir/test.conf";
    open my $fh, '>', $conf or die $!;
    print $fh <<"CONF";
ServerRoot "$dir"
ServerName localhost
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
Mutex file:$dir default
ErrorLog "$dir/error.log"
Listen 127.0.0.1:1
Define APACHE_LOG_DIR $dir
LoadModule mpm_event_module $libexec/mod_mpm_event.so
LoadModule authz_core_module $libexec/mod_authz_core.so
LoadModule authz_host_module $libexec/mod_authz_host.so
LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so
LoadModule headers_module $libexec/mod_headers.so
LoadModule status_module $libexec/mod_status.so
LoadModule proxy_module $libexec/mod_proxy.so
LoadModule proxy_http_module $libexec/mod_proxy_http.so
LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so
LoadModule lbmethod_byrequests_module $libexec/mod_lbmethod_byrequests.so
LoadModule stickylb_module $module
$body
CONF
    close $fh;
    my $out = `'$httpd' $flag -f '$conf' 2>&1`;
    return ($? >> 8, $out);
}

# The directives the loaded module registers (`apache2 -L`): name => help.
sub directives {
    my ($rc, $out) = httpd_run('-L', '');
    my %d;
    while ($out =~ /^(StickyLB\w+) \(mod_stickylb\.c\)\n\t([^\n]*)/mg) {
        $d{$1} = $2;
    }
    return %d;
}

# The configuration examples of FILE: indented blocks (four spaces) and
# fenced blocks (```) whose first line is an Apache directive or
# section.  Returns [line number, text] pairs, the text dedented.
my $FIRST = qr/^(?:<(?:VirtualHost|Proxy|Location|IfModule|Directory)\b
                 |(?:StickyLB\w+|ProxyPass|ProxySet|BalancerMember|Header
                    |RequestHeader|LogFormat|CustomLog|SetHandler)\b)/x;

sub config_blocks {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my @lines = <$fh>;
    close $fh;
    my (@blocks, @cur, $start, $fence);
    my $flush = sub {
        my @b = @cur;
        @cur = ();
        pop @b while @b && $b[-1] =~ /^\s*$/;
        return unless @b;
        my ($first) = grep { /\S/ } @b;
        push @blocks, [$start, join('', @b)] if $first =~ $FIRST;
    };
    for my $i (0 .. $#lines) {
        my $l = $lines[$i];
        if (defined $fence) {
            if ($l =~ /^```/) { $flush->(); undef $fence; next }
            push @cur, $l;
            next;
        }
        if ($l =~ /^```/) { $flush->(); $fence = 1; $start = $i + 2; next }
        if ($l =~ /^ {4}(.*\n?)/s) {
            $start = $i + 1 unless @cur;
            push @cur, $1;
            next;
        }
        if ($l =~ /^\s*$/ && @cur) { push @cur, "\n"; next }
        $flush->();
    }
    $flush->();
    return @blocks;
}

1;
