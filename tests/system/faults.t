#!/usr/bin/env perl
# Fault tests under bounded load (root: Apache runs its children as nobody):
#  1. a member killed and restarted during traffic,
#  2. apachectl -k graceful during traffic,
#  3. a flood of hostile requests during normal traffic.
# Each phase runs 4 client processes for a few seconds and asserts figures.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use StickyLB::System;

plan skip_all => 'needs root' if $> != 0;

my $lb = free_port();
my %port = map { $_ => free_port() } qw(t1 t2 t3);
END { local $?; stop_all() }

backend_start($_, $port{$_}, '--no-route-suffix') for sort keys %port;
start_apache($lb, <<"CONF");
<Proxy "balancer://app">
    BalancerMember "http://127.0.0.1:$port{t1}" route=t1 retry=1
    BalancerMember "http://127.0.0.1:$port{t2}" route=t2 retry=1
    BalancerMember "http://127.0.0.1:$port{t3}" route=t3 retry=1
    ProxySet lbmethod=stickylb
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
</Proxy>
ProxyPass "/st" "!"
ProxyPass "/app" "balancer://app"
<Location "/st">
    SetHandler stickylb-status
</Location>
CONF

my %owner;
for (1 .. 40) {
    my ($code, $be, undef, undef, $sid) = http_get($lb, '/app/');
    $owner{$sid} = $be if $code == 200 && $sid;
}
is(scalar keys %owner, 40, '40 sessions learned');

# run $workers clients for $secs over the sessions; each line of the
# result: "code backend sid client time" (time: when the answer came)
sub load {
    my ($secs, $during, @extra) = @_;
    my @sids = sort keys %owner;
    my @kids;
    my $dir = workdir();
    for my $w (0 .. 3) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            open my $out, '>', "$dir/load.$w" or POSIX::_exit(1);
            my $end = time + $secs;
            my ($i, $n) = ($w, 0);
            while (time < $end && $n < 20000) {
                my $sid = $sids[$i % @sids];
                my ($code, $be) = http_get($lb, '/app/', "Cookie: JSESSIONID=$sid");
                printf $out "%s %s %s %d %.6f\n", $code, ($be || "-"), $sid, $w, time;
                $i += 4;
                $n++;
            }
            close $out;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    $during->() if $during;
    waitpid($_, 0) for @kids;
    my @lines;
    for my $w (0 .. 3) {
        open my $in, '<', "$dir/load.$w" or next;
        push @lines, map { [split ' '] } <$in>;
        close $in;
    }
    return @lines;
}

