# Agent checks (StickyLBAgent): two real backends a1 and a2 answer GET
# /agent from a file this test rewrites (t/backend.pl --agent-file).  The
# agent asks every 500 ms (WatchdogInterval 200 ms): a new answer is
# applied within about a second; every wait here is bounded at 6 s.
#   drain: new sessions avoid a1, its sessions stay on it;
#   maint: a1 disabled (its sessions go elsewhere too); up: back;
#   weight 50%: a1's share of new sessions goes from 1/2 to about 1/3;
#   a member the operator disabled is not raised by the agent's up;
#   the answer read from a header (header=) for one route (route=);
#   a change is logged once; with member states shared through memcached
#   (read back every second), the agent's drain is not undone by the
#   operator's "up" read back from the store.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Apache::Test ();
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Backends qw(:DEFAULT logs_dir);
use StickyLB::Services;

my $st = url('slb_agent', '/stickylb-status');
my $logs = logs_dir();
my %file = map { $_ => "$logs/agent-$_.txt" } qw(a1 a2);

sub say_agent {
    my ($route, $text) = @_;
    my $tmp = "$file{$route}.tmp";
    open my $fh, '>', $tmp or die "$tmp: $!";
    print $fh $text;
    close $fh or die "$tmp: $!";
    rename $tmp, $file{$route} or die "$file{$route}: $!";
}

