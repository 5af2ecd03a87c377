#!/usr/bin/perl
# bench/probe_listeners.pl - many loopback HTTP members in one process, for
# bench/probe_bench.sh.
#
#   perl bench/probe_listeners.pl --count N --ports-file FILE \
#        [--stats-file FILE] [--body TEXT]
#
# Listens on N ports of 127.0.0.1 (free ports chosen by the kernel) and
# writes them to --ports-file, one a line, once every listener is open (the
# file appears whole: written aside, then renamed).  Every connection gets,
# once its request head (up to the empty line) has arrived, a minimal
#   HTTP/1.0 200 OK, Content-Length, Content-Type, body "ok"
# and is closed.  A connection closed by the peer without a request (a TCP
# probe: connect, close) is counted and closed.
#
# One process, one select() loop, non-blocking accept/read/write: about
# N listeners + N connections at once, so the caller raises the fd limit
# (ulimit -n, about 2 x N + 100).  Perl's select() takes bit vectors of any
# length, and the kernel's select() is bounded by the fd limit, not by
# FD_SETSIZE; ready descriptors are found by index() in the unpacked
# vector, so a wake-up costs C-speed scanning, not a Perl loop over N.
#
# Counters go to --stats-file (written aside, then renamed) every second and
# at once on SIGUSR1, as one line of key=value:
#   seq=    number of the write (grows by one each time)
#   time=   Unix time of the write, with fractions
#   accepts=    connections accepted
#   responses=  requests answered with 200 (HTTP probes done)
#   empty=      connections closed by the peer before any request (TCP probes)
#   errors=     read/write errors, requests too large, idle connections cut
#   open=       connections open now
#   bursts=     bursts of connections seen (a gap of 0.3 s or more between
#               two accepts starts a new one: one burst per probe batch)
#   spread_ms=  first to last accept of the last complete burst (a burst
#               is complete 0.3 s after its last accept)
#   spread_max_ms= the largest such spread since the start or SIGUSR2
#   idle_ms=    time since the last accept (a quiet moment between two
#               batches: open=0 and idle_ms well above the spread)
# SIGUSR2 resets spread_max_ms.  SIGTERM or SIGINT: closes everything and
# exits 0.  Core modules only.
use strict;
use warnings;
use IO::Socket::INET;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(time);

my ($count, $ports_file, $stats_file, $body) = (0, '', '', 'ok');
GetOptions('count=i' => \$count, 'ports-file=s' => \$ports_file,
           'stats-file=s' => \$stats_file, 'body=s' => \$body)
    && $count > 0 && $ports_file ne ''
    or die "usage: $0 --count N --ports-file FILE [--stats-file FILE] [--body TEXT]\n";

my $RESPONSE = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
             . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n"
             . $body;
my $REQ_MAX = 16384;    # a request head larger than this is an error
my $IDLE_MAX = 10;      # seconds a connection may stay without a request

my ($stop, $dump) = (0, 0);
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
$SIG{USR1} = sub { $dump = 1 };
$SIG{PIPE} = 'IGNORE';

sub nonblock {
    my ($fh) = @_;
    my $fl = fcntl($fh, F_GETFL, 0) or die "fcntl F_GETFL: $!\n";
    fcntl($fh, F_SETFL, $fl | O_NONBLOCK) or die "fcntl F_SETFL: $!\n";
}

sub write_aside {
    my ($file, $text) = @_;
    my $tmp = "$file.tmp.$$";
    open my $o, '>', $tmp or die "$tmp: $!\n";
    print $o $text;
    close $o or die "$tmp: $!\n";
    rename $tmp, $file or die "rename $tmp: $!\n";
}

# ---- the listeners
my (@listen_fh, @ports);
my @listener_of;        # fd -> listening handle
my $rin_listen = '';
for (1 .. $count) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1024,
                                  ReuseAddr => 1)
        or die "probe_listeners: listener " . (scalar(@ports) + 1)
               . " of $count: $! (raise ulimit -n?)\n";
    nonblock($s);
    push @listen_fh, $s;
    push @ports, $s->sockport;
    $listener_of[fileno $s] = $s;
    vec($rin_listen, fileno $s, 1) = 1;
}
write_aside($ports_file, join('', map { "$_\n" } @ports));

