# The embedded stick table: learned session ids (no route in them), header,
# query, cookie and address keys, failover re-pinning without bounce-back, idle and
# maximum lifetimes, and bindings kept across a graceful restart.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Apache::Test ();
use StickyLB::Client;
use StickyLB::Backends;

sub sid_of {
    my ($res, $name) = @_;
    my ($sc) = set_cookies($res, $name);
    return defined $sc && $sc =~ /^\Q$name\E=([^;]+)/ ? $1 : undef;
}

# --- learned JSESSIONID without a route suffix
my $r = req('slb_store', '/learn/');
my $b = backend($r);
my $sid = sid_of($r, 'JSESSIONID');
like($sid // '', qr/^\Q$b\Ex[0-9a-f]{32}$/, "backend $b issued an id with no route in it");
my ($ok, $src) = (0, '');
for (1 .. 10) {
    my $x = req('slb_store', '/learn/', Cookie => "JSESSIONID=$sid");
    my ($d, $s) = slb($x);
    $ok++ if backend($x) eq $b && $d eq 'sticky' && $s eq 'learned'
          && body_field($x, 'new-session') eq '0';
}
is($ok, 10, 'the learned id keeps its member for 10 requests');
my $x = req('slb_store', '/learn/', Cookie => "JSESSIONID=$sid");
is(envinfo($x)->{sticky}, 'JSESSIONID', 'BALANCER_SESSION_STICKY for a learned id');

# several learned sessions, each on its own member
my %owner;
for (1 .. 6) {
    my $n = req('slb_store', '/learn/');
    $owner{ sid_of($n, 'JSESSIONID') } = backend($n);
}
$ok = 0;
for my $id (keys %owner) {
    $ok++ if backend(req('slb_store', '/learn/', Cookie => "JSESSIONID=$id")) eq $owner{$id};
}
is($ok, 6, '6 learned sessions on ' . join(',', sort values %owner) . ' all stick');

# one keep-alive connection, the ids of sessions on different members in
# turn: the connection keeps the table key of the last id it looked up,
# and every id must still be looked up as itself
{
    my ($sock, $hp) = keepalive('slb_store');
    my @ids = sort keys %owner;
    my ($asked, $right, %members) = (0, 0);
    for my $round (1 .. 3) {
        for my $id (@ids) {
            my ($code, $h) = keepalive_get($sock, $hp, '/learn/',
                                           Cookie => "JSESSIONID=$id");
            $asked++;
            $members{ $owner{$id} }++;
            $right++ if ($code // 0) == 200
                && ($h->{'x-backend'} // '') eq $owner{$id};
        }
    }
    close $sock;
    ok(keys %members >= 2, 'the sessions of the keep-alive client are on '
        . scalar(keys %members) . ' members');
    is($right, $asked, "one keep-alive connection, $asked requests of "
        . scalar(@ids) . ' learned sessions in turn: each on its own member');
}

# an id the client made up is never stored
for my $i (1 .. 2) {
    my $f = req('slb_store', '/learn/', Cookie => 'JSESSIONID=t2xinventedbyclient');
    is((slb($f))[0], 'new', "invented id, request $i: not in the table");
}

# other cookie names
$r = req('slb_store', '/php/');
$b = backend($r);
my $php = sid_of($r, 'PHPSESSID');
ok(defined $php, 'backend issued PHPSESSID');
$ok = 0;
$ok += backend(req('slb_store', '/php/', Cookie => "PHPSESSID=$php")) eq $b for 1 .. 5;
is($ok, 5, 'learned PHPSESSID sticks');

# header and query keys
my %m;
for my $v (qw(alice bob carol dave)) {
    $m{$v} = backend(req('slb_store', '/hdr/', 'X-Session' => $v));
}
$ok = 0;
for my $v (keys %m) {
    for (1 .. 3) {
        my $y = req('slb_store', '/hdr/', 'X-Session' => $v);
        $ok++ if backend($y) eq $m{$v} && (slb($y))[1] eq 'header';
    }
}
is($ok, 12, 'header keys stick (' . join(',', map { "$_=$m{$_}" } sort keys %m) . ')');
# a header value is an HTTP field value: spaces, commas and ';' are part
# of the key (they were silently ignored before)
my %sp;
for my $v ('Bearer zed 1', 'a, b', 'x; y') {
    $sp{$v} = backend(req('slb_store', '/hdr/', 'X-Session' => $v));
}
$ok = 0;
for my $v (keys %sp) {
    for (1 .. 3) {
        my $y = req('slb_store', '/hdr/', 'X-Session' => $v);
        my ($d, $s) = slb($y);
        $ok++ if backend($y) eq $sp{$v} && $d eq 'sticky' && $s eq 'header';
    }
}
is($ok, 9, 'header keys with spaces, commas and semicolons stick');

# a cookie the client sends (StickyLBKey cookie JSESSIONID), in the shape
# of the haproxy-peers demo's clients; the members' own JSESSIONID cookies
# are not learned
use Digest::MD5 qw(md5_hex);
sub demo_cookie { return 'c1=1; c2=2; JSESSIONID=' . md5_hex('_' . $_[0]) }
my (%ck, $first_new) = ();
$first_new = 0;
for my $x (1 .. 6) {
    my $y = req('slb_store', '/keycookie/', Cookie => demo_cookie($x));
    $ck{$x} = backend($y);
    $first_new++ if (slb($y))[0] eq 'new';
}
is($first_new, 6, 'six new cookie keys: each a new session');
is(scalar(grep { $_ } map { $ck{$_} ne $ck{$_ + 1} } 1 .. 5), 5,
   'spread by round robin (' . join(',', map { $ck{$_} } 1 .. 6) . ')');
$ok = 0;
for my $x (reverse 1 .. 6) {
    for (1 .. 3) {
        my $y = req('slb_store', '/keycookie/', Cookie => demo_cookie($x));
        my ($d, $s) = slb($y);
        $ok++ if backend($y) eq $ck{$x} && $d eq 'sticky' && $s eq 'cookie';
    }
}
is($ok, 18, 'cookie keys stick, in any order');
# the first valid value decides: of two JSESSIONID, the first one's member
{
    my ($p, $q) = (1, grep { $ck{$_} ne $ck{1} } 2 .. 6);
    my $c = 'JSESSIONID=' . md5_hex("_$p") . '; JSESSIONID=' . md5_hex("_$q");
    is(backend(req('slb_store', '/keycookie/', Cookie => $c)), $ck{$p},
       'two values of the key cookie: the first one is the key');
    $c = 'JSESSIONID="' . md5_hex("_$q") . '"; c1=1';
    is(backend(req('slb_store', '/keycookie/', Cookie => $c)), $ck{$q},
       'a quoted value is the same key');
}
# no cookie, another cookie: no key, round robin
is((slb(req('slb_store', '/keycookie/', Cookie => 'c1=1; JSESSIONIDX=' . md5_hex('_1'))))[0], 'new',
   'a cookie of another name is no key');
# after a learned cookie: both read, the key cookie bound on first use
{
    my $y = req('slb_store', '/keylearned/', Cookie => 'sid=s-one');
    my $m = backend($y);
    my $php = sid_of($y, 'PHPSESSID');
    $ok = 0;
    for (1 .. 4) {
        my $z = req('slb_store', '/keylearned/', Cookie => 'sid=s-one');
        $ok++ if backend($z) eq $m && (slb($z))[1] eq 'cookie';
    }
    is($ok, 4, "a key cookie next to a learned cookie sticks to $m");
    $y = req('slb_store', '/keylearned/', Cookie => "PHPSESSID=$php");
    is(backend($y) . ' ' . (slb($y))[1], "$m learned", '... and the learned cookie too');
}

my $q = backend(req('slb_store', '/hdr/?a=1&sid=q123'));
$ok = 0;
for (1 .. 4) {
    my $y = req('slb_store', '/hdr/?sid=q123&b=2');
    $ok++ if backend($y) eq $q && (slb($y))[1] eq 'query';
}
is($ok, 4, 'query parameter key sticks');

# client address
my $a = backend(req('slb_store', '/addr/'));
$ok = 0;
for (1 .. 6) {
    my $y = req('slb_store', '/addr/');
    $ok++ if backend($y) eq $a && (slb($y))[1] eq 'address';
}
is($ok, 6, "client address sticks to $a");

# --- failover re-pins, and the session does not bounce back
start_backend(route => 't4', port => backend_port('t4'));
my ($on4, $tries) = (undef, 0);
while (!$on4 && $tries++ < 6) {
    my $n = req('slb_store', '/repin/');
    $on4 = sid_of($n, 'JSESSIONID') if backend($n) eq 't4';
}
ok($on4, 'a session learned on t4');
is(backend(req('slb_store', '/repin/', Cookie => "JSESSIONID=$on4")), 't4', 'it sticks to t4');
stop_backend('t4');
my $error_log = Apache::Test::vars('t_logs') . '/error_log';
my $log_from = -s $error_log;
$x = req('slb_store', '/repin/', Cookie => "JSESSIONID=$on4");
is($x->code . ' ' . backend($x), '200 t1', 't4 down: the session fails over to t1');
is(backend(req('slb_store', '/repin/', Cookie => "JSESSIONID=$on4")), 't1', '... and sticks there');
{
    # the move found on the retry of the request that found t4 down
    open my $fh, '<', $error_log or die $!;
    seek $fh, $log_from, 0;
    my @moves = grep { /SLB0102/ } <$fh>;
    close $fh;
    ok(@moves == 1 && $moves[0] =~ /\[stickylb:info\].*SLB0102: balancer:\/\/repin: failover: session moved from route 't4' to 't1' \(member of 't4' is in error; key: learned\)/,
       'the move is logged once, at info, with routes and reason') or diag @moves;
}
start_backend(route => 't4', port => backend_port('t4'));
select(undef, undef, undef, 1.5);     # retry=1: t4 usable again
$x = req('slb_store', '/repin/', Cookie => "JSESSIONID=$on4");
is(backend($x), 't1', 't4 back: the re-pinned session stays on t1');
is(join(' ', (slb($x))[0, 1]), 'sticky learned', 'from the re-pinned binding');
my %new;
$new{ backend(req('slb_store', '/repin/')) }++ for 1 .. 4;
ok($new{t4}, 't4 takes new sessions again');
stop_backend('t4');

# --- lifetimes: idle 3 s (/idle), maximum 3 s (/maxlife); whole seconds
sub decision { my ($path) = @_; return (slb(req('slb_store', $path, 'X-Session' => 'life-test')))[0] }
is(decision('/idle/') . ' ' . decision('/maxlife/'), 'new new', 'two bindings created');
select(undef, undef, undef, 1.5);
is(decision('/idle/'), 'sticky', 'idle: used within the idle time');
is(decision('/maxlife/'), 'sticky', 'max: within the maximum lifetime');
select(undef, undef, undef, 1.5);
is(decision('/idle/'), 'sticky', 'idle: each use refreshes the idle time');
select(undef, undef, undef, 1.5);
is(decision('/idle/'), 'sticky', 'idle: still bound 4.5 s after creation');
is(decision('/maxlife/'), 'new', 'max: past the maximum lifetime, a new binding');
select(undef, undef, undef, 4.5);
is(decision('/idle/'), 'new', 'idle: unused for longer than the idle time, a new binding');

# --- graceful restart keeps the table
my %before;
for (1 .. 4) {
    my $n = req('slb_store', '/learn/');
    $before{ sid_of($n, 'JSESSIONID') } = backend($n);
}
# a member removed by the restart: t2 of balancer://reclaim (its route
# nowhere else in that namespace)
my @on_t2;
for my $i (1 .. 20) {
    my $x = req('slb_store', '/reclaim/', 'X-Reclaim' => "rk$i");
    push @on_t2, "rk$i" if backend($x) eq 't2';
}
ok(scalar(@on_t2) > 0, 'reclaim: some keys are bound to t2 (' . scalar(@on_t2) . ' of 20)');
is(join(' ', map { backend(req('slb_store', '/reclaim/', 'X-Reclaim' => $_)) } @on_t2),
   join(' ', map { 't2' } @on_t2), 'reclaim: they stick to t2');
{
    open my $drop, '>', Apache::Test::vars('t_logs') . '/slb-drop-t2' or die $!;
    close $drop;
}
my $log_before = -s (Apache::Test::vars('t_logs') . '/error_log');
my $pidfile = Apache::Test::vars('t_logs') . '/httpd.pid';
open my $fh, '<', $pidfile or die "$pidfile: $!";
chomp(my $pid = <$fh>);
close $fh;
ok(kill('USR1', $pid), "graceful restart (SIGUSR1 to $pid)");
select(undef, undef, undef, 1.0);
my $up = 0;
for (1 .. 50) {
    my $p = req('slb_store', '/learn/');
    if ($p->code == 200) { $up = 1; last }
    select(undef, undef, undef, 0.1);
}
ok($up, 'server answers after the graceful restart');
$ok = 0;
for my $id (keys %before) {
    my $y = req('slb_store', '/learn/', Cookie => "JSESSIONID=$id");
    $ok++ if backend($y) eq $before{$id} && join(' ', (slb($y))[0, 1]) eq 'sticky learned';
}
is($ok, 4, 'bindings survive apachectl -k graceful');
$ok = 0;
for my $x (1 .. 6) {
    my $y = req('slb_store', '/keycookie/', Cookie => demo_cookie($x));
    $ok++ if backend($y) eq $ck{$x} && join(' ', (slb($y))[0, 1]) eq 'sticky cookie';
}
is($ok, 6, 'cookie keys survive apachectl -k graceful');

# the route of the member the restart removed left the registry, with its
# bindings
{
    open my $lf, '<', Apache::Test::vars('t_logs') . '/error_log' or die $!;
    seek $lf, $log_before, 0;
    my @l = grep { /SLB0207: 1 route\(s\) of members no longer configured left the stick table, with their bindings/ } <$lf>;
    close $lf;
    is(scalar(@l), 1, 'reclaim: the restart retired the removed route (SLB0207 logged)');
}
# t2 back with another graceful restart: its old keys are not bound to it
# any more (without reclaiming they would stick to t2 again)
unlink Apache::Test::vars('t_logs') . '/slb-drop-t2' or die $!;
ok(kill('USR1', $pid), 'graceful restart with t2 configured again');
select(undef, undef, undef, 1.0);
$up = 0;
for (1 .. 50) {
    my $p = req('slb_store', '/reclaim/', 'X-Reclaim' => 'probe');
    if ($p->code == 200) { $up = 1; last }
    select(undef, undef, undef, 0.1);
}
ok($up, 'server answers after the second graceful restart');
is(join(' ', map { (slb(req('slb_store', '/reclaim/', 'X-Reclaim' => $_)))[0] } @on_t2),
   join(' ', map { 'new' } @on_t2), "reclaim: t2's old keys are new sessions, their bindings went with the route");

done_testing();
