# The status handler: HTML (rendered by headless Chromium), JSON, Prometheus
# text (checked with promtool), the mod_status summary, and run-time
# control: drain that converges, maintenance, weight, bindings shown and
# deleted, a member's sessions unbound; POSTs without the nonce or from an
# address the access rule denies are refused.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP ();
use File::Temp qw(tempdir);
use Apache::Test ();
use Apache::TestRequest ();
use StickyLB::Client;

my $st = url('slb_status', '/stickylb-status');

sub status_json {
    my $r = Apache::TestRequest::GET("$st?format=json");
    return JSON::PP::decode_json($r->content);
}
sub member {
    my ($j, $route) = @_;
    my ($b) = grep { $_->{name} eq 'balancer://ctl' } @{ $j->{balancers} };
    my ($m) = grep { $_->{route} eq $route } @{ $b->{members} };
    return $m;
}
sub control {
    my (%f) = @_;
    my $nonce = exists $f{nonce} ? delete $f{nonce} : status_json()->{nonce};
    my @form = (balancer => 'ctl', %f);
    push @form, nonce => $nonce if defined $nonce;
    return Apache::TestRequest::POST($st, \@form);
}
sub sid_of {
    my ($res) = @_;
    my ($sc) = set_cookies($res, 'JSESSIONID');
    return defined $sc && $sc =~ /^JSESSIONID=([^;]+)/ ? $1 : undef;
}

# --- traffic, then the three outputs
my %sid;
for my $t (qw(t1 t2 t3)) {
    my $r = req('slb_status', '/ctl/', Cookie => "ROUTEID=$t");
    $sid{$t} = sid_of($r);
}
req('slb_status', '/ctl/', Cookie => "JSESSIONID=$sid{t2}") for 1 .. 3;

my $j = status_json();
ok($j->{nonce} =~ /^[0-9a-f-]{36}$/, 'JSON: the nonce for control requests');
my $m2 = member($j, 't2');
is($m2->{state}, 'up', 'JSON: t2 is up');
is($m2->{sessions}, 1, 'JSON: one session bound to t2');
ok($m2->{requests} >= 4, "JSON: requests counted ($m2->{requests})");
is($m2->{weight}, 1, 'JSON: weight (loadfactor)');
is($j->{store}{table}{entries} >= 3 ? 1 : 0, 1, "JSON: table entries ($j->{store}{table}{entries})");
ok($j->{store}{table}{capacity} > 0, 'JSON: table capacity');

my $prom = Apache::TestRequest::GET("$st?format=prometheus");
like($prom->header('Content-Type'), qr{^text/plain; version=0\.0\.4}, 'Prometheus content type');
like($prom->content, qr/^stickylb_member_sessions\{balancer="balancer:\/\/ctl",member="[^"]+",route="t2"\} 1$/m,
     'Prometheus: sessions of t2');
SKIP: {
    skip 'promtool not installed', 1 unless -x '/usr/bin/promtool';
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/m.txt" or die $!;
    print $fh $prom->content;
    close $fh;
    my $out = `/usr/bin/promtool check metrics < '$dir/m.txt' 2>&1`;
    is($? >> 8, 0, 'promtool check metrics accepts the exposition') or diag $out;
}

