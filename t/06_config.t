# Configuration: server-level values merged into balancer sections, and
# bad values rejected by configtest with a message naming the directive.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Apache::Test ();
use File::Temp qw(tempdir);
use StickyLB::Client;
use StickyLB::Configtest qw(configtest);

# --- merging (vhost slb_merge: StickyLBSessionCookie SID, separator ':')
my $x = req('slb_merge', '/inherit/', Cookie => 'SID=0a1b:t2');
is(backend($x), 't2', 'balancer inherits the server-level cookie name and separator');
$x = req('slb_merge', '/inherit/', Cookie => 'JSESSIONID=0a1b.t2');
is((slb($x))[0], 'new', 'the default cookie is replaced, not added');
$x = req('slb_merge', '/inherit/x;jsessionid=0a1b:t1');
is(backend($x), 't1', 'the default path parameter stays, with the inherited separator');
$x = req('slb_merge', '/override/', Cookie => 'JSESSIONID=0a1b:t2');
is(backend($x), 't2', 'section overrides the cookie name, keeps the inherited separator');
$x = req('slb_merge', '/override/', Cookie => 'SID=0a1b:t2');
is((slb($x))[0], 'new', 'the overridden cookie name no longer counts');
$x = req('slb_merge', '/override/x;jsessionid=0a1b:t1');
is((slb($x))[0], 'new', 'StickyLBPathParam none in the section');

# --- configtest
my $dir = StickyLB::Configtest::dir();

sub balancer { my $d = shift; return qq{<Proxy "balancer://b">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n $d\n</Proxy>\n} }

my ($rc, $out) = configtest(balancer('StickyLBRouteCookie ROUTEID insert indirect nocache path=/app domain=.example.com secure=on httponly=off samesite=none max-age=0'));
is($rc, 0, 'a full valid configuration passes configtest') or diag $out;
($rc, $out) = configtest("StickyLBSessionCookie JSESSIONID PHPSESSID\nStickyLBSeparator ~\n" . balancer('StickyLBPathParam none'));
is($rc, 0, 'server-level directives pass') or diag $out;

