#!/usr/bin/env perl
#
# t/hosts_ns.pl - run a command with FILE in place of /etc/hosts, as an
# unprivileged user: a new user namespace (the caller's uid and gid mapped
# to themselves, so the command runs as the caller, not as root) and a new
# mount namespace in which FILE is bind-mounted on /etc/hosts.  glibc reads
# /etc/hosts at every lookup, so rewriting FILE in place (same inode: open
# for writing, not rename) changes what a name resolves to for the command
# and everything it starts, while nothing else on the machine sees it.
#
# Usage:
#   perl t/hosts_ns.pl FILE COMMAND [ARG...]
#   perl t/hosts_ns.pl --check       exit 0 when this works here
#
# Needs unprivileged user namespaces (kernel.unprivileged_userns_clone,
# user.max_user_namespaces, no seccomp or AppArmor rule against them).
# Exit status 3 and a message when they are not available.
#
use strict;
use warnings;

my $CLONE_NEWNS   = 0x00020000;
my $CLONE_NEWUSER = 0x10000000;
my $MS_BIND       = 4096;
my $MS_REC        = 0x4000;
my $MS_PRIVATE    = 0x40000;

my ($SYS_unshare, $SYS_mount) = eval {
    require 'syscall.ph';
    (&SYS_unshare, &SYS_mount);
};
unless ($SYS_unshare) {
    require POSIX;
    my %nr = (x86_64 => [272, 165], aarch64 => [97, 40]);
    my $arch = (POSIX::uname())[4];
    ($SYS_unshare, $SYS_mount) = @{ $nr{$arch} || [0, 0] };
}

sub fail { print STDERR "hosts_ns.pl: @_\n"; exit 3 }

sub write_file {
    my ($f, $text) = @_;
    open my $fh, '>', $f or fail("$f: $!");
    print $fh $text;
    close $fh or fail("$f: $!");
}

my $check = @ARGV && $ARGV[0] eq '--check';
my ($hosts, @cmd);
if ($check) {
    $hosts = "/tmp/hosts_ns.$$";
    write_file($hosts, "127.0.0.9 hosts-ns-check.invalid\n");
    @cmd = ('getent', 'hosts', 'hosts-ns-check.invalid');
}
else {
    ($hosts, @cmd) = @ARGV;
    die "usage: $0 FILE COMMAND [ARG...] | --check\n" unless defined $hosts && @cmd;
    fail("$hosts: not a file") unless -f $hosts;
}
$SYS_unshare or fail('no unshare(2) syscall number for this architecture');

my ($uid, $gid) = ($<, (split ' ', $()[0]);
syscall($SYS_unshare, $CLONE_NEWUSER | $CLONE_NEWNS) == 0
    or fail("unshare(CLONE_NEWUSER|CLONE_NEWNS): $! (no unprivileged user namespaces here)");
write_file('/proc/self/setgroups', 'deny');
write_file('/proc/self/uid_map', "$uid $uid 1");
write_file('/proc/self/gid_map', "$gid $gid 1");
# mounts made here stay here
my ($none, $root, $etc_hosts, $src) = ('none', '/', '/etc/hosts', $hosts);
syscall($SYS_mount, $none, $root, 0, $MS_REC | $MS_PRIVATE, 0);
syscall($SYS_mount, $src, $etc_hosts, 0, $MS_BIND, 0) == 0
    or fail("bind-mount $hosts on /etc/hosts: $!");

if ($check) {
    my $out = `@cmd 2>/dev/null`;
    unlink $hosts;
    exit($out =~ /^127\.0\.0\.9\s/ ? 0 : 3);
}
exec { $cmd[0] } @cmd or fail("exec $cmd[0]: $!");