my $html = Apache::TestRequest::GET($st);
like($html->header('Content-Type'), qr{^text/html}, 'HTML content type');
is($html->header('X-Frame-Options'), 'DENY', 'HTML: never in a frame (X-Frame-Options)');
is($html->header('Content-Security-Policy'), "frame-ancestors 'none'", "HTML: never in a frame (CSP frame-ancestors)");
{
    # the page's buttons: back to the page by a relative reference of the
    # handler's own, whatever the request path holds
    local $Apache::TestRequest::RedirectOK = 0;
    my $nonce = status_json()->{nonce};
    my $back = Apache::TestRequest::POST($st, [nonce => $nonce, balancer => 'ctl', member => 't1',
                                               action => 'weight', value => 1, return => 'html']);
    is($back->code, 303, 'a form posted from the page: 303 back to it');
    is($back->header('Location'), './stickylb-status', '... Location relative to the handler');
    is($back->header('X-Frame-Options'), 'DENY', '... and never in a frame');
    my $wrong = Apache::TestRequest::POST($st, [nonce => 'x' . substr($nonce, 1), balancer => 'ctl',
                                                member => 't1', action => 'drain']);
    is($wrong->code, 403, 'a nonce that differs in its first character: 403');
}
like($html->content, qr{<h2>balancer://ctl</h2>}, 'HTML: the balancer');
{
    my $c = $html->content;
    my $host = `hostname`;
    chomp $host;
    like($c, qr{host <b id="host">\Q$host\E</b>}, 'HTML: the host name');
    like($c, qr{mod_stickylb <span id="version">\d+\.\d+\.\d+</span>}, 'HTML: the module version');
    like($c, qr{<span id="apache">Apache/2\.4\.\d+}, 'HTML: the Apache version');
    like($c, qr{up <span id="uptime">\d+d \d+h \d+m \d+s</span>}, 'HTML: the uptime');
    like($c, qr{generated <span id="generated">\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT</span>}, 'HTML: when it was generated');
    # what "sessions" means, by balancer
    my ($ctl) = $c =~ m{<h2>balancer://ctl</h2>(.*?)</table>}s;
    my ($rc) = $c =~ m{<h2>balancer://rc</h2>(.*?)</table>}s;
    like($ctl, qr{<th>sessions bound \(stick table\)</th>}, 'HTML: learned sessions: bound in the stick table');
    like($ctl, qr{<th>route-cookie requests</th>}, 'HTML: ... and its route cookie counted');
    unlike($rc, qr{sessions bound}, 'HTML: a route-cookie balancer has no bound sessions column');
    like($rc, qr{route cookie ROUTEID: the client carries its member, nothing is stored}, 'HTML: ... it says why');
    like($rc, qr{<th>new sessions</th>.*<th>route-cookie requests</th>}s, 'HTML: ... and shows new sessions and route-cookie requests');
    # every control from the page, not only the API
    like($ctl, qr{<input type="hidden" name="action" value="weight"><input type="hidden" name="return" value="html"><input type="number" name="value" min="1" max="100" value="1"}, 'HTML: weight form with its value');
    like($ctl, qr{name="action" value="unbind">}, 'HTML: unbind button');
    like($c, qr{name="action" value="show"><input type="hidden" name="return" value="html"><input type="text" name="id"}, 'HTML: show form with a session id');
    like($c, qr{name="action" value="delete">}, 'HTML: delete form');
}
{
    # route-cookie requests per member
    my $j0 = status_json();
    my ($b) = grep { $_->{name} eq 'balancer://rc' } @{ $j0->{balancers} };
    my ($t1) = grep { $_->{route} eq 't1' } @{ $b->{members} };
    my $before = $t1->{route_cookie_requests};
    req('slb_status', '/rc/', Cookie => 'ROUTEID=t1') for 1 .. 3;
    ($b) = grep { $_->{name} eq 'balancer://rc' } @{ status_json()->{balancers} };
    ($t1) = grep { $_->{route} eq 't1' } @{ $b->{members} };
    is($t1->{route_cookie_requests} - $before, 3, 'route-cookie requests counted per member');
}
# format= is a query argument
{
    my $r = Apache::TestRequest::GET("$st?format=jsonp");
    is($r->code, 400, '?format=jsonp: 400, not JSON');
    like($r->content, qr/format=html, format=json or format=prometheus/, '... with the list of formats');
    $r = Apache::TestRequest::GET("$st?format=prometheusx");
    is($r->code, 400, '?format=prometheusx: 400');
    $r = Apache::TestRequest::GET("$st?x=1&format=json");
    like($r->header('Content-Type'), qr{^application/json}, '?x=1&format=json: JSON');
    $r = Apache::TestRequest::GET("$st?format=html");
    like($r->header('Content-Type'), qr{^text/html}, '?format=html: the page');
    $r = Apache::TestRequest::GET("$st?q=format=json");
    like($r->header('Content-Type'), qr{^text/html}, '"format=json" inside another argument: the page');
}
like($html->content, qr{<tr class="up"><td>http://127\.0\.0\.1:\d+</td><td>t2</td><td>up</td>}, 'HTML: t2 row');
SKIP: {
    my ($chromium) = grep { -x } qw(/usr/bin/chromium /usr/bin/chromium-browser);
    skip 'chromium not installed', 3 unless $chromium;
    my $dir = tempdir(CLEANUP => 1);
    my $png = "$dir/status.png";
    system("timeout 60 $chromium --headless --no-sandbox --disable-gpu "
           . "--disable-quic --no-first-run --disable-background-networking "
           . "--disable-component-update --disable-sync "
           . "--user-data-dir=$dir/profile --window-size=1280,900 "
           . "--screenshot=$png '$st' >$dir/chromium.log 2>&1");
    ok(-s $png, 'headless Chromium rendered the page to a PNG');
    my $bytes = do { local $/; open my $f, '<:raw', $png or die; <$f> } // '';
    my ($w, $h) = unpack('NN', substr($bytes, 16, 8));
    is(substr($bytes, 0, 8), "\x89PNG\r\n\x1a\n", 'the screenshot is a PNG');
    ok(($w // 0) == 1280 && ($h // 0) == 900 && length($bytes) > 20_000,
       "screenshot ${w}x${h}, " . length($bytes) . ' bytes (a blank page is a few KB)');
    if ($ENV{SLB_KEEP_SCREENSHOT}) {
        system('cp', $png, $ENV{SLB_KEEP_SCREENSHOT});
    }
}

my $ms = Apache::TestRequest::GET(url('slb_status', '/server-status?auto'));
like($ms->content, qr/^StickyLBMembersUp: \d+$/m, 'mod_status ?auto shows the summary');

# --- refused control requests
my $r = control(nonce => undef, member => 't1', action => 'drain');
is($r->code, 403, 'POST without the nonce: 403');
$r = control(nonce => 'not-the-nonce', member => 't1', action => 'drain');
is($r->code, 403, 'POST with a wrong nonce: 403');
$r = Apache::TestRequest::POST(url('slb_status', '/stickylb-status-denied'),
                               [balancer => 'ctl', member => 't1', action => 'drain',
                                nonce => status_json()->{nonce}]);
is($r->code, 403, 'POST from an address the access rule denies: 403');
is(member(status_json(), 't1')->{state}, 'up', 'nothing changed');

# --- drain that converges
$r = control(member => 't2', action => 'drain');
is($r->code, 200, 'drain t2');
is(member(status_json(), 't2')->{state}, 'draining', 'JSON: t2 draining');
{
    my $p = Apache::TestRequest::GET("$st?format=prometheus")->content;
    my $l = 'balancer="balancer://ctl",member="[^"]+",route="t2"';
    like($p, qr/^stickylb_member_up\{$l\} 1$/m, 'Prometheus: a draining member is still up (health only)');
    like($p, qr/^stickylb_member_state\{$l,state="draining"\} 1$/m, 'Prometheus: its state is draining');
    like($p, qr/^stickylb_member_state\{$l,state="up"\} 0$/m, '... and not up');
    my @one = $p =~ /^stickylb_member_state\{$l,state="[^"]+"\} 1$/mg;
    is(scalar(@one), 1, 'Prometheus: state one-hot');
}
my $x = req('slb_status', '/ctl/', Cookie => "JSESSIONID=$sid{t2}");
is(backend($x) . ' ' . (slb($x))[0], 't2 sticky', 'draining: the session already on t2 stays');
my %n;
$n{ backend(req('slb_status', '/ctl/')) }++ for 1 .. 6;
ok(!$n{t2}, 'draining: no new session on t2');
$x = req('slb_status', '/ctl/', Cookie => 'ROUTEID=t2');
my $late = sid_of($x);
ok($late && backend($x) eq 't2', 'a request pinned to t2 by its route cookie gets a new id from t2');
is((slb(req('slb_status', '/ctl/', Cookie => "JSESSIONID=$late")))[0], 'new',
   'draining: an id t2 issued while draining is not bound (the drain converges)');
is(member(status_json(), 't2')->{sessions}, 1, 'the status page shows the session left on t2');
$r = control(member => 't2', action => 'unbind');
like($r->content, qr/"unbound":1/, 'unbind: the session left on t2 removed');
is(member(status_json(), 't2')->{sessions}, 0, 'no session left on t2');
control(member => 't2', action => 'undrain');
is(member(status_json(), 't2')->{state}, 'up', 'undrain');

# --- maintenance, weight
control(member => 't3', action => 'maintenance');
is(member(status_json(), 't3')->{state}, 'disabled', 'maintenance: t3 disabled');
$x = req('slb_status', '/ctl/', Cookie => "JSESSIONID=$sid{t3}");
ok(backend($x) ne 't3' && (slb($x))[0] eq 'failover', 'maintenance: its session fails over to ' . backend($x));
control(member => 't3', action => 'enable');
is(member(status_json(), 't3')->{state}, 'up', 'enable: t3 up again');
$r = control(member => 't1', action => 'weight', value => 3);
is(member(status_json(), 't1')->{weight}, 3, 'weight of t1 set to 3');
$r = control(member => 't1', action => 'weight', value => 0);
is($r->code, 400, 'a weight of 0 is refused');
control(member => 't1', action => 'weight', value => 1);

# --- one session's binding
$r = control(action => 'show', id => $sid{t1});
like($r->content, qr/"route":"t1"/, 'show: the binding of a session');
$r = control(action => 'show', id => $sid{t1}, return => 'html');
like($r->header('Content-Type'), qr{^text/html}, 'show from the page: an HTML answer');
like($r->content, qr{is bound to route <code>t1</code>}, '... with the route');
$r = control(action => 'delete', id => $sid{t1});
like($r->content, qr/"deleted":true/, 'delete: the binding removed');
$r = control(action => 'show', id => $sid{t1});
like($r->content, qr/"route":null/, 'show: now unbound');
$r = control(member => 'nosuch', action => 'drain');
is($r->code, 400, 'unknown member: 400');

done_testing();
