package StickyLB::Client;
# Small helpers for the mod_stickylb Apache::Test files.
use strict;
use warnings;
use Exporter 'import';
use Apache::TestRequest ();

our @EXPORT = qw(req url backend slb envinfo set_cookies body_field);

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

# "key: value" line of the backend's body.
sub body_field {
    my ($res, $key) = @_;
    for my $line (split /\n/, $res->content) {
        return $1 if $line =~ /^\Q$key\E: ?(.*)$/;
    }
    return undef;
}

1;
