#!/usr/bin/perl
# bench/lib/profile-summary.pl - reads callgrind_annotate listings of a
# profiled Apache (made by bench/lib/profile.sh) and prints, per request:
#
#   profile-summary.pl summary LABEL NREQ FAILED DIR [REFDIR]
#     DIR holds exclusive.txt (--inclusive=no), tree.txt (--inclusive=yes
#     --tree=calling).  Prints the instructions per request, mod_stickylb's
#     net cost (its entry points, inclusive, minus the rest of the output
#     filter chain they pass the response to), what that cost is made of,
#     its own functions (file:function), and, with REFDIR (stock Apache
#     round robin, same workload), the functions whose cost grew most.
use strict;
use warnings;

my ($mode, $label, $n, $failed, $dir, $refdir) = @ARGV;
die "usage: $0 summary LABEL NREQ FAILED DIR [REFDIR]\n" unless $mode && $mode eq 'summary';
$n ||= 1;

my $LINE = qr/^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\*|>)?\s*(\S.*?):([^\s:]+?)(?:'\d+)?(?:\s+\((\d[\d,]*)x\))?(?:\s+\[(.*)\])?\s*$/;

sub num { my $x = shift; $x =~ tr/,//d; return $x }
sub base { my $x = shift // ''; $x =~ s{^.*/}{}; return $x }

# flat exclusive listing: function -> {ir, src, obj}; "???" parts of a
# function (code without line information) are merged into it
sub exclusive {
    my ($file) = @_;
    my (%fn, $total);
    open my $h, '<', $file or die "$file: $!\n";
    while (my $l = <$h>) {
        if ($l =~ /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+PROGRAM TOTALS/) { $total = num($1); next }
        next unless $l =~ $LINE;
        my ($ir, $src, $func, $obj) = (num($1), base($3), $4, base($6));
        my $e = $fn{$func} ||= { ir => 0, src => '???', obj => '' };
        $e->{ir} += $ir;
        $e->{src} = $src if $src ne '???';
        $e->{obj} = $obj if $obj ne '';
    }
    return ($total // 0, \%fn);
}

# tree listing: function -> { inc => max inclusive, calls => {callee => ir} }
sub tree {
    my ($file) = @_;
    my (%fn, $cur);
    open my $h, '<', $file or die "$file: $!\n";
    while (my $l = <$h>) {
        next unless $l =~ $LINE;
        my ($ir, $mark, $func) = (num($1), $2 // '', $4);
        if ($mark eq '*') {
            $cur = $fn{$func} ||= { inc => 0, calls => {} };
            $cur->{inc} = $ir if $ir > $cur->{inc};
        }
        elsif ($mark eq '>' && $cur) {
            $cur->{calls}{$func} += $ir;
        }
    }
    return \%fn;
}

my ($total, $exc) = exclusive("$dir/exclusive.txt");
my $tree = tree("$dir/tree.txt");
my $per = sub { sprintf('%7.0f', $_[0] / $n) };
my $pct = sub { $total ? sprintf('%5.1f%%', 100 * $_[0] / $total) : '    -' };

printf "%s: %d requests (%s failed), %.0f instructions/request\n", $label, $n, $failed // '?', $total / $n;

my @entries = qw(slb_pre_request slb_finder slb_out_filter slb_insert_error_filter);
my ($net, @lines, %callee) = (0);
my %own = map { $_ => 1 } grep { ($exc->{$_}{obj} // '') =~ /mod_stickylb/ } keys %$exc;
for my $e (@entries) {
    my $t = $tree->{$e} or next;
    my $down = 0;
    for my $c (keys %{ $t->{calls} }) {
        if ($c eq 'ap_pass_brigade') { $down += $t->{calls}{$c}; next }
        $callee{$c} += $t->{calls}{$c} unless $own{$c};
    }
    my $x = $t->{inc} - $down;
    $net += $x;
    push @lines, sprintf("      %-44s %s/req %s%s\n", "mod_stickylb.c:$e", $per->($x), $pct->($x),
                         $down ? sprintf("  (inclusive %s/req, less the filters after it)", $per->($t->{inc}) =~ s/^\s+//r) : '');
}
if (@lines) {
    printf "  mod_stickylb, net (entry points inclusive, without the downstream filter chain): %s/req %s\n",
           $per->($net), $pct->($net);
    print @lines;
    # the callees of the module's own functions that are not the module's:
    # what its cost is made of outside its code
    for my $f (keys %own) {
        next if grep { $_ eq $f } @entries;
        my $t = $tree->{$f} or next;
        for my $c (keys %{ $t->{calls} }) {
            $callee{$c} += $t->{calls}{$c} unless $own{$c} || $c eq 'ap_pass_brigade';
        }
    }
    print "  called by mod_stickylb (APR, libc, libmemcached, httpd), inclusive:\n";
    for my $c ((sort { $callee{$b} <=> $callee{$a} } keys %callee)[0 .. 7]) {
        next unless defined $c && $callee{$c} / $n >= 1;
        my $o = $exc->{$c}{obj} || '';
        printf "      %-44s %s/req %s%s\n", $c, $per->($callee{$c}), $pct->($callee{$c}), $o ? "  [$o]" : '';
    }
    my $self = 0;
    $self += $exc->{$_}{ir} for keys %own;
    printf "  mod_stickylb's own code, exclusive: %s/req %s; by file:function:\n", $per->($self), $pct->($self);
    for my $f ((sort { $exc->{$b}{ir} <=> $exc->{$a}{ir} } keys %own)[0 .. 9]) {
        next unless defined $f && $exc->{$f}{ir} / $n >= 1;
        printf "      %-44s %s/req %s\n", "$exc->{$f}{src}:$f", $per->($exc->{$f}{ir}), $pct->($exc->{$f}{ir});
    }
}

if (!@lines) {
    # no mod_stickylb: Apache's own cost, where it goes
    print "  costliest functions, exclusive (Apache, APR, libc; stripped modules show addresses):\n";
    for my $f ((sort { $exc->{$b}{ir} <=> $exc->{$a}{ir} } keys %$exc)[0 .. 7]) {
        next unless defined $f;
        printf "      %-44s %s/req %s  [%s]\n", "$exc->{$f}{src}:$f", $per->($exc->{$f}{ir}),
               $pct->($exc->{$f}{ir}), $exc->{$f}{obj} || '?';
    }
}

my @apache = (
    ['mod_proxy_balancer', 'proxy_balancer_pre_request'],
    ['mod_lbmethod_byrequests', 'find_best_byrequests'],
    ['mod_proxy_balancer', 'proxy_balancer_post_request'],
    ['mod_headers', 'ap_headers_output_filter'],
    ['mod_proxy', 'proxy_handler'],
);
# (Debian's modules are stripped of their static symbols: these are found
# only with debug symbols installed)
my @found = grep { $tree->{ $_->[1] } } @apache;
print "  Apache modules, inclusive:\n" if @found;
for my $a (@found) {
    my $t = $tree->{ $a->[1] };
    printf "      %-44s %s/req %s\n", "$a->[0]:$a->[1]", $per->($t->{inc}), $pct->($t->{inc});
}

if ($refdir && -s "$refdir/exclusive.txt") {
    my ($rtotal, $rexc) = exclusive("$refdir/exclusive.txt");
    my $rn = $ENV{REF_NREQ} || $n;
    my $d = $total / $n - $rtotal / $rn;
    printf "  versus stock Apache round robin, same workload: %+.0f instructions/request (%+.1f%%); functions that grew most, exclusive:\n",
           $d, $rtotal ? 100 * $d / ($rtotal / $rn) : 0;
    my %all = map { $_ => 1 } (keys %$exc, keys %$rexc);
    my %delta = map { $_ => (($exc->{$_}{ir} // 0) / $n - ($rexc->{$_}{ir} // 0) / $rn) } keys %all;
    for my $f ((sort { $delta{$b} <=> $delta{$a} } keys %delta)[0 .. 9]) {
        next unless defined $f && $delta{$f} >= 1;
        my $e = $exc->{$f} || $rexc->{$f};
        printf "      %-44s %+7.0f/req  [%s]\n", "$e->{src}:$f", $delta{$f}, $e->{obj} || '?';
    }
}
print "TOTAL ", int($total / $n), "\n";