my @bad = (
    ['StickyLBRouteCookie ROUTEID samesite=bogus', 'StickyLBRouteCookie', 'samesite'],
    ['StickyLBRouteCookie ROUTEID samesite=none',  'StickyLBRouteCookie', 'secure=on'],
    ['StickyLBRouteCookie ROUTEID max-age=-5',     'StickyLBRouteCookie', 'max-age'],
    ['StickyLBRouteCookie ROUTEID max-age=12x',    'StickyLBRouteCookie', 'max-age'],
    ['StickyLBRouteCookie ROUTEID nocache',        'StickyLBRouteCookie', 'nocache'],
    ['StickyLBRouteCookie ROUTEID frobnicate',     'StickyLBRouteCookie', 'frobnicate'],
    ['StickyLBRouteCookie ROUTEID path=app',       'StickyLBRouteCookie', 'path'],
    ['StickyLBRouteCookie ROUTEID domain=a;b',     'StickyLBRouteCookie', 'domain'],
    ['StickyLBRouteCookie ROUTEID secure=maybe',   'StickyLBRouteCookie', 'secure'],
    ['StickyLBRouteCookie ROUTEID colour=red',     'StickyLBRouteCookie', 'colour'],
    ['StickyLBRouteCookie "ROUTE;ID"',             'StickyLBRouteCookie', 'ROUTE;ID'],
    ['StickyLBRouteCookie',                        'StickyLBRouteCookie', ''],
    ['StickyLBSeparator ab',                       'StickyLBSeparator',   'ab'],
    ['StickyLBSeparator ;',                        'StickyLBSeparator',   ';'],
    ['StickyLBSeparator =',                        'StickyLBSeparator',   '='],
    ['StickyLBSessionCookie "a;b"',                'StickyLBSessionCookie', 'a;b'],
    ['StickyLBSessionCookie JSESSIONID none',      'StickyLBSessionCookie', 'none'],
    ['StickyLBPathParam "a=b"',                    'StickyLBPathParam',   'a=b'],
    ['StickyLBLearnCookie "a;b"',                  'StickyLBLearnCookie', 'a;b'],
    ['StickyLBKey cookie "a;b"',                   'StickyLBKey',         'a;b'],
    ['StickyLBKey cookie',                         'StickyLBKey',         'cookie'],
    ['StickyLBKey header',                         'StickyLBKey',         'header'],
    ['StickyLBKey address X',                      'StickyLBKey',         'address'],
    ['StickyLBIdleTimeout -1',                     'StickyLBIdleTimeout', '-1'],
    ['StickyLBIdleTimeout 10m',                    'StickyLBIdleTimeout', '10m'],
    ['StickyLBMaxLifetime forever',                'StickyLBMaxLifetime', 'forever'],
    ['StickyLBNamespace "a b"',                    'StickyLBNamespace',   'a b'],
    ['StickyLBTableSize 1000',                     'StickyLBTableSize',   'not allowed'],
    ['StickyLBStore redis',                        'StickyLBStore',       'redis'],
    ['StickyLBVariables maybe',                    'StickyLBVariables',   'auto, on or off'],
    ['StickyLBProbe ping',                         'StickyLBProbe',       'ping'],
    ['StickyLBProbe http interval=0',              'StickyLBProbe',       'interval'],
    ['StickyLBProbe http interval=1 timeout=2',    'StickyLBProbe',       'timeout'],
    ['StickyLBProbe http expect=2xx',              'StickyLBProbe',       'expect'],
    ['StickyLBProbe http path=health',             'StickyLBProbe',       'path'],
    ['StickyLBProbe tcp body=OK',                  'StickyLBProbe',       'body'],
    ['StickyLBProbe http rise=0',                  'StickyLBProbe',       'rise'],
    ['StickyLBProbe http colour=red',              'StickyLBProbe',       'colour'],
    ["StickyLBProbe tcp\n StickyLBProbe http",     'StickyLBProbe',       'already'],
    ['StickyLBPassive 5000',                       'StickyLBPassive',     '5000'],
    ['StickyLBPassive 500 fall=0',                 'StickyLBPassive',     'fall'],
    ['StickyLBSlowStart 7200',                     'StickyLBSlowStart',   '3600'],
    ['StickyLBSlowStart 10m',                      'StickyLBSlowStart',   '10m'],
    ['StickyLBIdleTimeout 1.5s',                   'StickyLBIdleTimeout', 'ms or s'],
    ['StickyLBProbe http interval=50ms',           'StickyLBProbe',       '100 ms'],
    ['StickyLBAgent tcp',                          'StickyLBAgent',       'must be http or none'],
    ['StickyLBAgent http body=up',                 'StickyLBAgent',       "unknown option 'body=up'"],
    ['StickyLBAgent http header=X:Y',              'StickyLBAgent',       'not a header name'],
    ['StickyLBAgent http interval=1 timeout=2',    'StickyLBAgent',       'timeout= must not exceed interval='],
    ['StickyLBAgent none route=a',                 'StickyLBAgent',       'none takes no option'],
    ["StickyLBAgent http\n StickyLBAgent http path=/x", 'StickyLBAgent', 'already'],
    ['StickyLBRouteCookie ROUTEID insert strict',  'StickyLBRouteCookie', 'sign='],
    ['StickyLBRouteCookie ROUTEID insert sign=/nonexistent/keys', 'StickyLBRouteCookie', '/nonexistent/keys'],
    ['StickyLBRouteCookie ROUTEID insert maxidle=0 sign=/x', 'StickyLBRouteCookie', 'maxidle'],
    ['StickyLBRouteCookie ROUTEID opaque sign=/x', 'StickyLBRouteCookie', 'insert'],
);
{
    open my $k, '>', "$dir/short.keys" or die $!;
    print $k "short\n";
    close $k;
    push @bad, ["StickyLBRouteCookie ROUTEID insert sign=$dir/short.keys", 'StickyLBRouteCookie', 'shorter than 16'];
}
for my $b (@bad) {
    my ($directive, $name, $word) = @$b;
    ($rc, $out) = configtest(balancer($directive));
    ok($rc != 0 && index($out, $name) >= 0 && index($out, $word) >= 0,
       "configtest rejects '$directive' naming $name") or diag $out;
}

