#!/usr/bin/env perl
# Local job runner with Kaldi's interface:
#   run.pl [options] [JOB=1:N] LOG CMD ARGS...
# Runs CMD once per task with JOB (or whatever name is given) replaced by the task
# index in LOG and in CMD; the command's output goes to the task's log. Exits
# non-zero and names the failed logs when any task fails.
# Options (accepted by every backend; the local one honours --max-jobs-run and
# --num-threads, and ignores the scheduler-only ones):
#   --max-jobs-run N   at most N tasks at once [default: number of CPUs]
#   --num-threads N    threads per task (exported as OMP_NUM_THREADS)
#   --mem X, --gpu N, --time T   scheduler resources, ignored locally
use strict;
use warnings;
use POSIX ":sys_wait_h";
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

my %running;        # pid => task index
my @failed;
my $interrupted = 0;
sub kill_all { kill 'TERM', -$_ for keys %running; }
$SIG{INT} = $SIG{TERM} = sub { $interrupted = 1; kill_all(); };

sub reap {
  my ($blocking) = @_;
  my $pid = waitpid(-1, $blocking ? 0 : WNOHANG);
  return 0 if $pid <= 0 || !exists $running{$pid};
  my $task = delete $running{$pid};
  push @failed, $task if $? != 0;
  return 1;
}

for my $task ($first .. $last) {
  last if $interrupted;
  while (scalar(keys %running) >= $max_jobs_run) { reap(1) or last; }
  last if $interrupted;
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
  if ($pid == 0) {
    setpgrp(0, 0);  # own process group, so an interrupt can stop the whole task
    $ENV{OMP_NUM_THREADS} = $num_threads if $num_threads;
    my $start = time();
    my $rc = system('bash', '-c', "( $task_cmd ) >>'$log' 2>&1");
    my $code = $rc == -1 ? 127 : ($rc & 127 ? 128 + ($rc & 127) : $rc >> 8);
    open(my $out, '>>', $log);
    print $out "# Accounting: time=" . (time() - $start) . " threads=" . ($num_threads || 1) . "\n";
    print $out "# Ended (code $code) at " . localtime() . ", elapsed time " . (time() - $start) . " seconds\n";
    close $out;
    exit($code > 255 ? 1 : $code);
  }
  $running{$pid} = $task;
}
while (%running) { reap(1) or last; }

my $ntasks = $last - $first + 1;
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
