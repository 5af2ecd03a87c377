#!/usr/bin/env perl
#
# t/backend.pl - a Tomcat-like HTTP/1.1 test backend for the mod_stickylb
# test suite.  Plain Perl, core modules only.
#
# Usage:
#   perl t/backend.pl --port N --route t1 [--host 127.0.0.1] [--pidfile F]
#                     [--cookie-name JSESSIONID] [--no-route-suffix]
#                     [--idle-timeout 5] [--no-session] [--agent-file F]
#
# Behaviour (see also t/lib/StickyLB/Backends.pm):
#   * one forked child per connection, HTTP/1.1 keep-alive (idle timeout 5 s),
#     Content-Length always set; HEAD, GET, POST (Content-Length or chunked
#     request bodies; "Expect: 100-continue" is answered);
#   * like Tomcat, no state is shared between the forks, so a session is
#     "known" when its id is attributable to this backend:
#       - default: the text after the first '.' of the id equals --route
#         (ids look like <32 hex>.<route>);
#       - --no-route-suffix: the id starts with "<route>x"
#         (ids look like <route>x<32 hex>);
#     the id is taken from the cookie named --cookie-name or from a
#     ";jsessionid=" path parameter (name matched case-insensitively);
#   * unknown or missing session: a new one is issued with
#       Set-Cookie: <cookie-name>=<id>; Path=/; HttpOnly
#     (--no-session: never; the backend sets no cookie at all, like the
#     haproxy-peers demo's virtual hosts);
#   * response: 200 (or NNN for a path containing /status/NNN), text/plain,
#     "X-Backend: <route>", body lines:
#       backend: <route>
#       uri: <request-target>
#       method: <method>
#       cookie: <Cookie header(s) joined by "; ", or empty>
#       session: <session id in use>
#       new-session: 0|1
#       body-length: <bytes of request body read>
#       h-<lowercased header name>: <value>      (one line per request header)
#   * a path containing /sleep/MS sleeps MS milliseconds before answering;
#   * --agent-file F: GET /agent answers an agent check (StickyLBAgent)
#     from F, read at each request so a test can rewrite it: the body is
#     F's first line, and F's second line, if any, is sent as the header
#     "X-Agent-State" (no F: the body "up");
#   * the pid file is written (atomically) once listen() succeeded;
#   * SIGTERM/SIGINT: stop accepting, terminate the connection children,
#     remove the pid file, exit 0.
#
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(:sys_wait_h strftime);
use Getopt::Long qw(GetOptions);

my %opt = (
    host           => '127.0.0.1',
    'cookie-name'  => 'JSESSIONID',
    'idle-timeout' => 5,
);
GetOptions(\%opt, 'port=i', 'route=s', 'host=s', 'pidfile=s',
           'cookie-name=s', 'no-route-suffix', 'idle-timeout=f',
           'no-session', 'agent-file=s', 'help')
    or usage(2);
usage(0) if $opt{help};
usage(2) unless $opt{port} && defined $opt{route} && length $opt{route};

my $ROUTE       = $opt{route};
our $COOKIE_NAME = $opt{'cookie-name'};
our $NO_SUFFIX   = $opt{'no-route-suffix'} ? 1 : 0;
my $NO_SESSION  = $opt{'no-session'} ? 1 : 0;
my $IDLE        = $opt{'idle-timeout'};
my $MAX_HEADER  = 64 * 1024;

sub usage {
    print STDERR "usage: $0 --port N --route ROUTE [--host 127.0.0.1] "
               . "[--pidfile F] [--cookie-name JSESSIONID] [--no-route-suffix] "
               . "[--idle-timeout S] [--no-session] [--agent-file F]\n";
    exit $_[0];
}

sub logmsg { print STDERR "[backend $ROUTE pid $$] @_\n" }

$| = 1;
$SIG{PIPE} = 'IGNORE';

my $listen = IO::Socket::INET->new(
    LocalAddr => $opt{host},
    LocalPort => $opt{port},
    Proto     => 'tcp',
    Listen    => 128,
    ReuseAddr => 1,
) or do { logmsg("cannot listen on $opt{host}:$opt{port}: $@"); exit 1 };

my $parent_pid = $$;
my %kids;
my $stop = 0;

sub reap {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        delete $kids{$pid};
    }
}