($rc, $out) = configtest(balancer("StickyLBStore memcached"));
ok($rc != 0 && $out =~ /StickyLBStore memcached: no StickyLBMemcached/, 'memcached store without servers rejected') or diag $out;
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=127.0.0.1:11211\" timeout=abc\n");
ok($rc != 0 && $out =~ /StickyLBMemcached: 'timeout=abc'/, 'bad StickyLBMemcached option rejected') or diag $out;
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=\"\n");
ok($rc != 0 && $out =~ /StickyLBMemcached:/, 'bad memcached server string rejected') or diag $out;
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=127.0.0.1:11211\" cache=1\n" . balancer("StickyLBStore memcached\n StickyLBProbe http path=/health expect=200,204 body=UP interval=2 timeout=500ms\n StickyLBProbe tcp route=a\n StickyLBPassive 500 502-504 fall=2\n StickyLBSlowStart 30"));
is($rc, 0, 'memcached, probe, passive and slow start directives pass configtest') or diag $out;
($rc, $out) = configtest("StickyLBTableSize 8\n");
ok($rc != 0 && $out =~ /StickyLBTableSize: '8' must be/, 'StickyLBTableSize below 16 rejected') or diag $out;
($rc, $out) = configtest("StickyLBTableSize 1000000\n" . balancer("StickyLBLearnCookie JSESSIONID PHPSESSID\n StickyLBKey header X-S\n StickyLBKey address\n StickyLBIdleTimeout 600\n StickyLBMaxLifetime 0\n StickyLBNamespace shop"));
is($rc, 0, 'store directives pass configtest') or diag $out;
($rc, $out) = configtest(balancer("StickyLBLearnCookie PHPSESSID\n StickyLBKey cookie JSESSIONID\n StickyLBKey header X-Sid"));
is($rc, 0, 'a key cookie next to a learned cookie passes configtest') or diag $out;
# a learned cookie of the server and the same name as a key of the balancer
($rc, $out) = configtest("StickyLBLearnCookie sid\n" . balancer("StickyLBKey cookie sid"));
ok($rc != 0 && $out =~ /StickyLBKey cookie sid: sid is a StickyLBLearnCookie too/, 'a key cookie learned in an outer scope is refused') or diag $out;
# one duration syntax everywhere: a bare number in the directive's unit,
# or with ms or s
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=127.0.0.1:11211\" connect-timeout=1s timeout=250ms retry=2s pool-wait=20 cache=500ms\n" . balancer("StickyLBIdleTimeout 1800s\n StickyLBMaxLifetime 86400\n StickyLBSlowStart 1500ms\n StickyLBProbe http interval=2s timeout=500ms\n StickyLBRouteCookie R insert max-age=3600s"));
is($rc, 0, 'durations with ms and s pass configtest') or diag $out;
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=127.0.0.1:11211\" timeout=2m\n");
ok($rc != 0 && $out =~ /StickyLBMemcached: 'timeout=2m'.*from 1 ms to 60 s/, 'a memcached timeout in an unknown unit is refused with its range') or diag $out;

