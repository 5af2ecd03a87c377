# StickyLBNewSessions sessions: a new session goes to the member with the
# fewest live bindings (per loadfactor), not the one with fewest requests.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;
use StickyLB::Backends;

# t4 down: four sessions are bound to t1
stop_backend('t4');
my %n;
for my $k (1 .. 4) {
    my $x = req('slb_store', '/least/', 'X-Session' => "early$k");
    $n{ $x->code . ' ' . backend($x) }++;
}
is_deeply(\%n, { '200 t1' => 4 }, 't4 down: four sessions bound to t1');

# t4 back: it has no sessions, so the next four all go to it (round robin
# by requests would alternate)
start_backend(route => 't4', port => backend_port('t4'));
select(undef, undef, undef, 1.5);    # retry=1
%n = ();
$n{ backend(req('slb_store', '/least/', 'X-Session' => "late$_")) }++ for 1 .. 4;
is_deeply(\%n, { t4 => 4 }, 'the four next sessions go to the member with none');

# balanced now (4 and 4): new sessions alternate
%n = ();
$n{ backend(req('slb_store', '/least/', 'X-Session' => "even$_")) }++ for 1 .. 4;
is_deeply(\%n, { t1 => 2, t4 => 2 }, 'equal counts: new sessions shared evenly');

# the earlier sessions still stick
my $ok = 0;
$ok += backend(req('slb_store', '/least/', 'X-Session' => "early$_")) eq 't1' for 1 .. 4;
$ok += backend(req('slb_store', '/least/', 'X-Session' => "late$_")) eq 't4' for 1 .. 4;
is($ok, 8, 'bound sessions keep their member');
stop_backend('t4');

done_testing();