# Children are reaped only from the main loop (no SIGCHLD handler), so a pid
# is always in %kids before it can be reaped: %kids never holds a stale pid
# that could be recycled by an unrelated process.
$SIG{CHLD} = 'DEFAULT';
$SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { $stop = 1 };

if ($opt{pidfile}) {
    my $tmp = "$opt{pidfile}.$$.tmp";
    open my $fh, '>', $tmp or do { logmsg("cannot write $tmp: $!"); exit 1 };
    print $fh "$$\n";
    close $fh or do { logmsg("cannot write $tmp: $!"); exit 1 };
    rename $tmp, $opt{pidfile}
        or do { logmsg("cannot rename $tmp: $!"); unlink $tmp; exit 1 };
}
logmsg("listening on $opt{host}:$opt{port}");

my $sel = IO::Select->new($listen);
while (!$stop) {
    reap();
    next unless $sel->can_read(0.5);
    my $client = $listen->accept or next;   # EINTR etc.: just loop
    my $pid = fork;
    if (!defined $pid) {
        logmsg("fork failed: $!");
        close $client;
        next;
    }
    if ($pid == 0) {
        # connection child
        $SIG{TERM} = $SIG{INT} = $SIG{HUP} = 'DEFAULT';
        $SIG{CHLD} = 'DEFAULT';
        close $listen;
        serve($client);
        close $client;
        POSIX::_exit(0);
    }
    $kids{$pid} = 1;
    close $client;
}

# shutdown
close $listen;
if ($opt{pidfile} && open my $fh, '<', $opt{pidfile}) {
    my $p = <$fh>;
    close $fh;
    unlink $opt{pidfile} if defined $p && $p =~ /^\s*$$\s*$/;
}
reap();
kill 'TERM', keys %kids if %kids;
for (1 .. 40) {
    reap();
    last unless %kids;
    select undef, undef, undef, 0.05;
}
if (%kids) {
    kill 'KILL', keys %kids;
    for (1 .. 20) {
        reap();
        last unless %kids;
        select undef, undef, undef, 0.05;
    }
}
logmsg("stopped");
exit 0;

# ---------------------------------------------------------------------------
# connection handling (runs in the forked child)