# Messages that say the fix: what a memcached string should look like, the
# options of a directive, the near miss of a misspelt one.
($rc, $out) = configtest("StickyLBMemcached \"10.0.0.5:11211\"\n");
ok($rc != 0 && $out =~ /StickyLBMemcached: invalid memcached configuration "10\.0\.0\.5:11211" \(libmemcached: syntax error, unexpected IPADDRESS\): servers are written as options; did you mean "--SERVER=10\.0\.0\.5:11211"\?/,
   'a bare memcached server: the rewritten string is suggested') or diag $out;
unlike($out, qr/last_token|-> \S+:\d+/, '... without the parser internals');
($rc, $out) = configtest("StickyLBMemcached \"10.0.0.5:11211,10.0.0.6:11211\"\n");
ok($rc != 0 && $out =~ /did you mean "--SERVER=10\.0\.0\.5:11211 --SERVER=10\.0\.0\.6:11211"\?/,
   'a comma-separated server list: one --SERVER= each, separated by spaces') or diag $out;
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=10.0.0.5:11211 --NO-SUCH\"\n");
ok($rc != 0 && $out =~ /StickyLBMemcached: invalid memcached configuration .*expected libmemcached options separated by spaces, one --SERVER=host:port per server, e\.g\. "--SERVER=10\.0\.0\.5:11211 --SERVER=10\.0\.0\.6:11211"/,
   'another unparsable memcached string: the expected form') or diag $out;