# --- 1. t2 killed after 2 s, back after 5 s, traffic for 8 s
# A request fails only when it is in flight on t2 as t2's processes die:
# the balancer's sessions of t1 and t3 never see an error, and once a
# connect to t2 is refused the member is in error and its sessions fail
# over.  t2 dies as a process group (its parent and one child per pooled
# connection of Apache), so the deaths take a few milliseconds, and a client
# whose request failed on one pooled connection may send its next one on
# another connection to a child not yet dead (seen: 5 and 6 errors with 4
# clients, before and after this round's changes; at most 2 from one
# client in the runs since).  So: every error is a request of a t2 session
# answered within 0.5 s of the kill, at most 5 from one client.
my ($t_kill, $t_killed);
my @r = load(8, sub {
    sleep 2;
    $t_kill = time;
    backend_stop('t2');
    $t_killed = time;
    sleep 3;
    backend_start('t2', $port{t2}, '--no-route-suffix');
});
my @errs = grep { $_->[0] >= 500 || $_->[0] == 0 } @r;
my $err = @errs;
my %err_of;
$err_of{ $_->[3] }++ for @errs;
my @late = grep { $_->[4] < $t_kill || $_->[4] > $t_killed + 0.5 } @errs;
my @not2 = grep { $owner{ $_->[2] } ne 't2' } @errs;
my ($most) = sort { $b <=> $a } values %err_of;
my $moved = grep { $owner{ $_->[2] } ne 't2' && $_->[1] ne $owner{ $_->[2] } } @r;
my $from2 = grep { $owner{ $_->[2] } eq 't2' && $_->[0] == 200 && $_->[1] ne 't2' } @r;
ok(@r > 200, scalar(@r) . ' requests while t2 was killed and restarted');
is(scalar @not2, 0, "errors only on t2's sessions ($err errors)");
is(scalar @late, 0, sprintf('every error answered within 0.5 s of the kill (the kill took %.3f s)', $t_killed - $t_kill));
ok(($most // 0) <= 5, 'at most 5 errors a client (' . join(',', map { $err_of{$_} // 0 } 0 .. 3) . ')');
is($moved, 0, 'sessions on t1 and t3 kept their member');
ok($from2 > 0, "sessions of t2 were served elsewhere meanwhile ($from2 requests)");
diag("phase 1: " . scalar(@r) . " requests, $err errors, $moved moved, $from2 failed over");

# the owners now (t2's sessions were re-pinned)
for my $sid (keys %owner) {
    my ($code, $be) = http_get($lb, '/app/', "Cookie: JSESSIONID=$sid");
    $owner{$sid} = $be if $code == 200;
}

# --- 2. graceful restart after 2 s of 6 s of traffic
@r = load(6, sub { sleep 2; graceful() });
$err = grep { $_->[0] != 200 } @r;
$moved = grep { $_->[1] ne $owner{ $_->[2] } } @r;
ok(@r > 200, scalar(@r) . ' requests around apachectl -k graceful');
is($err, 0, 'graceful: zero errors');
is($moved, 0, 'graceful: zero sticky misses');

# --- 3. hostile flood for 6 s while 4 normal clients run
my $status = sub {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $lb, Timeout => 5);
    print $s "GET /st?format=json HTTP/1.0\r\nHost: x\r\n\r\n";
    local $/;
    my ($json) = (<$s> // '') =~ /\r\n\r\n(.*)$/s;
    return JSON::PP::decode_json($json);
};
my $before = $status->()->{store}{table};
my @attackers;
my $invented = 'hostile' . int(rand(1e9));
for my $a (1 .. 2) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $end = time + 6;
        my $n = 0;
        while (time < $end && $n < 20000) {
            my $kind = $n % 4;
            my $cookie = $kind == 0 ? 'JSESSIONID=' . ('A' x 4000)
                       : $kind == 1 ? "JSESSIONID=${invented}x$a$n; JSESSIONID=\x01\x02; =;;;"
                       : $kind == 2 ? join('; ', map { "c$_=v" } 1 .. 150)
                       :              "JSESSIONID=t2x$invented$n";
            http_get($lb, "/app/;jsessionid=$invented$n?x=$n", "Cookie: $cookie");
            $n++;
        }
        POSIX::_exit(0);
    }
    push @attackers, $pid;
}
@r = load(6);
waitpid($_, 0) for @attackers;
$err = grep { $_->[0] != 200 } @r;
$moved = grep { $_->[1] ne $owner{ $_->[2] } } @r;
ok(@r > 100, scalar(@r) . ' normal requests during the flood');
is($err, 0, 'flood: normal clients got no error');
is($moved, 0, 'flood: normal clients kept their member');
my $after = $status->()->{store}{table};
ok($after->{entries} <= $after->{capacity} && $after->{bytes} == $before->{bytes},
   "flood: the table stays within its fixed size ($after->{entries} of $after->{capacity} bindings, $after->{bytes} bytes)");
# ids the attackers invented were never bound
my $bound = 0;
for my $n (0 .. 40) {
    my ($code, $be, $dec) = http_get($lb, '/app/', "Cookie: JSESSIONID=t2x$invented$n");
    $bound++ if $dec eq 'sticky';
}
is($bound, 0, 'flood: no id a client invented was stored');

done_testing();
