# Metrics that add up: the Prometheus counters are server-wide (shared
# memory), so successive scrapes answered by different child processes
# never go back, and a graceful restart keeps them (stickylb_start_time_seconds
# unchanged); the member state is a metric of its own (up is health only);
# probe failures and durations, memcached latency as a histogram.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use Apache::Test ();
use Apache::TestRequest ();
use StickyLB::Client;
use StickyLB::Services;

END { local $?; stop_memcached(); }

# name{labels} => value of every sample of an exposition
sub samples {
    my ($text) = @_;
    my %s;
    for (split /\n/, $text) {
        next if /^#/ || !/\S/;
        /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/ or die "bad sample line: $_";
        $s{$1} = $2;
    }
    return \%s;
}
sub monotonic { my ($k) = @_; return $k =~ /^[a-z_]+_(?:total|bucket|count|sum)(?:\{|$)/ }
sub scrape {
    my ($vhost) = @_;
    my $r = req($vhost // 'slb_mc', '/stickylb-status?format=prometheus');
    return $r->code == 200 ? $r->content : undef;
}
# the process that answered a page (the page says it)
sub answering_pid {
    my $r = req('slb_mc', '/stickylb-status');
    return $r->content =~ /by process (\d+)/ ? $1 : undef;
}
my $n = 0;
sub traffic {
    my ($count) = @_;
    for (1 .. $count) {
        $n++;
        # a new key (a get that misses, an add), then the same key again
        req('slb_mc', '/shared/', 'X-Session' => "met-$$-$n");
        req('slb_mc', '/shared/', 'X-Session' => "met-$$-$n");
    }
}

start_memcached();

# --- 20 scrapes under traffic, answered by several children
my (@scrapes, %pids);
for my $i (1 .. 20) {
    traffic(3);
    my $p = answering_pid();
    $pids{$p}++ if defined $p;
    push @scrapes, samples(scrape() // '');
}
my $procs = scalar keys %pids;
ok($procs >= 2, "the scrapes were answered by $procs child processes")
    or diag explain \%pids;
my @series = sort grep { monotonic($_) } keys %{ $scrapes[-1] };
ok(scalar(grep { /^stickylb_memcached_requests_total\{op="get"\}/ } @series),
   'memcached get counter exported');
ok($scrapes[-1]{'stickylb_memcached_requests_total{op="get"}'} >= 60,
   "memcached gets of every child added up ($scrapes[-1]{'stickylb_memcached_requests_total{op=\"get\"}'} >= 60)");
my @back;
for my $k (@series) {
    for my $i (1 .. $#scrapes) {
        my ($a, $b) = ($scrapes[$i - 1]{$k}, $scrapes[$i]{$k});
        next unless defined $a && defined $b;
        if ($b < $a) { push @back, "$k: $a -> $b (scrape $i)"; last }
    }
}
is(scalar(@back), 0, scalar(@series) . ' counter series never decrease over 20 scrapes')
    or diag join("\n", @back);
my $st = $scrapes[-1]{stickylb_start_time_seconds};
ok(defined $st && $st > time - 86400 * 30 && $st <= time, 'stickylb_start_time_seconds: when the counters started');

# --- the latency histogram adds up
my $last = $scrapes[-1];
my @le = sort { $a <=> $b } map { /le="([0-9.]+)"/ ? $1 : () }
         grep { /^stickylb_memcached_latency_seconds_bucket/ } keys %$last;
is("@le", '0.0001 0.0005 0.001 0.002 0.005 0.01 0.05 0.1', 'memcached latency buckets (s)');
my $prev = 0;
my $ok = 1;
for my $b (@le) {
    my $v = $last->{"stickylb_memcached_latency_seconds_bucket{le=\"$b\"}"};
    $ok = 0 if $v < $prev;
    $prev = $v;
}
my $inf = $last->{'stickylb_memcached_latency_seconds_bucket{le="+Inf"}'};
ok($ok && $inf >= $prev, 'buckets cumulative');
is($last->{stickylb_memcached_latency_seconds_count}, $inf, 'histogram count = +Inf bucket');
ok($inf >= $last->{'stickylb_memcached_requests_total{op="get"}'}, "every call timed ($inf)");
ok($last->{stickylb_memcached_latency_seconds_sum} > 0, 'histogram sum');

SKIP: {
    skip 'promtool not installed', 2 unless -x '/usr/bin/promtool';
    my $dir = tempdir(CLEANUP => 1);
    for my $vh (qw(slb_mc slb_probe)) {
        open my $fh, '>', "$dir/$vh.txt" or die $!;
        print $fh scrape($vh) // '';
        close $fh;
        my $out = `/usr/bin/promtool check metrics < '$dir/$vh.txt' 2>&1`;
        is($? >> 8, 0, "promtool check metrics ($vh)") or diag $out;
    }
}

# --- probes: failures and durations
{
    my $s;
    my $t0 = time;
    # t3 answers 500 to its probe (interval 1 s)
    while (time - $t0 < 10) {
        $s = samples(scrape('slb_probe') // '');
        last if ($s->{'stickylb_member_probe_failures_total{balancer="balancer://probed",member="http://127.0.0.1:' . $ENV{SLB_T3_PORT} . '",route="t3"}'} // 0) >= 2;
        sleep 0.5;
    }
    my $m3 = 'balancer="balancer://probed",member="http://127.0.0.1:' . $ENV{SLB_T3_PORT} . '",route="t3"';
    my $m1 = 'balancer="balancer://probed",member="http://127.0.0.1:' . $ENV{SLB_T1_PORT} . '",route="t1"';
    ok(($s->{"stickylb_member_probe_failures_total{$m3}"} // 0) >= 2, 'probe failures of t3 counted');
    is($s->{"stickylb_member_probe_failures_total{$m1}"}, 0, 'no probe failure for t1');
    ok(($s->{"stickylb_member_probe_duration_seconds_count{$m1}"} // 0) >= 1, 'probes of t1 counted');
    ok(defined $s->{"stickylb_member_probe_duration_seconds_sum{$m1}"}, 'probe durations added');
    is($s->{"stickylb_member_up{$m3}"}, 0, 'up: 0 for t3, down by its probe');
    is($s->{"stickylb_member_state{$m3,state=\"down-by-probe\"}"}, 1, 'state: t3 down-by-probe');
    my @hot = grep { /^stickylb_member_state\{\Q$m3\E,/ && $s->{$_} == 1 } keys %$s;
    is(scalar(@hot), 1, 'state: one-hot');
}

# --- a graceful restart keeps the counters
my $before = samples(scrape());
my %old = %pids;
my $pidfile = Apache::Test::vars('t_logs') . '/httpd.pid';
open my $fh, '<', $pidfile or die "$pidfile: $!";
chomp(my $ppid = <$fh>);
close $fh;
ok(kill('USR1', $ppid), "graceful restart (SIGUSR1 to $ppid)");
my $new;
my $t0 = time;
while (time - $t0 < 15) {
    sleep 0.2;
    my $p = answering_pid();
    if (defined $p && !$old{$p}) { $new = $p; last }
}
ok($new, 'a child of the new generation answers' . ($new ? " ($new)" : ''));
traffic(2);
my $after = samples(scrape() // '');
my @lost = grep { monotonic($_) && defined $after->{$_} && $after->{$_} < $before->{$_} } sort keys %$before;
is(scalar(@lost), 0, 'no counter went back across the graceful restart') or diag join("\n", map { "$_: $before->{$_} -> $after->{$_}" } @lost);
ok($after->{'stickylb_memcached_requests_total{op="get"}'} > $before->{'stickylb_memcached_requests_total{op="get"}'},
   'memcached gets go on from where they were');
is($after->{stickylb_start_time_seconds}, $before->{stickylb_start_time_seconds}, 'start time unchanged by a graceful restart');

done_testing();