sub serve {
    my ($sock) = @_;
    binmode $sock;
    my $buf = '';
    my $csel = IO::Select->new($sock);

    # fill $buf; returns 0 on EOF/error/timeout
    my $fill = sub {
        my ($timeout) = @_;
        return 0 unless $csel->can_read($timeout);
        my $n = sysread $sock, $buf, 65536, length $buf;
        return defined $n && $n > 0 ? 1 : 0;
    };
    my $read_line = sub {
        my ($timeout) = @_;
        while (1) {
            my $i = index $buf, "\n";
            if ($i >= 0) {
                my $line = substr $buf, 0, $i + 1, '';
                $line =~ s/\r?\n\z//;
                return $line;
            }
            return undef if length $buf > $MAX_HEADER;
            return undef unless $fill->($timeout);
        }
    };
    my $read_n = sub {
        my ($n, $timeout) = @_;
        while (length $buf < $n) {
            return undef unless $fill->($timeout);
        }
        return substr $buf, 0, $n, '';
    };
    my $write = sub {
        my ($data) = @_;
        my $off = 0;
        while ($off < length $data) {
            my $w = syswrite $sock, $data, length($data) - $off, $off;
            return 0 unless defined $w && $w > 0;
            $off += $w;
        }
        return 1;
    };

    while (1) {
        # request line (skip stray empty lines between requests)
        my $line;
        do {
            $line = $read_line->($IDLE);
            return unless defined $line;
        } while ($line eq '');

        my ($method, $target, $proto) = split ' ', $line, 3;
        unless (defined $proto && $proto =~ m{^HTTP/(\d)\.(\d)$}) {
            $write->(simple_response(400, "bad request line\n"));
            return;
        }
        my $http11 = ($1 > 1 || ($1 == 1 && $2 >= 1)) ? 1 : 0;

        # headers
        my @headers;
        my $hsize = 0;
        while (1) {
            my $h = $read_line->($IDLE);
            return unless defined $h;
            last if $h eq '';
            $hsize += length $h;
            if ($hsize > $MAX_HEADER) {
                $write->(simple_response(431, "headers too large\n"));
                return;
            }
            if ($h =~ /^[ \t]/ && @headers) {        # obsolete line folding
                $h =~ s/^\s+//;
                $headers[-1][1] .= " $h";
                next;
            }
            my ($name, $value) = $h =~ /^([^:\s]+)\s*:\s*(.*?)\s*$/
                or do {
                    $write->(simple_response(400, "bad header line\n"));
                    return;
                };
            push @headers, [$name, $value];
        }
        my $hdr = sub {
            my $want = lc shift;
            my @v = map { $_->[1] } grep { lc($_->[0]) eq $want } @headers;
            return wantarray ? @v : $v[0];
        };

        # keep-alive decision
        my $conn = lc join ',', $hdr->('Connection');
        my $keep = $http11 ? ($conn !~ /\bclose\b/) : ($conn =~ /\bkeep-alive\b/);

        # request body
        my $body = '';
        my $expect = $hdr->('Expect');
        my $te = lc(join ',', $hdr->('Transfer-Encoding'));
        my $cl = $hdr->('Content-Length');
        my $has_body = ($te =~ /chunked/) || (defined $cl && $cl =~ /^\d+$/ && $cl > 0);
        if ($has_body && defined $expect && $expect =~ /^100-continue$/i && $http11) {
            $write->("HTTP/1.1 100 Continue\r\n\r\n") or return;
        }
        if ($te =~ /chunked/) {
            while (1) {
                my $sz = $read_line->($IDLE);
                return unless defined $sz;
                $sz =~ s/;.*//;
                $sz =~ s/\s+//g;
                return unless $sz =~ /^[0-9a-fA-F]+$/;
                my $n = hex $sz;
                if ($n == 0) {
                    # trailers
                    while (1) {
                        my $t = $read_line->($IDLE);
                        return unless defined $t;
                        last if $t eq '';
                    }
                    last;
                }
                my $chunk = $read_n->($n, $IDLE);
                return unless defined $chunk;
                $body .= $chunk;
                my $crlf = $read_line->($IDLE);
                return unless defined $crlf;
            }
        }
        elsif (defined $cl) {
            unless ($cl =~ /^\d+$/) {
                $write->(simple_response(400, "bad content-length\n"));
                return;
            }
            if ($cl > 0) {
                $body = $read_n->($cl, 30);
                return unless defined $body;
            }
        }

        # special paths
        my ($path) = $target =~ m{^([^?#]*)};
        $path = '' unless defined $path;
        my $status = 200;
        if ($path =~ m{/sleep/(\d+)(?=$|[/;?])}) {
            select undef, undef, undef, $1 / 1000;
        }
        if ($path =~ m{/status/(\d{3})(?=$|[/;?])}) {
            $status = $1;
        }

        # an agent check's answer, from the agent file
        if (defined $opt{'agent-file'} && $path eq '/agent') {
            my @lines = ('up');
            if (open my $af, '<', $opt{'agent-file'}) {
                @lines = map { s/\r?\n\z//r } <$af>;
                close $af;
            }
            my $ab = (defined $lines[0] ? $lines[0] : '') . "\n";
            my @ah = ("HTTP/1.1 200 OK", "X-Backend: $ROUTE",
                      'Content-Type: text/plain',
                      'Content-Length: ' . length($ab), 'Connection: close');
            push @ah, "X-Agent-State: $lines[1]" if defined $lines[1];
            my $ar = join('', map { "$_\r\n" } @ah) . "\r\n"
                     . (uc($method) eq 'HEAD' ? '' : $ab);
            syswrite $sock, $ar;
            return;
        }

        # per-request overrides (set by the test server with RequestHeader):
        #   X-Test-Session-Style: nosuffix   ids without a route suffix
        #   X-Test-Cookie-Name: NAME         session cookie name
        #   X-Test-Cache-Control: VALUE      sent back as Cache-Control
        my ($style) = $hdr->('X-Test-Session-Style');
        my ($cname) = $hdr->('X-Test-Cookie-Name');
        my ($cc) = $hdr->('X-Test-Cache-Control');
        local $NO_SUFFIX = ($style // '') eq 'nosuffix' ? 1 : $NO_SUFFIX;
        local $COOKIE_NAME = (defined $cname && $cname =~ /^[\w.-]+$/) ? $cname : $COOKIE_NAME;

        # session handling
        my @cookie_hdrs = $hdr->('Cookie');
        my $cookie_line = join '; ', @cookie_hdrs;
        my @candidates;
        for my $c (@cookie_hdrs) {
            for my $pair (split /\s*;\s*/, $c) {
                my ($n, $v) = split /=/, $pair, 2;
                next unless defined $v;
                $n =~ s/^\s+|\s+$//g;
                $v =~ s/^\s+|\s+$//g;
                $v =~ s/^"(.*)"$/$1/;
                push @candidates, $v if $n eq $COOKIE_NAME && length $v;
            }
        }
        my %pnames = (lc($COOKIE_NAME) => 1, jsessionid => 1);
        while ($path =~ /;([^;=\/?]+)=([^;\/?#]*)/g) {
            push @candidates, $2 if $pnames{lc $1} && length $2;
        }
        my ($session) = grep { known_session($_) } @candidates;
        my $new = 0;
        unless (defined $session) {
            $session = new_session_id();
            $new = 1;
        }

        my $resp_body = join '', map { "$_\n" }
            "backend: $ROUTE",
            "uri: $target",
            "method: $method",
            "cookie: $cookie_line",
            "session: $session",
            "new-session: $new",
            "body-length: " . length($body),
            map({ 'h-' . lc($_->[0]) . ": $_->[1]" } @headers);

        my @out = (
            "HTTP/1.1 $status " . reason($status),
            'Date: ' . strftime('%a, %d %b %Y %H:%M:%S GMT', gmtime),
            "Server: stickylb-test-backend/$ROUTE",
            "X-Backend: $ROUTE",
        );
        push @out, "Set-Cookie: $COOKIE_NAME=$session; Path=/; HttpOnly"
            if $new && !$NO_SESSION;
        push @out, "Cache-Control: $cc" if defined $cc && length $cc;
        my $no_body = ($status =~ /^1/ || $status == 204 || $status == 304);
        unless ($no_body) {
            push @out, 'Content-Type: text/plain',
                       'Content-Length: ' . length($resp_body);
        }
        if ($keep) {
            push @out, 'Connection: keep-alive' unless $http11;
        }
        else {
            push @out, 'Connection: close';
        }
        my $resp = join('', map { "$_\r\n" } @out) . "\r\n";
        $resp .= $resp_body unless $no_body || uc($method) eq 'HEAD';
        $write->($resp) or return;
        return unless $keep;
    }
}

sub known_session {
    my ($id) = @_;
    if ($NO_SUFFIX) {
        return index($id, "${ROUTE}x") == 0 ? 1 : 0;
    }
    my $dot = index $id, '.';
    return 0 if $dot < 0;
    return substr($id, $dot + 1) eq $ROUTE ? 1 : 0;
}

sub random_hex {
    my $bytes;
    if (open my $fh, '<:raw', '/dev/urandom') {
        read $fh, $bytes, 16;
        close $fh;
    }
    unless (defined $bytes && length $bytes == 16) {
        srand(time ^ ($$ << 8) ^ int(rand(1 << 30)));
        $bytes = join '', map { chr int rand 256 } 1 .. 16;
    }
    return unpack 'H*', $bytes;    # lowercase, like the other tests expect
}

sub new_session_id {
    my $hex = random_hex();
    return $NO_SUFFIX ? "${ROUTE}x$hex" : "$hex.$ROUTE";
}

sub reason {
    my %r = (
        100 => 'Continue', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
        204 => 'No Content', 301 => 'Moved Permanently', 302 => 'Found',
        303 => 'See Other', 304 => 'Not Modified', 307 => 'Temporary Redirect',
        400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
        404 => 'Not Found', 405 => 'Method Not Allowed', 408 => 'Request Timeout',
        409 => 'Conflict', 410 => 'Gone', 413 => 'Payload Too Large',
        429 => 'Too Many Requests', 431 => 'Request Header Fields Too Large',
        500 => 'Internal Server Error', 501 => 'Not Implemented',
        502 => 'Bad Gateway', 503 => 'Service Unavailable',
        504 => 'Gateway Timeout',
    );
    return $r{$_[0]} || 'Status';
}

sub simple_response {
    my ($status, $body) = @_;
    return "HTTP/1.1 $status " . reason($status) . "\r\n"
         . "X-Backend: $ROUTE\r\nContent-Type: text/plain\r\n"
         . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n"
         . $body;
}
