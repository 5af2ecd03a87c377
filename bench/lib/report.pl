#!/usr/bin/perl
# bench/lib/report.pl RESULTS.tsv REPORT.md MISSES - the table and the
# targets of bench/run.sh, from its raw results (one line per wrk run).
# Prints the text report on stdout, writes the same as Markdown to REPORT.md
# and the missed mod_stickylb targets ("variant workload what") to MISSES.
# Settings come from BENCH_* environment variables set by run.sh.
use strict;
use warnings;
use POSIX qw(strftime);

my ($results, $mdfile, $missfile) = @ARGV;
my $hz   = $ENV{BENCH_CLK_TCK} || 100;
my $ncpu = $ENV{BENCH_NCPU}    || 1;

my (@order, %label);
for my $l (split /\n/, $ENV{BENCH_LABELS} // '') {
    next unless $l =~ /\|/;
    my ($id, $lab) = split /\|/, $l, 2;
    push @order, $id;
    $label{$id} = $lab;
}
my @workloads = ('established', 'new');

open my $in, '<', $results or die "report.pl: $results: $!\n";
my $head = <$in>;
chomp $head;
my @cols = split /\t/, $head;
my %runs;    # "v\tw" -> [ {col => value}, ... ]
while (my $line = <$in>) {
    chomp $line;
    my @f = split /\t/, $line;
    my %r;
    @r{@cols} = @f;
    my $secs = $r{duration_us} / 1e6;
    $r{rps}    = $r{requests} / $secs;
    $r{lbus}   = $r{lb_ticks} * 1e6 / $hz / $r{requests};
    $r{mcus}   = $r{mc_ticks} * 1e6 / $hz / $r{requests};
    $r{beus}   = $r{backend_ticks} * 1e6 / $hz / $r{requests};
    $r{kernel} = 100 * ($r{lb_ticks} - $r{lb_user_ticks}) / $r{lb_ticks}
        if $r{lb_ticks} && defined $r{lb_user_ticks};
    my $ours = $r{lb_ticks} + $r{backend_ticks} + $r{mc_ticks} + $r{wrk_ms} * $hz / 1000;
    # CPU used by processes other than ours during the run, % of the machine
    $r{foreign} = 100 * ($r{sys_busy} - $ours) / ($secs * $ncpu * $hz);
    $r{foreign} = 0 if $r{foreign} < 0;
    $r{steal}   = 100 * $r{sys_steal} / ($secs * $ncpu * $hz);
    push @{ $runs{"$r{variant}\t$r{workload}"} }, \%r;
}
close $in;