sub status_json {
    my $r = Apache::TestRequest::GET("$st?format=json");
    return eval { JSON::PP::decode_json($r->content) } // { balancers => [] };
}
sub member {
    my ($route, $bal, $j) = @_;
    $j //= status_json();
    my ($b) = grep { $_->{name} eq "balancer://$bal" } @{ $j->{balancers} };
    return {} unless $b;
    my ($m) = grep { $_->{route} eq $route } @{ $b->{members} };
    return $m // {};
}
sub agent_of { return member($_[0], $_[1] // 'agent')->{agent} // {} }
sub state_of { return member($_[0], $_[1] // 'agent')->{state} // '' }

sub wait_for {
    my ($what, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < $limit) {
        return time - $t0 if $what->();
        sleep 0.1;
    }
    return undef;
}
# the agent of a1 applied this answer (state, weight) and a1 is in $state
sub wait_agent {
    my ($state, $weight, $member_state, $bal) = @_;
    return wait_for(sub {
        my $m = member('a1', $bal // 'agent');
        my $a = $m->{agent} // {};
        return ($a->{state} // '') eq $state && ($a->{weight} // -1) == $weight
            && ($m->{state} // '') eq $member_state;
    }, 6);
}

sub sid_of {
    my ($res) = @_;
    my ($sc) = set_cookies($res, 'JSESSIONID');
    return defined $sc && $sc =~ /^JSESSIONID=([^;]+)/ ? $1 : undef;
}
# n new sessions: how many each member got
sub new_sessions {
    my ($n, $path) = @_;
    my %got;
    $got{ backend(req('slb_agent', $path // '/ag/')) }++ for 1 .. $n;
    return \%got;
}
sub control {
    my (%f) = @_;
    return Apache::TestRequest::POST($st, [balancer => 'agent',
                                           nonce => status_json()->{nonce},
                                           %f]);
}

say_agent($_, "up\n") for qw(a1 a2);
start_backend(route => $_, port => $ENV{'SLB_' . uc($_) . '_PORT'},
              args => ['--agent-file', $file{$_}]) for qw(a1 a2);

my $t = wait_for(sub { (agent_of('a1')->{result} // '') eq 'ok' }, 6);
ok(defined $t, sprintf('a1: the agent answers (%.1f s)', $t // -1))
    or diag(explain(member('a1', 'agent')));
my $a = agent_of('a1');
is($a->{state}, 'up', 'JSON: the agent says up');
is($a->{weight}, 100, 'JSON: weight 100%');
is($a->{answer}, 'up', 'JSON: the last answer');
is($a->{result}, 'ok', 'JSON: the answer was understood');
ok($a->{last_answer} > 0, 'JSON: the time of the last answer');
my $page = Apache::TestRequest::GET($st)->content;
like($page, qr{<th>agent</th>}, 'HTML: an agent column');
like($page, qr{up, 100% \(&quot;up&quot;, ok, \d+ s ago\)}, 'HTML: agent state, weight, last answer');

# sessions bound to a1, before the drain
my @a1;
for (1 .. 20) {
    my $r = req('slb_agent', '/ag/');
    push @a1, sid_of($r) if backend($r) eq 'a1';
}
ok(@a1 >= 5, scalar(@a1) . ' sessions on a1');

# --- drain
say_agent('a1', "drain\n");
$t = wait_agent('drain', 100, 'draining');
ok(defined $t, sprintf('agent drain: a1 draining (%.1f s)', $t // -1))
    or diag(explain(member('a1', 'agent')));
is_deeply(agent_of('a1')->{set}, ['drain'], 'JSON: the flags the agent set');
my $n = new_sessions(20);
is($n->{a1} // 0, 0, 'drain: no new session on a1 (a2 x' . ($n->{a2} // 0) . ')');
my $stay = grep { backend(req('slb_agent', '/ag/', Cookie => "JSESSIONID=$_")) eq 'a1' } @a1;
is($stay, scalar @a1, "drain: a1's sessions stay on it ($stay of " . @a1 . ')');

# --- maint
say_agent('a1', "maint\n");
$t = wait_agent('maint', 100, 'disabled');
ok(defined $t, sprintf('agent maint: a1 disabled (%.1f s)', $t // -1));
is_deeply(agent_of('a1')->{set}, ['maint'], 'maint: the agent dropped its drain, set maint');
$stay = grep { backend(req('slb_agent', '/ag/', Cookie => "JSESSIONID=$_")) eq 'a1' } @a1;
is($stay, 0, "maint: a1's sessions are served elsewhere");

# --- up: back
say_agent('a1', "up\n");
$t = wait_agent('up', 100, 'up');
ok(defined $t, sprintf('agent up: a1 back (%.1f s)', $t // -1));
is_deeply(agent_of('a1')->{set}, [], 'up: nothing set by the agent');
$n = new_sessions(40);
ok(($n->{a1} // 0) >= 12 && ($n->{a1} // 0) <= 28,
   "up: a1 takes half of the new sessions again (a1 x" . ($n->{a1} // 0) . ' of 40)');

# --- down
say_agent('a1', "down\n");
$t = wait_agent('down', 100, 'down-by-agent');
ok(defined $t, sprintf('agent down: a1 down-by-agent (%.1f s)', $t // -1));
$n = new_sessions(10);
is($n->{a1} // 0, 0, 'down: no new session on a1');
say_agent('a1', "ready\n");
ok(defined wait_agent('up', 100, 'up'), 'agent ready: a1 back');

# --- weight 50%: of a 1:1 split, a1's share goes to about 1/3
say_agent('a1', "50%\n");
$t = wait_agent('up', 50, 'up');
ok(defined $t, sprintf('agent 50%%: a1 at half its weight (%.1f s)', $t // -1));
$n = new_sessions(150);
my $share = ($n->{a1} // 0) / 150;
ok($share > 0.22 && $share < 0.42,
   sprintf('weight 50%%: a1 takes %.2f of the new sessions (1/3 expected; 1/2 at 100%%)', $share));
say_agent('a1', "drain 0%\n");
ok(defined wait_agent('drain', 0, 'draining'), 'agent drain 0%: draining');
say_agent('a1', "up\n");
ok(defined wait_agent('up', 100, 'up'), 'up puts the weight back to 100%');

# --- the operator's maintenance: not raised by the agent's up
my $r = control(member => 'a1', action => 'maintenance');
ok($r->code == 200 || $r->code == 303, 'operator: maintenance of a1 (' . $r->code . ')');
is(state_of('a1'), 'disabled', 'a1 disabled by the operator');
my $asked = agent_of('a1')->{last_answer};
ok(defined wait_for(sub { (agent_of('a1')->{last_answer} // 0) > $asked + 1 }, 6),
   'the agent is asked again, and says up');
is(state_of('a1'), 'disabled', "the agent's up does not raise a member the operator disabled");
say_agent('a1', "maint\n");
ok(defined wait_agent('maint', 100, 'disabled'), 'the agent says maint too');
is_deeply(agent_of('a1')->{set}, [], 'the maintenance stays the operator\'s');
say_agent('a1', "up\n");
ok(defined wait_agent('up', 100, 'disabled'), "the agent's up again: still disabled");
$r = control(member => 'a1', action => 'enable');
ok(defined wait_for(sub { state_of('a1') eq 'up' }, 3), 'the operator enables a1: up');

# the operator's drain, the agent's drain and up
control(member => 'a1', action => 'drain');
say_agent('a1', "drain\n");
ok(defined wait_agent('drain', 100, 'draining'), 'operator drain, then agent drain');
say_agent('a1', "up\n");
ok(defined wait_agent('up', 100, 'draining'), "the agent's up leaves the operator's drain");
control(member => 'a1', action => 'undrain');
ok(defined wait_for(sub { state_of('a1') eq 'up' }, 3), 'operator undrain: up');

# --- the answer in a header, for route a1 only (the body says up)
say_agent('a1', "up\ndrain\n");
$t = wait_agent('drain', 100, 'draining', 'agenthdr');
ok(defined $t, sprintf('header=: the header says drain, a1 draining in agenthdr (%.1f s)', $t // -1))
    or diag(explain(member('a1', 'agenthdr')));
is(state_of('a1', 'agent'), 'up', 'the body says up: a1 up in agent');
ok(!%{ agent_of('a2', 'agenthdr') }, 'route=a1: a2 of agenthdr has no agent check');
$n = new_sessions(10, '/hdr/');
is($n->{a1} // 0, 0, 'agenthdr: no new session on a1');
say_agent('a1', "up\nup\n");
ok(defined wait_agent('up', 100, 'up', 'agenthdr'), 'header up: back');

# --- an answer that says nothing known: kept, failure shown
say_agent('a1', "hello\n");
ok(defined wait_for(sub { (agent_of('a1')->{result} // '') =~ /no state or weight/ }, 6),
   'an unknown answer: the failure is shown');
is(agent_of('a1')->{state}, 'up', '... and what the agent said last is kept');
say_agent('a1', "up\n");
ok(defined wait_for(sub { (agent_of('a1')->{result} // '') eq 'ok' }, 6), 'ok again');

# --- member states shared through memcached: the operator's "up" in the
# store, read back every second, leaves the agent's drain alone
start_memcached();
$r = Apache::TestRequest::POST($st, [balancer => 'agentmc', member => 'a1',
                                     action => 'enable',
                                     nonce => status_json()->{nonce}]);
is($r->code, 200, 'agentmc: the operator\'s enable of a1, published to memcached');
say_agent('a1', "drain\n");
ok(defined wait_agent('drain', 100, 'draining', 'agentmc'), 'agentmc: the agent drains a1');
my $flaps = 0;
for (1 .. 30) {
    $flaps++ if state_of('a1', 'agentmc') ne 'draining';
    sleep 0.1;
}
is($flaps, 0, 'agentmc: a1 stays draining over 3 s of state reads from memcached');
say_agent('a1', "up\n");
ok(defined wait_agent('up', 100, 'up', 'agentmc'), 'agentmc: the agent\'s up: back');
stop_memcached();

# --- logged once per change
my $drains = 0;
if (open my $el, '<', "$logs/error_log") {
    while (<$el>) {
        $drains++ if /SLB0313: agent of member \S+ \(route a1\) of balancer:\/\/agent says drain, weight 100%/;
    }
}
# from up 100% to drain: the drain, the operator's drain, agentmc's drain
is($drains, 3, "each change to drain logged once ($drains)");

stop_backend($_) for qw(a1 a2);
unlink values %file;
done_testing();
