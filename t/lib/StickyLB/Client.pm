package StickyLB::Client;
# Small helpers for the mod_stickylb Apache::Test files.
use strict;
use warnings;
use Exporter 'import';
use Apache::TestRequest ();

our @EXPORT = qw(req url backend slb envinfo set_cookies body_field
                 keepalive keepalive_get manager_nonce manage_balancer);

# URL of $path on the named test virtual host.
sub url {
    my ($vhost, $path) = @_;
    return Apache::TestRequest::module2url($vhost, { path => $path });
}

# GET $path on $vhost with extra request headers (pairs; repeatable).
sub req {
    my ($vhost, $path, @headers) = @_;
    return Apache::TestRequest::GET(url($vhost, $path), @headers);
}

# Which backend answered (t/backend.pl sets X-Backend).
sub backend {
    my $res = shift;
    my $b = $res->header('X-Backend');
    return defined $b ? $b : '';
}

# (decision, key source, route) as mod_stickylb set them.
sub slb {
    my $res = shift;
    my $v = $res->header('X-SLB');
    return defined $v ? split(/ /, $v) : ();
}

# The BALANCER_* variables (mod_headers writes "(null)" for unset ones).
sub envinfo {
    my $res = shift;
    my %e;
    my $v = $res->header('X-Balancer-Env');
    return \%e unless defined $v;
    for (split / /, $v) {
        my ($k, $val) = split /=/, $_, 2;
        $e{$k} = $val;
    }
    return \%e;
}

# Set-Cookie headers of the response that set cookie $name.
sub set_cookies {
    my ($res, $name) = @_;
    return grep { /^\Q$name\E=/ } $res->header('Set-Cookie');
}

# A keep-alive connection to $vhost (HTTP/1.1, kept open between
# requests): ($socket, "host:port").
sub keepalive {
    my ($vhost) = @_;
    require IO::Socket::INET;
    my ($hp) = url($vhost, '/') =~ m{^https?://([^/]+)};
    my $sock = IO::Socket::INET->new(PeerAddr => $hp, Timeout => 10)
        or die "connect $hp: $!";
    return ($sock, $hp);
}

# GET $path on a keep-alive connection with extra headers (pairs): the
# status code and the response headers (lower-cased names), the body read
# and dropped; () when the connection was closed.
sub keepalive_get {
    my ($sock, $hp, $path, @headers) = @_;
    my $req = "GET $path HTTP/1.1\r\nHost: $hp\r\n";
    while (my ($k, $v) = splice @headers, 0, 2) {
        $req .= "$k: $v\r\n";
    }
    print $sock "$req\r\n";
    my $status = <$sock>;
    return () unless defined $status;
    my %h;
    while (defined(my $l = <$sock>)) {
        last if $l =~ /^\r?\n$/;
        $h{ lc $1 } = $2 if $l =~ /^([^:]+):\s*(.*?)\r?$/;
    }
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (defined(my $len = <$sock>)) {
            $len = hex $len;
            read($sock, my $chunk, $len + 2);
            last if $len == 0;
        }
    }
    else {
        read($sock, my $body, $h{'content-length'} // 0);
    }
    my ($code) = $status =~ m{^HTTP/\S+ (\d+)};
    return ($code, \%h);
}

# balancer-manager at URL $mgr: the nonce of balancer $bal on its page,
# and a POST of %fields for that balancer (b_*, w, w_*, as the page's
# forms send them).
sub manager_nonce {
    my ($mgr, $bal) = @_;
    my $page = Apache::TestRequest::GET($mgr)->content;
    my ($n) = $page =~ /[?&;]b=\Q$bal\E&(?:amp;)?nonce=([0-9a-f-]+)/;
    return $n;
}

sub manage_balancer {
    my ($mgr, $bal, %fields) = @_;
    return Apache::TestRequest::POST($mgr, [b => $bal,
                                            nonce => manager_nonce($mgr, $bal),
                                            %fields], Referer => $mgr);
}

# "key: value" line of the backend's body.
sub body_field {
    my ($res, $key) = @_;
    for my $line (split /\n/, $res->content) {
        return $1 if $line =~ /^\Q$key\E: ?(.*)$/;
    }
    return undef;
}

1;
