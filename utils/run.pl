#!/usr/bin/env perl
# Local job runner with Kaldi's interface:
#   run.pl [options] [JOB=1:N] LOG CMD ARGS...
# Runs CMD once per task with JOB (or whatever name is given) replaced by the task
# index in LOG and in CMD; the command's output goes to the task's log. Exits
# non-zero and names the failed logs when any task fails. The tasks do not outlive
# their caller, nor the drivers named in SER_DRIVER (utils/lib.sh): when one of
# them or run.pl dies, even by kill -9, they are killed too.
# Options (accepted by every backend; the local one honours --max-jobs-run and
# --num-threads, and ignores the scheduler-only ones):
#   --max-jobs-run N   at most N tasks at once [default: number of CPUs]
#   --num-threads N    threads per task (exported as OMP_NUM_THREADS)
#   --mem X, --gpu N, --time T   scheduler resources, ignored locally
use strict;
use warnings;
use FindBin ();
use lib $FindBin::RealBin;
use SerProc qw(start_time);
use POSIX qw(:sys_wait_h setpgid);
use Time::HiRes ();
use File::Basename qw(dirname);
use File::Path qw(make_path);

sub usage {
  print STDERR "Usage: run.pl [--max-jobs-run N] [--num-threads N] [--mem X] [--gpu N] [--time T]\n" .
               "              [JOB=1:N] LOG CMD ARGS...\n" .
               "e.g.: run.pl JOB=1:4 exp/log/feats.JOB.log python -m ser.cli compute-feats --job JOB\n";
  exit(@_ ? $_[0] : 1);
}

my $max_jobs_run = 0;
my $num_threads = 0;
while (@ARGV && $ARGV[0] =~ /^--/) {
  my $opt = shift @ARGV;
  usage(0) if $opt eq '--help';
  my $val;
  if ($opt =~ /^(--[^=]+)=(.*)$/) { ($opt, $val) = ($1, $2); }
  else { @ARGV or usage(); $val = shift @ARGV; }
  $opt =~ s/_/-/g;
  if    ($opt eq '--max-jobs-run') { $max_jobs_run = $val; }
  elsif ($opt eq '--num-threads')  { $num_threads = $val; }
  elsif ($opt =~ /^--(mem|gpu|time|config)$/) { }
  else { print STDERR "run.pl: unknown option $opt\n"; usage(); }
}

my ($jobname, $first, $last) = (undef, 1, 1);
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+):(\d+)$/) {
  ($jobname, $first, $last) = ($1, $2, $3);
  shift @ARGV;
  die "run.pl: invalid range $first:$last\n" if $last < $first;
} elsif (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)$/) {
  ($jobname, $first, $last) = ($1, $2, $2);
  shift @ARGV;
}
usage() if @ARGV < 2;
my $logfile = shift @ARGV;
if (defined $jobname && $logfile !~ /$jobname/ && $last > $first) {
  die "run.pl: the log name $logfile must contain $jobname when running several tasks\n";
}