sub median {
    my @a = sort { $a <=> $b } @_;
    return undef unless @a;
    return @a % 2 ? $a[$#a / 2] : ($a[@a / 2 - 1] + $a[@a / 2]) / 2;
}
sub col { my ($v, $w, $c) = @_; return map { $_->{$c} } @{ $runs{"$v\t$w"} || [] } }
sub med { my ($v, $w, $c) = @_; return median(col($v, $w, $c)) }
sub min_ { my @a = sort { $a <=> $b } @_; return $a[0] }
sub max_ { my @a = sort { $a <=> $b } @_; return $a[-1] }
sub ms { my $us = shift; return defined $us ? sprintf('%.2f', $us / 1000) : '-' }

my $out = '';
my $p = sub { $out .= join('', @_) };

my $w1 = 27;
$p->(sprintf("%-${w1}s %-11s %-24s %7s %7s %9s %7s %7s\n",
             'variant', 'workload', 'req/s median (min-max)', 'p50 ms', 'p99 ms',
             'LB us/req', 'vs RR', 'vs RTID'));
$p->(('-' x ($w1 + 1 + 11 + 1 + 24 + 1 + 7 + 1 + 7 + 1 + 9 + 1 + 7 + 1 + 7)) . "\n");
my %errs;
for my $w (@workloads) {
    my $rr = med('apache-rr', $w, 'rps');
    my $rt = med('apache-routeid', $w, 'rps');
    for my $v (@order) {
        my @rps = col($v, $w, 'rps');
        next unless @rps;
        my $m = median(@rps);
        my $range = sprintf('%.0f (%.0f-%.0f)', $m, min_(@rps), max_(@rps));
        my $lb = $v eq 'direct' ? '-' : sprintf('%.1f', med($v, $w, 'lbus'));
        my $e = 0;
        $e += $_ for col($v, $w, 'errors');
        $errs{"$v $w"} = $e if $e;
        $p->(sprintf("%-${w1}s %-11s %-24s %7s %7s %9s %7s %7s\n",
                     $label{$v} . ($e ? ' *' : ''), $w, $range,
                     ms(med($v, $w, 'p50_us')), ms(med($v, $w, 'p99_us')), $lb,
                     $rr ? sprintf('%.3fx', $m / $rr) : '-',
                     $rt ? sprintf('%.3fx', $m / $rt) : '-'));
    }
}
my $table = $out;

# -- context: other processes' CPU, steal, store and backend cost
my @foreign = map { $_->{foreign} } map { @$_ } values %runs;
my @steal   = map { $_->{steal} } map { @$_ } values %runs;
my $nruns   = scalar @foreign;
my $ctx = sprintf("runs: %d x %d s, wrk -t%s -c%s, %s established sessions cycled per variant; %s\n",
                  $nruns, $ENV{BENCH_DURATION} // 0, $ENV{BENCH_THREADS} // '?',
                  $ENV{BENCH_CONNS} // '?', $ENV{BENCH_SESSIONS} // '?',
                  $ENV{BENCH_PIN_TEXT} // '');
$ctx .= sprintf("CPU of other processes on the machine during the runs (not ours): median %.1f%%, max %.1f%% of %d CPUs; steal median %.1f%%, max %.1f%%\n",
                median(@foreign) // 0, max_(@foreign) // 0, $ncpu, median(@steal) // 0, max_(@steal) // 0);
$ctx .= sprintf("runs taken again because other processes used more than %s%% of the machine: %s (the least disturbed attempt is kept)\n",
                $ENV{BENCH_FOREIGN_MAX}, $ENV{BENCH_RETRIES}) if defined $ENV{BENCH_RETRIES};
$ctx .= "time waited before runs for the machine to be quiet (other processes under $ENV{BENCH_FOREIGN_MAX}%): $ENV{BENCH_QUIET}\n"
    if defined $ENV{BENCH_QUIET};
for my $v (grep { /^stickylb-learn-mc/ } @order) {
    for my $w (@workloads) {
        my $mc = med($v, $w, 'mcus');
        $ctx .= sprintf("memcached's own CPU, %s, %s: %.1f us/req (not in the LB column)\n", $label{$v}, $w, $mc)
            if defined $mc;
    }
}
{
    my @k;
    for my $v (grep { $_ ne 'direct' } @order) {
        my $k = median(grep { defined } map { $_->{kernel} } map { @{ $runs{"$v\t$_"} || [] } } @workloads);
        push @k, sprintf('%s %.0f%%', $label{$v}, $k) if defined $k;
    }
    $ctx .= "share of the LB CPU spent in the kernel (system time), median: " . join(', ', @k) . "\n" if @k;
}
my ($mc0, $mc1) = split /\|/, ($ENV{BENCH_MC} // '');
if ($mc0 && $mc1 && grep { /^stickylb-learn-mc/ } keys %label) {
    my @a = split ' ', $mc0;
    my @b = split ' ', $mc1;
    $ctx .= sprintf("memcached over the runs: %d gets (%d hits, %d misses), %d sets, %d touches, %d items at the end\n",
                    $b[0] - $a[0], $b[1] - $a[1], $b[2] - $a[2], $b[3] - $a[3], $b[5] - $a[5], $b[4]);
}
for my $w (@workloads) {
    my $be = med('apache-rr', $w, 'beus');
    $ctx .= sprintf("nginx backends' CPU behind Apache round robin, %s: %.1f us/req\n", $w, $be) if defined $be;
}
for my $k (sort keys %errs) {
    $ctx .= "* $k: $errs{$k} wrk errors (connect/read/write/timeout/non-2xx) over the rounds\n";
}

# -- targets
my ($tgt, @miss) = ('');
my $nmiss = 0;
for my $v (grep { /^stickylb-/ } @order) {
    for my $w (@workloads) {
        my $m  = med($v, $w, 'rps');
        my $rr = med('apache-rr', $w, 'rps');
        next unless defined $m && $rr;
        my $min = ($v =~ /^stickylb-learn-mc/ && $w eq 'new') ? 0.93 : 0.98;
        my $ratio = $m / $rr;
        my $ok = $ratio >= $min;
        $tgt .= sprintf("%-4s  %-27s %-11s req/s %.3fx of Apache round robin (target >= %.2fx)\n",
                        $ok ? 'PASS' : 'MISS', $label{$v}, $w, $ratio, $min);
        push @miss, "$v $w rps" unless $ok;
        my $d = med($v, $w, 'lbus') - med('apache-rr', $w, 'lbus');
        $ok = $d <= 2.0;
        $tgt .= sprintf("%-4s  %-27s %-11s LB CPU %+.1f us/req vs Apache round robin (target <= +2.0)\n",
                        $ok ? 'PASS' : 'MISS', $label{$v}, $w, $d);
        push @miss, "$v $w cpu" unless $ok;
    }
}

my $date = strftime('%Y-%m-%d %H:%M:%S %Z', localtime);
print "\n", $table, "\n", $ctx, "\nTargets (mod_stickylb vs stock Apache round robin, same workload):\n", $tgt;

open my $mf, '>', $missfile or die "$missfile: $!\n";
print $mf "$_\n" for @miss;
close $mf;

open my $md, '>', $mdfile or die "$mdfile: $!\n";
print $md "## Results\n\n";
print $md "- date: $date\n";
print $md "- machine: $ENV{BENCH_MACHINE}\n" if $ENV{BENCH_MACHINE};
print $md "- software: $ENV{BENCH_VERSIONS}\n" if $ENV{BENCH_VERSIONS};
print $md "- command: `$ENV{BENCH_CMD}`\n" if $ENV{BENCH_CMD};
print $md "- ", ($ENV{BENCH_PIN_TEXT} // ''), "\n\n";
print $md "```\n", $table, "```\n\n```\n", $ctx, "```\n\n";
print $md "Targets (mod_stickylb vs stock Apache round robin, same workload):\n\n```\n", $tgt, "```\n\n";
print $md "Every run (req/s, LB CPU us/request, CPU of other processes in % of the machine), by round:\n\n```\n";
for my $w (@workloads) {
    for my $v (@order) {
        my @r = sort { $a->{round} <=> $b->{round} } @{ $runs{"$v\t$w"} || [] };
        next unless @r;
        printf $md "%-27s %-11s%s\n", $label{$v}, $w,
            join('', map { sprintf('  %6.0f %5.1f %4.1f%%', $_->{rps}, $_->{lbus}, $_->{foreign}) } @r);
    }
}
print $md "```\n";
close $md;
