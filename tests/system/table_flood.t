#!/usr/bin/env perl
# A flood of new sessions against a small stick table (root: Apache runs
# its children as nobody).  Project issue 14, item 9: with
# StickyLBTableSize 2000, 50 learned sessions that made two requests and
# went idle, then 5,000 cookie-less requests (each a new learned session):
# the 50 must keep their member (at least 95%), the table must have
# overflowed (evictions), and its size stays fixed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use StickyLB::System;

plan skip_all => 'needs root' if $> != 0;

my $lb = free_port();
my %port = map { $_ => free_port() } qw(t1 t2 t3);
END { local $?; stop_all() }

backend_start($_, $port{$_}, '--no-route-suffix') for sort keys %port;
start_apache($lb, <<"CONF");
StickyLBTableSize 2000
<Proxy "balancer://app">
    BalancerMember "http://127.0.0.1:$port{t1}" route=t1 retry=1
    BalancerMember "http://127.0.0.1:$port{t2}" route=t2 retry=1
    BalancerMember "http://127.0.0.1:$port{t3}" route=t3 retry=1
    ProxySet lbmethod=stickylb
    StickyLBSessionCookie none
    StickyLBLearnCookie JSESSIONID
    StickyLBIdleTimeout 1800
</Proxy>
ProxyPass "/st" "!"
ProxyPass "/app" "balancer://app"
<Location "/st">
    SetHandler stickylb-status
</Location>
CONF

my $table = sub {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $lb,
                                  Timeout => 5) or return {};
    print $s "GET /st?format=json HTTP/1.0\r\nHost: x\r\n\r\n";
    local $/;
    my ($json) = (<$s> // '') =~ /\r\n\r\n(.*)$/s;
    return JSON::PP::decode_json($json)->{store}{table};
};
my $before = $table->();
ok($before->{capacity} >= 2000 && $before->{capacity} < 4000,
   "a table for 2000 bindings ($before->{capacity} slots)");

# 50 sessions, two requests each: learned, then found again
my %owner;
for (1 .. 50) {
    my ($code, $be, undef, undef, $sid) = http_get($lb, '/app/');
    next unless $code == 200 && $sid;
    my ($c2, $be2, $dec) = http_get($lb, '/app/', "Cookie: JSESSIONID=$sid");
    $owner{$sid} = $be if $c2 == 200 && $be2 eq $be && $dec eq 'sticky';
}
is(scalar keys %owner, 50, '50 sessions learned and used twice');

# the flood: 5,000 cookie-less requests from 4 clients (bounded in count
# and time), each a new learned session
my $dir = workdir();
my @kids;
for my $w (0 .. 3) {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open my $out, '>', "$dir/flood.$w" or POSIX::_exit(1);
        my $end = time + 120;
        my $n = 0;
        while ($n < 1250 && time < $end) {
            my ($code, $be, undef, undef, $sid) = http_get($lb, '/app/');
            print $out ($code == 200 && $sid ? "ok\n" : "fail $code\n");
            $n++;
        }
        close $out;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my ($learned, $failed) = (0, 0);
for my $w (0 .. 3) {
    open my $in, '<', "$dir/flood.$w" or next;
    while (<$in>) { /^ok/ ? $learned++ : $failed++ }
    close $in;
}
is($learned, 5000, "5000 new sessions learned by the flood ($failed failed)");

my $after = $table->();
ok($after->{evictions} - $before->{evictions} > 1000,
   'the flood overflowed the table (' . ($after->{evictions} - $before->{evictions})
   . ' evictions)');
is($after->{bytes}, $before->{bytes}, 'the table kept its size');

# the 50 sessions came back
my $kept = 0;
for my $sid (sort keys %owner) {
    my ($code, $be, $dec) = http_get($lb, '/app/', "Cookie: JSESSIONID=$sid");
    $kept++ if $code == 200 && $be eq $owner{$sid} && $dec eq 'sticky';
}
ok($kept >= 48, "$kept of 50 used sessions kept their binding (at least 95%)");
diag("flood: $learned learned, "
     . ($after->{evictions} - $before->{evictions})
     . " evictions, $kept of 50 sessions kept");

done_testing();
