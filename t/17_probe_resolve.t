# The prober looks a member's name up again every resolve= and follows a
# name whose address changes.  lb2 runs with a hosts file of the test's own
# in place of /etc/hosts (t/hosts_ns.pl: user and mount namespaces, no
# root), its member http://dyn.stickylb.test:PORT; two backends listen on
# that port, one on 127.0.0.1 (route dnsa), one on 127.0.0.2 (dnsb).
#   the name moved to 127.0.0.2: the probe follows within resolve= +
#   interval + slack (logged, SLB0309; the JSON's probe.address), and the
#   member stays up when the old address goes away; resolve=0 keeps the
#   first address; moved to an address where nothing listens: down;
#   the name gone from the hosts file: the last address is kept (SLB0310);
#   back: up again.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use StickyLB::Backends qw(:all);
use StickyLB::Services;

plan skip_all => 't/hosts_ns.pl does not work here (no unprivileged user namespaces)'
    unless hosts_ns_available();

my $dir = logs_dir() . '/dns';
mkdir $dir unless -d $dir;
my $hosts = "$dir/hosts";
my $NAME = 'dyn.stickylb.test';
my $port;
for (1 .. 50) {
    $port = free_port();
    last unless port_open($port, '127.0.0.2');
}

END { local $?; stop_lb2(); stop_backend($_) for qw(dnsa dnsb); }

# the hosts file, rewritten in place (same inode, same length: a lookup
# never sees it empty)
sub point {
    my ($ip) = @_;
    my $text = "127.0.0.1 localhost\n" . ($ip ? "$ip $NAME\n" : "#.0.0.0 dyn-gone.stickylb\n");
    open my $fh, (-e $hosts ? '+<' : '>'), $hosts or die "$hosts: $!";
    seek $fh, 0, 0;
    print {$fh} $text;
    truncate $fh, length $text;
    close $fh or die "$hosts: $!";
}
point('127.0.0.1');

start_backend(route => 'dnsa', port => $port, host => '127.0.0.1');
start_backend(route => 'dnsb', port => $port, host => '127.0.0.2');

my $P = 'http path=/health interval=1 timeout=500ms rise=1 fall=1';
start_lb2(<<"CONF", hosts => $hosts);
WatchdogInterval 200ms
LogLevel warn stickylb:info
<Proxy "balancer://dyn">
    BalancerMember "http://$NAME:$port" route=dyn addressttl=1
    ProxySet lbmethod=stickylb
    StickyLBProbe $P resolve=2
</Proxy>
<Proxy "balancer://once">
    BalancerMember "http://$NAME:$port" route=once
    ProxySet lbmethod=stickylb
    StickyLBProbe $P resolve=0
</Proxy>
ProxyPass "/dyn" "balancer://dyn"
<Location "/stickylb-status">
    SetHandler stickylb-status
</Location>
CONF

sub member {
    my ($bal) = @_;
    my $j = JSON::PP::decode_json(lb2_get('/stickylb-status?format=json')->content);
    my ($b) = grep { $_->{name} eq "balancer://$bal" } @{ $j->{balancers} };
    return $b ? $b->{members}[0] : undef;
}
sub addr { my $m = member($_[0]); return $m && $m->{probe} ? $m->{probe}{address} // '' : '' }
sub state { my $m = member($_[0]); return $m ? $m->{state} : '' }
sub wait_for {
    my ($what, $limit) = @_;
    my $t0 = time;
    while (time - $t0 < $limit) {
        return time - $t0 if $what->();
        sleep 0.1;
    }
    return undef;
}
sub log_has {
    my ($re) = @_;
    open my $fh, '<', lb2_error_log() or return 0;
    my $n = grep { $_ =~ $re } <$fh>;
    close $fh;
    return $n;
}

# (the first probes of the two members are spread over the interval)
my $t = wait_for(sub { addr('dyn') eq "127.0.0.1:$port" && state('dyn') eq 'up' }, 5);
ok(defined $t, "$NAME at 127.0.0.1: probed there, up") or diag(addr('dyn') . ' ' . state('dyn'));
$t = wait_for(sub { addr('once') eq "127.0.0.1:$port" }, 5);
ok(defined $t, 'resolve=0: probed at 127.0.0.1 too') or diag(addr('once'));
my $r = lb2_get('/dyn/');
is($r->header('X-Backend') // '', 'dnsa', 'a request reaches the backend on 127.0.0.1');

# --- the name moves to 127.0.0.2
point('127.0.0.2');
my $down_seen = 0;
$t = wait_for(sub { $down_seen ||= state('dyn') ne 'up'; addr('dyn') eq "127.0.0.2:$port" }, 8);
ok(defined $t && $t <= 4.5,
   sprintf('the name moved to 127.0.0.2: the probe follows in %.1f s (bound resolve=2 + interval 1 + 1.5 s)', $t // -1))
    or diag(addr('dyn'));
ok(!$down_seen, 'the member stayed up meanwhile');
ok(log_has(qr/SLB0309: member http:\/\/\Q$NAME:$port\E \(route dyn\) of balancer:\/\/dyn: \Q$NAME\E now resolves to 127\.0\.0\.2 \(was 127\.0\.0\.1\)/),
   'the change is logged (SLB0309)');
stop_backend('dnsa');
sleep 2.5;
is(state('dyn') . ' ' . addr('dyn'), "up 127.0.0.2:$port",
   'the backend on 127.0.0.1 stopped: the member stays up, probed at 127.0.0.2');
is(state('once'), 'down-by-probe', 'resolve=0: still probed at 127.0.0.1, now down');
is(addr('once'), "127.0.0.1:$port", 'resolve=0: the first address is kept');
$r = lb2_get('/dyn/');
is($r->code . ' ' . ($r->header('X-Backend') // ''), '200 dnsb',
   'a request through the balancer reaches 127.0.0.2 (mod_proxy: addressttl=1)');

# --- moved where nothing listens: down; back: up
point('127.0.0.3');
$t = wait_for(sub { state('dyn') eq 'down-by-probe' }, 8);
ok(defined $t && $t <= 4.5, sprintf('moved to 127.0.0.3 (nothing there): down in %.1f s', $t // -1));
is(member('dyn')->{probe}{result}, 'connect failed', '... connect failed');

# --- the name gone: the last address is kept, and said
point(undef);
$t = wait_for(sub { log_has(qr/SLB0310: .*cannot look \Q$NAME\E up again; probing its last address 127\.0\.0\.3/) }, 6);
ok(defined $t, 'the name gone: logged once (SLB0310), the last address kept');
is(addr('dyn'), "127.0.0.3:$port", '... and probed');

point('127.0.0.2');
$t = wait_for(sub { state('dyn') eq 'up' && addr('dyn') eq "127.0.0.2:$port" }, 8);
ok(defined $t && $t <= 4.5, sprintf('back at 127.0.0.2: up in %.1f s', $t // -1));
is(log_has(qr/SLB0310:/), 1, 'SLB0310 logged once for the whole outage');

done_testing();
