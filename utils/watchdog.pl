#!/usr/bin/env perl
# The watchdog of a driver (run.sh, or a script under steps/ or local/ started by hand):
#   watchdog.pl PID:START
# Returns at once. A detached copy of it (a session of its own, so that neither a
# Ctrl-C nor a kill of the driver's process group reaches it) waits for the driver
# to end, however it ends, and then ends every process of the driver's run. The
# driver is process PID with start time START (field 22 of /proc/PID/stat), so a
# reused pid is not taken for it. The processes of its run are those whose
# environment holds PID:START in SER_DRIVER, which utils/lib.sh exports before the
# driver starts anything: unlike the driver's process tree, the mark is still
# there after their parent died and they were handed to init, and unlike its
# process group, it covers the job runner's tasks, each in a group of its own.
# They get SIGTERM, and SIGKILL after a grace of a second: a kill -9 of the driver
# cannot be trapped, and a plain kill of a bash script leaves its children alone.
# A process that appears while they are being stopped (a task started just
# then) is stopped as well; so is one that the driver forked just before its end,
# which carries the mark only from its exec on: the watchdog ends only after no
# marked process has been seen for half a second.
use strict;
use warnings;
use FindBin ();
use lib $FindBin::RealBin;
use SerProc qw(start_time);
use POSIX ();
use Time::HiRes qw(time sleep);

my $token = shift // '';
my ($driver, $start) = $token =~ /^(\d+):(\d+)$/ or die "usage: watchdog.pl PID:START\n";
my $tick = 0.1;     # seconds between checks of the driver
my $grace = 1;      # seconds between TERM and KILL
my $settle = 0.5;   # seconds without a marked process before the watchdog ends
my $limit = 30;     # seconds to keep stopping processes that are still appearing


# The processes marked with the token, but this one.
sub marked {
  my @pids;
  opendir(my $dh, '/proc') or return ();
  for my $pid (readdir $dh) {
    next unless $pid =~ /^\d+$/ && $pid != $$;
    open(my $fh, '<', "/proc/$pid/environ") or next;
    my $env = do { local $/; <$fh> } // next;
    my ($value) = $env =~ /(?:^|\0)SER_DRIVER=([^\0]*)/ or next;
    push @pids, $pid if grep { $_ eq $token } split ' ', $value;
  }
  closedir $dh;
  return @pids;
}

defined(my $pid = fork()) or die "watchdog.pl: cannot fork: $!\n";
exit 0 if $pid;
POSIX::setsid();
chdir '/';          # nor the driver's working directory
$SIG{HUP} = $SIG{INT} = 'IGNORE';
# No descriptor of the driver's stays open here: not its output (a pipe that a
# reader waits on to close), nor a lock that its stages hold.
opendir(my $fds, '/proc/self/fd');
my @open = grep { /^\d+$/ && $_ > 2 } readdir $fds;
closedir $fds;
POSIX::close($_) for @open;
open(STDIN, '<', '/dev/null');
open(STDOUT, '>', '/dev/null');
open(STDERR, '>', '/dev/null');

while ((start_time($driver) // '') eq $start) { sleep $tick; }

my %termed;         # pid => when it was sent TERM
my $end = time + $limit;
my $last_seen = time;
while (time < $end) {
  my @left = marked();
  if (!@left) { last if time - $last_seen >= $settle; sleep 0.05; next; }
  $last_seen = time;
  for my $p (@left) {
    if (!exists $termed{$p}) { kill 'TERM', $p; $termed{$p} = time; }
    elsif (time - $termed{$p} >= $grace) { kill 'KILL', $p; }
  }
  sleep 0.05;
}
exit 0;