unlike($out, qr/did you mean/, '... and no suggestion that would not parse');
my $cookie_opts = 'insert, indirect, nocache, strict, opaque, path=, domain=, secure=, httponly=, samesite=, max-age=, sign=, maxidle=, maxlife=';
for my $c (['StickyLBRouteCookie ROUTEID insert samesit=lax', qr/StickyLBRouteCookie: unknown option 'samesit=lax': did you mean samesite=\? \(expected \Q$cookie_opts\E\)/],
           ['StickyLBRouteCookie ROUTEID insert colour=red', qr/StickyLBRouteCookie: unknown option 'colour=red' \(expected \Q$cookie_opts\E\)/],
           ['StickyLBRouteCookie ROUTEID insrt',            qr/StickyLBRouteCookie: unknown option 'insrt': did you mean insert\? \(expected /],
           ['StickyLBProbe http intervall=5',                qr/StickyLBProbe: unknown option 'intervall=5': did you mean interval=\? \(expected method=, path=, host=, expect=, body=, interval=, timeout=, rise=, fall=, route=, verify=, ca=, resolve=\)/],
           ['StickyLBProbe http interval',                   qr/StickyLBProbe: unknown option 'interval': did you mean interval=\? /],
           ['StickyLBPassive 500 fal=2',                     qr/StickyLBPassive: unknown option 'fal=2': did you mean fall=\? \(expected fall=, ratio=, window=, min-requests=, min-clients=, max-ejected=, eject=, eject-max=\)/],
           ['StickyLBPassive 500 fall=3 ratio=50',            qr/StickyLBPassive: fall= \(failures in a row\) and ratio= \(a share of the responses over window=\) are two ways of counting: give one/],
           ['StickyLBPassive 500 min-requests=20',            qr/StickyLBPassive: min-requests= counts only with ratio= \(e\.g\. ratio=50 window=10 min-requests=20\)/],
           ['StickyLBPassive 500 ratio=50 min-clients=20',    qr/StickyLBPassive: 'min-clients=20' must be min-clients=1\.\.8/],
           ['StickyLBPassive 500 eject=60 eject-max=30',      qr/StickyLBPassive: eject-max=30 is shorter than eject=60/],
           ['StickyLBKey heder X-Sid',                       qr/StickyLBKey: unknown key 'heder': did you mean header\? /],
           ['StickyLBKey cokie JSESSIONID',                  qr/StickyLBKey: unknown key 'cokie': did you mean cookie\? \(expected header NAME, query NAME, cookie NAME, address or none\)/],
           ['StickyLBKey header Cookie',                     qr/StickyLBKey: header Cookie would key on the whole Cookie header .*write StickyLBKey cookie NAME \(e\.g\. StickyLBKey cookie JSESSIONID\)/],
           ["StickyLBLearnCookie JSESSIONID\n StickyLBKey cookie JSESSIONID", qr/StickyLBKey cookie JSESSIONID: JSESSIONID is a StickyLBLearnCookie too .*keep one of the two \(balancer balancer:\/\/b\)/],
           ["StickyLBLearnCookie a b c d e\n StickyLBKey cookie f\n StickyLBKey cookie g\n StickyLBKey cookie h\n StickyLBKey cookie i", qr/StickyLBLearnCookie and StickyLBKey cookie name 9 cookies together: at most 8 \(balancer balancer:\/\/b\)/],
           ['StickyLBStore memcache',                        qr/StickyLBStore: 'memcache' must be shm, memcached or none \(did you mean memcached\?\)/]) {
    ($rc, $out) = configtest(balancer($c->[0]));
    ok($rc != 0 && $out =~ $c->[1], "configtest: '$c->[0]' says what was meant") or diag $out;
}
($rc, $out) = configtest("StickyLBMemcached \"--SERVER=127.0.0.1:11211\" timeuot=20\n");
ok($rc != 0 && $out =~ /StickyLBMemcached: unknown option 'timeuot=20': did you mean timeout=\? \(expected connect-timeout=, timeout=, retry=, failure-limit=, replicas=, pool=, pool-wait=, write=, queue=, cache=\)/,
   'a misspelt StickyLBMemcached option: the near miss and the list') or diag $out;

# What names nothing or has no effect, said at configtest.
($rc, $out) = configtest(qq{<Proxy "balancer://p">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBProbe http route=nosuch\n</Proxy>\n});
ok($rc != 0 && $out =~ /StickyLBProbe: route=nosuch names no member of balancer:\/\/p/, 'a probe route= that names no member is refused') or diag $out;
($rc, $out) = configtest(qq{<Proxy "balancer://p">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBAgent http route=nosuch\n</Proxy>\n});
ok($rc != 0 && $out =~ /StickyLBAgent: route=nosuch names no member of balancer:\/\/p/, 'an agent route= that names no member is refused') or diag $out;
($rc, $out) = configtest(balancer("StickyLBAgent http path=/agent header=X-Agent-State interval=2 timeout=500ms\n StickyLBAgent http path=/a route=a\n StickyLBProbe tcp"));
is($rc, 0, 'agent checks next to a probe pass configtest') or diag $out;
($rc, $out) = configtest(qq{<Proxy "balancer://p">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=stickylb\n StickyLBProbe http route=a\n</Proxy>\n});
is($rc, 0, 'a probe route= of a member passes') or diag $out;
($rc, $out) = configtest(qq{<Proxy "balancer://rr">\n BalancerMember "http://127.0.0.1:9" route=a\n ProxySet lbmethod=byrequests\n StickyLBRouteCookie ROUTEID insert\n</Proxy>\n});
ok($rc == 0 && $out =~ /SLB0004: the StickyLB directives in <Proxy "balancer:\/\/rr"> have no effect: that balancer uses lbmethod=byrequests/, 'StickyLB directives in a balancer of another lbmethod: a warning at configtest') or diag $out;
($rc, $out) = configtest(qq{<Proxy "balancer://nr">\n BalancerMember "http://127.0.0.1:9"\n BalancerMember "http://127.0.0.1:10" route=b\n ProxySet lbmethod=stickylb\n StickyLBSessionCookie JSESSIONID\n</Proxy>\n});
ok($rc == 0 && $out =~ /SLB0002: member http:\/\/127\.0\.0\.1:9 of balancer:\/\/nr has no route=/, 'a member without route= is warned about at configtest') or diag $out;
unlike($out, qr/127\.0\.0\.1:10 of balancer:\/\/nr has no route/, '... and only that one');

# StickyLBDiscover: the source's line checked (no I/O), the growth slots
# it needs, what was meant
sub grows { my $d = shift; return qq{<Proxy "balancer://g">\n ProxySet lbmethod=stickylb growth=4\n $d\n</Proxy>\n} }
($rc, $out) = configtest(grows("StickyLBDiscover dns app.internal:8080 interval=5 grace=30s server=10.0.0.53,10.0.0.54:5353 timeout=500ms family=ipv4 route-prefix=app-"));
is($rc, 0, 'StickyLBDiscover dns with its options passes configtest') or diag $out;
($rc, $out) = configtest(grows("StickyLBDiscover srv _http._tcp.app.internal route=label-port scheme=https flap-limit=0"));
is($rc, 0, 'StickyLBDiscover srv passes configtest') or diag $out;
($rc, $out) = configtest(balancer("StickyLBDiscover dns app.internal:8080"));
ok($rc != 0 && $out =~ /StickyLBDiscover dns app\.internal:8080 in <Proxy "balancer:\/\/b">: the balancer has no growth slots .*add "ProxySet growth=N"/,
   'StickyLBDiscover in a balancer without growth slots: refused, with the fix') or diag $out;
for my $c (['StickyLBDiscover',                           qr/StickyLBDiscover: needs a kind \(dns, srv[^)]*\) and a target/],
           ['StickyLBDiscover dnz app:80',                qr/StickyLBDiscover: unknown kind 'dnz': did you mean dns\? \(the kinds are dns, srv/],
           ['StickyLBDiscover dns app.internal',          qr/StickyLBDiscover: dns app\.internal: 'app\.internal': the target of dns is name:port, e\.g\. app\.example\.com:8080/],
           ['StickyLBDiscover srv app.internal',          qr/StickyLBDiscover: srv app\.internal: .*an SRV name is _service\._proto\.name/],
           ['StickyLBDiscover dns app:80 timout=1s',      qr/StickyLBDiscover: dns app:80: unknown option 'timout=1s': did you mean timeout=\? \(expected server=, timeout=, family=, scheme=, interval=/],
           ['StickyLBDiscover dns app:80 server=dns.example', qr/StickyLBDiscover: dns app:80: server=: 'dns\.example' is not an IP address/],
           ['StickyLBDiscover dns app:80 interval=10m',   qr/StickyLBDiscover: dns app:80: 'interval=10m'/],
           ['StickyLBDiscover dns app:80 interval=5 min-interval=10', qr/min-interval= \(10 s\) <= interval= \(5 s\)/],
           ['StickyLBDiscover dns app:80 grace',          qr/StickyLBDiscover: dns app:80: 'grace': options are key=value/],
           ['StickyLBDiscover dns app:80 route=label',    qr/StickyLBDiscover: dns app:80: unknown option 'route=label'/],
           ["StickyLBDiscover dns a:80\n StickyLBDiscover dns b:80", qr/StickyLBDiscover: balancer:\/\/g has a source already/]) {
    ($rc, $out) = configtest(grows($c->[0]));
    ok($rc != 0 && $out =~ $c->[1], "configtest: '$c->[0]' says what is wrong") or diag $out;
}
# etcd: the gateway's URL(s) and prefix= checked at configtest, no I/O
# (nobody listens on these addresses)
($rc, $out) = configtest(grows("StickyLBDiscover etcd http://127.0.0.1:2379 prefix=/services/web/"));
is($rc, 0, 'StickyLBDiscover etcd passes configtest') or diag $out;
($rc, $out) = configtest(grows("StickyLBDiscover etcd http://10.0.0.61:2379,https://etcd.example:2379 prefix=/services/web/ timeout=500ms wait=5 interval=1 grace=30"));
is($rc, 0, 'StickyLBDiscover etcd with two endpoints and its options passes configtest') or diag $out;
my $E = 'StickyLBDiscover etcd http://127.0.0.1:2379';
for my $c (["$E",                          qr/StickyLBDiscover: etcd http:\/\/127\.0\.0\.1:2379: etcd needs prefix= \(the keys of the members, e\.g\. prefix=\/services\/web\/\)/],
           ["$E prefix=",                  qr/StickyLBDiscover: etcd [^:]+:\/\/[^:]+:2379: prefix= must not be empty/],
           ["$E prefix=/a/ prefx=/b/",     qr/StickyLBDiscover: etcd [^ ]+: unknown option 'prefx=\/b\/': did you mean prefix=\? \(expected prefix=, timeout=, ca=, cert=, key=, interval=/],
           ["$E prefix=/a/ timeout=2m",    qr/StickyLBDiscover: etcd [^ ]+: timeout=: /],
           ["$E prefix=/a/ timeout=90s",   qr/StickyLBDiscover: etcd [^ ]+: timeout=: /],
           ['StickyLBDiscover etcd 127.0.0.1:2379 prefix=/a/', qr/StickyLBDiscover: etcd 127\.0\.0\.1:2379: '127\.0\.0\.1:2379' is not an etcd URL \(http:\/\/host:port or https:\/\/host:port\)/],
           ['StickyLBDiscover etcd http://127.0.0.1:2379/v3/ prefix=/a/', qr/StickyLBDiscover: etcd [^ ]+: 'http:\/\/127\.0\.0\.1:2379\/v3\/': only scheme:\/\/host:port/],
           ['StickyLBDiscover etcd http://127.0.0.1:99999 prefix=/a/', qr/the port is not 1 to 65535/],
           ['StickyLBDiscover etcd https://127.0.0.1:2379 prefix=/a/ ca=/nonexistent/ca.pem', qr/StickyLBDiscover: etcd [^ ]+: ca=\/nonexistent\/ca\.pem: the file cannot be read/],
           ["$E prefix=/a/ ca=/etc/ssl/certs/ca-certificates.crt", qr/ca=, cert= and key= are for https:\/\/ endpoints, and none is/],
           ['StickyLBDiscover etcd https://127.0.0.1:2379 prefix=/a/ cert=/etc/ssl/certs/ca-certificates.crt', qr/cert= and key= go together/]) {
    ($rc, $out) = configtest(grows($c->[0]));
    ok($rc != 0 && $out =~ $c->[1], "configtest: '$c->[0]' says what is wrong") or diag $out;
}
($rc, $out) = configtest("<Location /x>\n StickyLBDiscover dns app:80\n</Location>\n");
ok($rc != 0 && $out =~ /StickyLBDiscover: allowed only in a <Proxy balancer:\/\/\.\.\.> section/, 'StickyLBDiscover in <Location> rejected') or diag $out;
($rc, $out) = configtest("<Proxy http://example.com/>\n StickyLBDiscover dns app:80\n</Proxy>\n");
ok($rc != 0 && $out =~ /StickyLBDiscover: allowed only in a <Proxy balancer:/, 'StickyLBDiscover in a non-balancer <Proxy> rejected') or diag $out;
($rc, $out) = configtest("StickyLBDiscover dns app:80\n");
ok($rc != 0 && $out =~ /StickyLBDiscover not allowed here/, 'StickyLBDiscover in the server config rejected') or diag $out;

# Outside the sections where it has an effect.
($rc, $out) = configtest("<Location /x>\n StickyLBSessionCookie SID\n</Location>\n");
ok($rc != 0 && $out =~ /StickyLBSessionCookie: allowed only/, 'directive in <Location> rejected') or diag $out;
($rc, $out) = configtest("<Proxy http://example.com/>\n StickyLBSessionCookie SID\n</Proxy>\n");
ok($rc != 0 && $out =~ /StickyLBSessionCookie: allowed only/, 'directive in a non-balancer <Proxy> rejected') or diag $out;

done_testing();
