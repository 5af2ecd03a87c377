# Hostile and malformed keys: each has a defined outcome, never a 5xx,
# never a member the operator took out.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StickyLB::Client;

# [description, path, [headers], expected member or 'new']
my @cases = (
    ['empty cookie value',            '/jvm/', [Cookie => 'JSESSIONID='],               'new'],
    ['empty header',                  '/jvm/', [Cookie => ''],                          'new'],
    ['unknown route',                 '/jvm/', [Cookie => 'JSESSIONID=0a1b.t9'],        'new'],
    ['same name twice, first unknown', '/jvm/', [Cookie => 'JSESSIONID=0a.t9; JSESSIONID=0b.t2'], 't2'],
    ['same name twice, first wins',   '/jvm/', [Cookie => 'JSESSIONID=0a.t2; JSESSIONID=0b.t3'], 't2'],
    ['two Cookie headers',            '/jvm/', [Cookie => 'JSESSIONID=0a.t9', Cookie => 'JSESSIONID=0b.t3'], 't3'],
    ['value over 4 KiB',              '/jvm/', [Cookie => 'JSESSIONID=' . ('a' x 5000) . '.t2'], 'new'],
    ['route over 63 bytes',           '/jvm/', [Cookie => 'JSESSIONID=0a.' . ('t' x 100)], 'new'],
    ['non-ASCII byte',                '/jvm/', [Cookie => "JSESSIONID=0a\xe9b.t2"],    'new'],
    ['space inside the value',        '/jvm/', [Cookie => 'JSESSIONID=0a b.t2'],        'new'],
    ['separator first',               '/jvm/', [Cookie => 'JSESSIONID=.t2'],            'new'],
    ['separator last',                '/jvm/', [Cookie => 'JSESSIONID=0a1b.'],          'new'],
    ['two separators',                '/jvm/', [Cookie => 'JSESSIONID=0a.b.t2'],        'new'],
    ['doubled separator',             '/jvm/', [Cookie => 'JSESSIONID=0a..t2'],         'new'],
    ['trailing separator',            '/jvm/', [Cookie => 'JSESSIONID=0a.t2.'],         'new'],
    ['no separator',                  '/jvm/', [Cookie => 'JSESSIONID=t2'],             'new'],
    ['name in other case',            '/jvm/', [Cookie => 'jsessionid=0a.t2'],          'new'],
    ['quoted value',                  '/jvm/', [Cookie => 'JSESSIONID="0a.t2"'],        't2'],
    ['pairs without =',               '/jvm/', [Cookie => 'junk; ;;; JSESSIONID=0a.t3; =x'], 't3'],
    ['200 other cookies',             '/jvm/', [Cookie => join('; ', (map { "c$_=v$_" } 1 .. 200), 'JSESSIONID=0a.t3')], 't3'],
    ['path param in the query',       '/jvm/?x=1;jsessionid=0a.t2', [],                'new'],
    ['query parameter only',          '/jvm/?jsessionid=0a.t2', [],                    'new'],
    ['empty path param',              '/jvm/;jsessionid=', [],                          'new'],
    ['encoded separator in path',     '/jvm/;jsessionid=0a%2Et2', [],                   'new'],
    ['path param after a fragment-like', '/jvm/x%23;jsessionid=0a.t2', [],             't2'],
);

for my $c (@cases) {
    my ($desc, $path, $hdrs, $want) = @$c;
    my $x = req('slb_jvm', $path, @$hdrs);
    my ($dec) = slb($x);
    if ($want eq 'new') {
        ok($x->code == 200 && $dec eq 'new', "$desc: treated as no session ("
           . $x->code . " $dec " . backend($x) . ")");
    }
    else {
        ok($x->code == 200 && backend($x) eq $want && $dec eq 'sticky',
           "$desc: goes to $want (" . $x->code . " $dec " . backend($x) . ")");
    }
}

# Control bytes: httpd itself refuses them (400); never a 5xx.
my $x = req('slb_jvm', '/jvm/', Cookie => "JSESSIONID=0a\x01b.t2");
ok($x->code == 400 || ($x->code == 200 && (slb($x))[0] eq 'new'),
   'control byte in the cookie: refused by httpd or ignored (' . $x->code . ')');
$x = req('slb_jvm', '/jvm/', Cookie => "JSESSIONID=0a\x7fb.t2");
ok($x->code == 400 || ($x->code == 200 && (slb($x))[0] eq 'new'),
   'DEL in the cookie: refused by httpd or ignored (' . $x->code . ')');

# Forged routes to members the operator took out.
for my $bal (qw(dis stop)) {
    my %seen;
    for my $v ('0a.t2', '.t2', 't2') {
        $x = req('slb_states', "/$bal/x;jsessionid=0a.t2", Cookie => "JSESSIONID=$v");
        $seen{ $x->code . ' ' . backend($x) }++;
    }
    is_deeply(\%seen, { '200 t1' => 3 }, "$bal: forged routes never reach the member");
}

# Route cookie garbage.
for my $v ('', '""', ' ', 'a;b', "t2\xff", 'x' x 5000, '.', '..t2') {
    $x = req('slb_cookie', '/rc/', Cookie => "ROUTEID=$v");
    my @rc = set_cookies($x, 'ROUTEID');
    ok($x->code == 200 && (slb($x))[0] eq 'new' && @rc == 1,
       'route cookie ' . (length($v) > 20 ? 'of ' . length($v) . ' bytes' : "'$v'")
       . ' treated as no session and replaced');
}

done_testing();