# ---- the connections
my %conn;               # fd -> [handle, buffer, accepted at]
my $rin_conn = '';
my %n = (accepts => 0, responses => 0, empty => 0, errors => 0);
my $seq = 0;
# bursts: the prober sends a batch at once; its spread at the listeners
my $BURST_GAP = 0.3;
my ($b_open, $b_first, $b_last, $bursts, $spread, $spread_max) = (0, 0, 0, 0, 0, 0);
$SIG{USR2} = sub { $spread_max = 0 };

sub close_burst {
    $spread = $b_last - $b_first;
    $spread_max = $spread if $spread > $spread_max;
    $b_open = 0;
}

sub accepted_at {
    my ($t) = @_;
    if (!$b_open || $t - $b_last >= $BURST_GAP) {
        close_burst() if $b_open;
        $bursts++;
        $b_first = $t;
        $b_open = 1;
    }
    $b_last = $t;
}

sub drop {
    my ($fd) = @_;
    my $c = delete $conn{$fd} or return;
    vec($rin_conn, $fd, 1) = 0;
    close $c->[0];
}

sub stats {
    return unless $stats_file ne '';
    close_burst() if $b_open && time - $b_last >= $BURST_GAP;
    $seq++;
    write_aside($stats_file, sprintf("seq=%d time=%.6f accepts=%d responses=%d "
        . "empty=%d errors=%d open=%d bursts=%d spread_ms=%.1f "
        . "spread_max_ms=%.1f idle_ms=%.0f\n", $seq, time, $n{accepts},
        $n{responses}, $n{empty}, $n{errors}, scalar(keys %conn), $bursts,
        1000 * $spread, 1000 * $spread_max,
        $b_last ? 1000 * (time - $b_last) : -1));
}

# read what is there; answer once the request head is complete
sub serve {
    my ($fd) = @_;
    my $c = $conn{$fd} or return;
    for (;;) {
        my $got = sysread($c->[0], my $chunk, 4096);
        if (!defined $got) {
            return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $n{errors}++;
            return drop($fd);
        }
        if ($got == 0) {        # closed by the peer
            if ($c->[1] eq '') { $n{empty}++ } else { $n{errors}++ }
            return drop($fd);
        }
        $c->[1] .= $chunk;
        if (index($c->[1], "\r\n\r\n") >= 0 || index($c->[1], "\n\n") >= 0) {
            # 100-odd bytes into an empty socket buffer: written at once
            my $w = syswrite($c->[0], $RESPONSE);
            if (defined $w && $w == length $RESPONSE) { $n{responses}++ }
            else { $n{errors}++ }
            return drop($fd);
        }
        if (length $c->[1] > $REQ_MAX) {
            $n{errors}++;
            return drop($fd);
        }
    }
}

stats();
my $next_stats = time + 1;
my $next_sweep = time + $IDLE_MAX;
while (!$stop) {
    my $rout = $rin_listen | $rin_conn;
    my $nfound = select($rout, undef, undef, 0.5);
    my $err = $! + 0;
    if ($dump) {
        $dump = 0;
        stats();
        $next_stats = time + 1;
    }
    last if $stop;
    if ($nfound < 0) {
        next if $err == EINTR;
        $! = $err;
        die "probe_listeners: select: $!\n";
    }
    if ($nfound > 0) {
        my $bits = unpack('b*', $rout);
        my $fd = -1;
        while (($fd = index($bits, '1', $fd + 1)) >= 0) {
            if (my $l = $listener_of[$fd]) {
                # accept all that wait (one per probe, usually one)
                while (accept(my $c, $l)) {
                    accepted_at(time);
                    nonblock($c);
                    my $cfd = fileno $c;
                    $n{accepts}++;
                    $conn{$cfd} = [$c, '', time];
                    vec($rin_conn, $cfd, 1) = 1;
                }
            }
            elsif ($conn{$fd}) {
                serve($fd);
            }
        }
    }
    my $now = time;
    if ($now >= $next_stats) {
        stats();
        $next_stats = $now + 1;
    }
    if ($now >= $next_sweep) {
        for my $fd (keys %conn) {
            if ($now - $conn{$fd}[2] > $IDLE_MAX) { $n{errors}++; drop($fd) }
        }
        $next_sweep = $now + $IDLE_MAX;
    }
}
drop($_) for keys %conn;
close $_ for @listen_fh;
stats();
exit 0;
