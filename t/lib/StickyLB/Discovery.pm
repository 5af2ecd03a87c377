package StickyLB::Discovery;
# The status page and the sessions of the discovery tests (t/20, t/21):
# one load balancer, reached through the functions given to
# discovery_setup, its members read from the status handler's JSON.
#   discovery_setup(
#       status   => sub { the status page's HTTP::Response for a query },
#       get      => sub { my ($path, @headers) = @_; an HTTP::Response },
#       balancer => the balancer members_of and state_of read by default,
#       path     => the path a session's requests go to by default);
use strict;
use warnings;
use Exporter 'import';
use JSON::PP ();
use Time::HiRes qw(time sleep);
use StickyLB::Client qw(backend set_cookies);

our @EXPORT = qw(discovery_setup status_json balancer_of members_of
                 state_of states wait_for sid_of visit new_sessions moved
                 fail_over burst leaving);

my %S;

sub discovery_setup { %S = @_ }

# ---- the status page ------------------------------------------------------
sub status_json {
    my $r = $S{status}->('format=json');
    return eval { JSON::PP::decode_json($r->content) } // { balancers => [] };
}
sub balancer_of {
    my ($name, $j) = @_;
    $j //= status_json();
    my ($b) = grep { $_->{name} eq "balancer://$name" } @{ $j->{balancers} };
    return $b // {};
}
# route => the member's JSON
sub members_of {
    my ($name) = @_;
    return { map { $_->{route} => $_ }
             @{ balancer_of($name // $S{balancer})->{members} // [] } };
}
sub state_of { return (members_of($_[1])->{ $_[0] } // {})->{state} // '' }
# "route=state,..." by route
sub states {
    my $m = members_of($_[0]);
    return join(',', map { "$_=$m->{$_}{state}" } sort keys %$m);
}
# how long until $what is true (polled every 50 ms), undef past $limit s
sub wait_for {
    my ($what, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < $limit) {
        return time - $t0 if $what->();
        sleep 0.05;
    }
    return undef;
}

# ---- sessions -------------------------------------------------------------
sub sid_of {
    my ($res) = @_;
    my ($sc) = set_cookies($res, 'JSESSIONID');
    return defined $sc && $sc =~ /^JSESSIONID=([^;]+)/ ? $1 : undef;
}
# one request of a session (a cookie jar of one cookie): the member, the
# session id after it (a backend that did not know it issued another),
# the status code
sub visit {
    my ($sid, $path) = @_;
    my $r = $S{get}->($path // $S{path}, $sid ? (Cookie => "JSESSIONID=$sid") : ());
    return (backend($r), sid_of($r) // $sid, $r->code);
}
# $n new sessions: session id => member
sub new_sessions {
    my ($n, $path) = @_;
    my %s;
    for (1 .. $n) {
        my ($b, $sid) = visit(undef, $path);
        $s{$sid} = $b if $sid;
    }
    return \%s;
}
# how many of the sessions (id => member) are now on another member
sub moved {
    my ($sessions, $path) = @_;
    my $moved = 0;
    for my $sid (keys %$sessions) {
        my ($b) = visit($sid, $path);
        $moved++ if $b ne $sessions->{$sid};
    }
    return $moved;
}
# the sessions (id => member) of $route, which left: each visited once,
# then three times more; how many reached another member the first time,
# how many then stayed where they were, and the sessions after (id =>
# member)
sub fail_over {
    my ($sessions, $route) = @_;
    my ($once, $stayed, %now) = (0, 0);
    for my $sid (keys %$sessions) {
        my ($b, $nsid) = visit($sid);
        $once++ if $b ne $route && $b ne '';
        my $same = 1;
        for (1 .. 3) {
            my ($b2) = visit($nsid);
            $same = 0 if $b2 ne $b;
        }
        $stayed++ if $same;
        $now{$nsid} = $b;
    }
    return ($once, $stayed, \%now);
}
# The checks of a member that left the discovered set, the same for every
# source: while it drains it gets no new session and keeps its own
# ($its: id => member), once grace= is over it is disabled and they fail
# over once and stay, and the other sessions of $all are untouched.
# $note ends the "keeps its own" check's name.  Returns every session
# (id => member) as it is afterwards.
sub leaving {
    my ($route, $its, $all, $note) = @_;
    my $n = new_sessions(10);
    Test::More::is(scalar(grep { $_ eq $route } values %$n), 0,
                   "draining: no new session on $route");
    Test::More::is(moved($its), 0,
                   "draining: $route\'s sessions stay on it during grace=$note");
    Test::More::ok(defined wait_for(sub { state_of($route) eq 'disabled' }, 4.5),
                   "grace over: $route disabled");
    my ($once, $stayed, $now) = fail_over($its, $route);
    Test::More::is($once, scalar(keys %$its),
                   "$route\'s sessions fail over (" . scalar(keys %$its) . ')');
    Test::More::is($stayed, scalar(keys %$its), '... once: they stay on their new member');
    my %others = map { $_ => $all->{$_} } grep { $all->{$_} ne $route } keys %$all;
    Test::More::is(moved(\%others), 0, 'the other sessions are untouched');
    return { %others, %$now };
}

# every session (id => member) visited again and again for $secs s: how
# many answers were 5xx, of how many requests
sub burst {
    my ($sessions, $secs) = @_;
    my ($codes5, $reqs) = (0, 0);
    my $until = time + $secs;
    while (time < $until) {
        for my $sid (keys %$sessions) {
            my (undef, undef, $code) = visit($sid);
            $reqs++;
            $codes5++ if $code >= 500;
        }
    }
    return ($codes5, $reqs);
}

1;
