#!/usr/bin/env perl
# System test, as root: the README's first command, `bash scripts/demo.sh`,
# runs to its end (it exits non-zero when a step does not hold) and shows
# each step: stickiness, the probe seeing the failover and the return, no
# bounce-back, sessions learned into the embedded store, the status page.
# Bounded by 180 s; the demo stops everything it started.
use strict;
use warnings;
use FindBin;
use Test::More;

plan skip_all => 'needs root (the demo installs what is missing)' if $> != 0;
my $top = "$FindBin::Bin/../..";
my $out = `timeout 180 bash $top/scripts/demo.sh 2>&1`;
my $rc = $? >> 8;
is($rc, 0, 'scripts/demo.sh ran to its end') or diag $out;
like($out, qr/sticky: every request reached (t\d)/, 'step 2: the session is sticky');
like($out, qr/the module's probe sees it: t\d is down-by-probe/, 'step 4: the probe marks the stopped member down');
like($out, qr/the probe sees it again: t\d is up/, 'step 5: ... and up when it is back');
like($out, qr/sessions learned into the embedded store\):\n(?:.*\n){0,3}.*sessions bound [1-9]/,
     'step 7: the status page shows a session bound in the embedded store');
like($out, qr/== demo done/, 'the demo says it is done');
done_testing();
