#!/usr/bin/env perl
# System test, as root: the haproxy-peers demo replayed (HAProxy "stick on
# req.cook(JSESSIONID)" on two peers).  Two Apache load balancers lb1 and
# lb2 on loopback, each with "StickyLBKey cookie JSESSIONID" and the
# memcached store, in front of seven backends that set no cookie at all
# (t/backend.pl --no-route-suffix --no-session); the clients send the demo
# scripts' "Cookie: c1=1; c2=2; JSESSIONID=<md5 hex of _x>".  The steps
# are docker/peers-cookie.sh's (run here against the two local Apaches):
# sessions 1-5 through lb1 twice; 101-105 through lb2 then lb1; 21-25
# through lb1 then lb2; lb2 stopped and lb1 reloaded (-k graceful), then
# 21-25, 1-5 and 101-105 through lb1: every session on the backend chosen
# on its first request.  Bounded: the script's requests have 10 s
# timeouts, the whole test an alarm of 120 s; everything stopped by PID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use StickyLB::System;

plan skip_all => 'needs root (memcached and Apache as nobody)' if $> != 0;
plan skip_all => 'memcached missing' unless -x '/usr/bin/memcached';
plan skip_all => 'curl or md5sum missing'
    if system('sh -c "command -v curl && command -v md5sum" >/dev/null 2>&1') != 0;

my $top = "$FindBin::Bin/../..";
my $mc = free_port();
my ($lb1, $lb2) = (free_port(), free_port());
my @routes = map { "b$_" } 1 .. 7;
my %port = map { $_ => free_port() } @routes;
my $dir = workdir();

END { local $?; stop_all() }
$SIG{ALRM} = sub { die "peers_cookie.t: over its 120 s bound\n" };
alarm 120;

memcached_start($mc);
backend_start($_, $port{$_}, '--no-route-suffix', '--no-session') for @routes;

my $members = join "\n", map { qq{    BalancerMember "http://127.0.0.1:$port{$_}" route=$_} } @routes;
my $conf = <<"CONF";
StickyLBMemcached "--SERVER=127.0.0.1:$mc" connect-timeout=50 timeout=50 retry=1 cache=2
<Proxy "balancer://peers">
$members
    ProxySet lbmethod=stickylb
    StickyLBStore memcached
    StickyLBNamespace peers
    StickyLBKey cookie JSESSIONID
</Proxy>
ProxyPass "/peers/" "balancer://peers/"
CONF
start_apache($lb1, $conf);
start_apache($lb2, $conf, 'lb2');

# the demo's backends set no cookie
my ($code, $be, $dec, undef, $sid) = http_get($lb1, '/peers/');
ok($code == 200 && $be =~ /^b\d$/ && !defined $sid,
   "a backend answers ($be) and sets no JSESSIONID");

sub mc_stat {
    my ($name) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mc,
                                  Timeout => 2) or return -1;
    print $s "stats\r\n";
    my $v = -1;
    while (defined(my $l = <$s>)) {
        $v = $1 if $l =~ /^STAT \Q$name\E (\d+)/;
        last if $l =~ /^END/;
    }
    return $v;
}
my $sets0 = mc_stat('cmd_set');

# the demo's steps, by the compose demo's script
local $ENV{LB1_URL} = "http://127.0.0.1:$lb1";
local $ENV{LB2_URL} = "http://127.0.0.1:$lb2";
local $ENV{PEERS_PATH} = '/peers/';
local $ENV{WAIT} = 20;
local $ENV{STOP_LB2} = "/usr/sbin/apache2 -f $dir/lb2-httpd.conf -k stop";
local $ENV{RELOAD_LB1} = "/usr/sbin/apache2 -f $dir/httpd.conf -k graceful";
my $out = `bash $top/docker/peers-cookie.sh 2>&1`;
my $rc = $? >> 8;
diag($out);
is($rc, 0, 'docker/peers-cookie.sh exits 0');
my ($passed, $failed) = $out =~ /^peers-cookie: (\d+) passed, (\d+) failed$/m;
is(($passed // '-') . ' ' . ($failed // '-'), '7 0',
   '"peers-cookie: 7 passed, 0 failed"');

# each step's answers, "x - backend", in the order printed
my %runs;
my $step;
for (split /\n/, $out) {
    $step = "$1 $2-$3" if m{^\$ \./access-(\d)\.sh (\d+) (\d+)};
    push @{ $runs{$step} }, $2 if defined $step && /^(\d{5}) - (\S+)$/;
}
# The first new sessions of each balancer go to five backends, as in the
# demo.  (Sessions 21-25 are not asserted so: the demo's HAProxy deals new
# sessions round robin (6, 7, 1, 2, 3), while StickyLBNewSessions requests,
# the default, weighs every request, sticky ones too, as byrequests does,
# so lb1 prefers the backends that served fewer of the repeated requests.)
for my $k ('1 1-5', '2 101-105') {
    my %d = map { $_ => 1 } @{ $runs{$k} || [] };
    is(scalar(keys %d), 5, "access-$k: five new sessions on five backends ("
                           . join(',', @{ $runs{$k} || [] }) . ')');
}
ok(mc_stat('cmd_set') - $sets0 >= 15,
   'the 15 sessions were bound in memcached (cmd_set +' . (mc_stat('cmd_set') - $sets0) . ')');
ok(mc_stat('get_hits') > 0, 'and found there by the other balancer');

alarm 0;
done_testing();