# Quote each argument for bash unless it is plainly safe, as Kaldi does.
my $cmd = join ' ', map {
  /^[\w\/\.\-=:,+%@]+$/ ? $_ : (/'/ ? do { my $s = $_; $s =~ s/'/'"'"'/g; "'$s'" } : "'$_'")
} @ARGV;

if (!$max_jobs_run) {
  # nproc honours OMP_NUM_THREADS, which path.sh sets to 1 for the tasks' sake.
  $max_jobs_run = `env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null` || 1;
  chomp $max_jobs_run;
}
die "run.pl: --max-jobs-run must be a positive integer, not '$max_jobs_run'\n" unless $max_jobs_run =~ /^[1-9]\d*$/;

# Every task runs in its own process group, led by a forked copy of this script
# that runs the command as its child, so one signal to the group stops the whole
# task (bash, python and its workers). A process group outlives the processes
# that made it, so each side watches the other instead of relying on signals
# that a kill -9 never sends: a group leader whose run.pl is gone kills its
# group, and run.pl stops its tasks when the script that called it is gone.
# Nothing closes inherited file descriptors, so a lock that the caller holds on
# one stays held for as long as any of its tasks is alive.
my $tick = 0.2;     # seconds between checks; a finished task wakes us at once
my $grace = 2;      # seconds between TERM and KILL when stopping tasks
my $runner = $$;
my $caller = getppid();
# The drivers of this run ("<pid>:<start time> ...", utils/lib.sh): run.sh is not
# our caller (a steps/ script is), and outlives nothing it started when killed.
my @drivers = grep { /^\d+:\d+$/ } split ' ', $ENV{SER_DRIVER} // '';
my $dead_driver;

sub driver_gone {   # the first driver that has ended, or undef
  for (@drivers) { my ($pid, $start) = split /:/; return $pid if (start_time($pid) // '') ne $start; }
  return undef;
}

sub run_task {      # in the forked group leader; never returns
  my ($task_cmd, $log) = @_;
  setpgrp(0, 0);
  # A TERM to the group is for the command: outlive it to log how it ended.
  $SIG{INT} = $SIG{TERM} = sub { };
  POSIX::_exit(1) if getppid() != $runner;
  $ENV{OMP_NUM_THREADS} = $num_threads if $num_threads;
  my $start = time();
  my $pid = fork();
  if (defined $pid && $pid == 0) {
    exec('bash', '-c', "( $task_cmd ) >>'$log' 2>&1") or POSIX::_exit(127);
  }
  my $code = 127;
  while (defined $pid) {
    # run.pl is gone (killed with its caller, or by itself): nobody will wait
    # for this task or stop it, so stop it now, this process included.
    if (getppid() != $runner) { kill 'KILL', -$$; POSIX::_exit(137); }
    my $done = waitpid($pid, WNOHANG);
    if ($done == $pid) { $code = $? & 127 ? 128 + ($? & 127) : $? >> 8; last; }
    last if $done < 0;
    select(undef, undef, undef, $tick);
  }
  open(my $out, '>>', $log);
  print $out "# Accounting: time=" . (time() - $start) . " threads=" . ($num_threads || 1) . "\n";
  print $out "# Ended (code $code) at " . localtime() . ", elapsed time " . (time() - $start) . " seconds\n";
  close $out;
  exit($code > 255 ? 1 : $code);
}

my %running;        # pid of the task's group leader (= its process group) => task index
my @failed;
my ($interrupted, $orphaned) = (0, 0);
my (@stopped, $kill_at, $killed);   # the groups sent TERM, when to KILL them, whether done
$SIG{INT} = $SIG{TERM} = sub { $interrupted = 1; };
$SIG{CHLD} = sub { };   # only to cut the sleep in wait_tick short

# Reap finished tasks; on an interrupt, or when our caller has died, TERM every
# task's group, and KILL the groups after the grace. The KILL also reaches
# processes that ignored the TERM and outlived their group's leader.
sub check_tasks {
  while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
    my $task = delete $running{$pid};
    push @failed, $task if defined $task && $? != 0;
  }
  $orphaned = 1 if getppid() != $caller;
  $orphaned = 1 if !$orphaned && defined($dead_driver //= driver_gone());
  if (($interrupted || $orphaned) && !defined $kill_at) {
    @stopped = keys %running;
    kill 'TERM', map { -$_ } @stopped;
    $kill_at = Time::HiRes::time() + $grace;
  } elsif (defined $kill_at && !$killed && Time::HiRes::time() >= $kill_at) {
    kill 'KILL', map { -$_ } @stopped;
    $killed = 1;
  }
}
sub wait_tick { check_tasks(); select(undef, undef, undef, $tick) if %running; }

for my $task ($first .. $last) {
  check_tasks();
  wait_tick() while !$interrupted && !$orphaned && keys %running >= $max_jobs_run;
  last if $interrupted || $orphaned;
  (my $log = $logfile) =~ s/\b$jobname\b/$task/g if defined $jobname;
  $log = $logfile unless defined $jobname;
  (my $task_cmd = $cmd) =~ s/\b$jobname\b/$task/g if defined $jobname;
  $task_cmd = $cmd unless defined $jobname;
  make_path(dirname($log));
  open(my $fh, '>', $log) or die "run.pl: cannot write log file $log: $!\n";
  print $fh "# $task_cmd\n# Started at " . localtime() . "\n#\n";
  close $fh;
  my $pid = fork();
  die "run.pl: fork failed: $!\n" unless defined $pid;
  run_task($task_cmd, $log) if $pid == 0;
  setpgid($pid, $pid);  # as the child does: a stop right after the fork must find the group
  $running{$pid} = $task;
}
# Whether a process group still has a live member. Not kill 0: it counts zombies,
# and an orphan's zombie lasts as long as init leaves it unreaped.
sub group_alive {
  my %groups = map { $_ => 1 } @_;
  opendir(my $dh, '/proc') or return 0;
  for my $pid (grep { /^\d+$/ } readdir $dh) {
    open(my $fh, '<', "/proc/$pid/stat") or next;
    my ($state, $pgrp) = (<$fh> // '') =~ /\)\s+(\S)\s+\d+\s+(\d+)/ or next;
    return 1 if $groups{$pgrp} && $state ne 'Z' && $state ne 'X';
  }
  return 0;
}
wait_tick() while %running;
while (defined $kill_at && !$killed && group_alive(@stopped)) {
  check_tasks();
  select(undef, undef, undef, $tick);
}

my $ntasks = $last - $first + 1;
if ($orphaned) {
  my $who = defined $dead_driver ? "the driver (pid $dead_driver)" : "the calling process (pid $caller)";
  print STDERR "run.pl: $who died; stopped the running tasks of $logfile\n";
  exit 1;
}
if ($interrupted) {
  print STDERR "run.pl: interrupted; stopped the running tasks of $logfile\n";
  exit 130;
}
if (@failed) {
  @failed = sort { $a <=> $b } @failed;
  my @logs = map { (my $l = $logfile) =~ s/\b$jobname\b/$_/g if defined $jobname; defined $jobname ? $l : $logfile } @failed;
  my $n = scalar @failed;
  print STDERR "run.pl: $n / $ntasks failed, log is in $logs[0]\n";
  print STDERR "run.pl: failed logs: @logs\n" if $n > 1;
  exit 1;
}
exit 0;
