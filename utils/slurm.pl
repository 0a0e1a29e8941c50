#!/usr/bin/env perl
# Cluster job runners with run.pl's interface:
#   slurm.pl [options] [JOB=1:N] LOG CMD ARGS...   Slurm job arrays (sbatch --array)
#   queue.pl [options] [JOB=1:N] LOG CMD ARGS...   Grid Engine job arrays (qsub -t);
#                                                  queue.pl is a link to this file
# Submits one job array of N tasks and waits for it. Task n runs CMD with JOB
# replaced by n; its output goes to LOG (JOB replaced by n) between run.pl's
# header and trailer. Exits non-zero naming the failed logs when any task fails
# or leaves the queue without an exit status (cancelled, killed for time or
# memory). The job script (<name>.sh), the scheduler's output of each task
# (<name>.<n>.out) and the tasks' exit-status files live in q/ beside LOG.
# SIGINT (Ctrl-C), SIGTERM or SIGHUP cancels the array (scancel / qdel), and so
# does the end of the runner, of its caller or of a driver named in SER_DRIVER
# (utils/lib.sh) by any means, kill -9 included: a guard process, in a session of
# its own, watches the three and cancels the array when one of them is gone.
use strict;
use warnings;
use FindBin ();
use lib $FindBin::RealBin;
use SerProc qw(start_time);
use Cwd qw(getcwd);
use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use POSIX qw(SIGINT SIGTERM SIGHUP);
use Time::HiRes ();

my $prog = basename($0);
my %backends = (
  'slurm.pl' => {
    config => 'conf/slurm.conf', task_var => 'SLURM_ARRAY_TASK_ID', job_var => 'SLURM_ARRAY_JOB_ID',
    rules => <<'EOF',
command sbatch --export=ALL
option mem=* --mem=$0
option num_threads=* --cpus-per-task=$0
option gpu=0
option gpu=* --gres=gpu:$0
option time=* --time=$0
EOF
    # sbatch --parsable prints "<id>" or "<id>;<cluster>".
    array => sub { my ($name, $first, $last, $max, $out) = @_;
      ('--parsable', '-J', $name, "--array=$first-$last" . ($max ? "%$max" : ''), '-o', "$out.%a.out") },
    cancel => 'scancel',
    # 1: the job is queued or running, 0: it is not, undef: squeue failed.
    in_queue => sub { my $out = `squeue -h -o %i -j $_[0] 2>&1`;
      return $out =~ /^\d/m ? 1 : 0 if $? == 0;
      return $out =~ /Invalid job id/i ? 0 : undef; },
  },
  'queue.pl' => {
    config => 'conf/queue.conf', task_var => 'SGE_TASK_ID', job_var => 'JOB_ID',
    rules => <<'EOF',
command qsub -V -cwd -S /bin/bash -j y
option mem=* -l mem_free=$0,ram_free=$0
option num_threads=1
option num_threads=* -pe smp $0
option gpu=0
option gpu=* -l gpu=$0
option time=* -l h_rt=$0
EOF
    # qsub -terse prints "<id>.<first>-<last>:1".
    array => sub { my ($name, $first, $last, $max, $out) = @_;
      ('-terse', '-N', $name, '-t', "$first:$last", ($max ? ('-tc', $max) : ()), '-o', "$out.\$TASK_ID.out") },
    cancel => 'qdel',
    in_queue => sub { my $out = `qstat -j $_[0] 2>&1`;
      return 1 if $? == 0;
      return $out =~ /do not exist/i ? 0 : undef; },
  },
);
my $be = $backends{$prog} or die "$prog: call this script as slurm.pl or queue.pl\n";

sub usage {
  print STDERR <<"EOF";
Usage: $prog [options] [JOB=1:N] LOG CMD ARGS...
e.g.: $prog --mem 4G JOB=1:4 exp/log/train.JOB.log python -m ser.bin.train --task JOB ...
Options:
  --config F         maps the options to scheduler flags [default: $be->{config} if it
                     exists, else the built-in rules below]
  --max-jobs-run N   at most N tasks at once (the job array's throttle)
  --mem X, --num-threads N, --gpu N, --time T, or any --NAME V that the config maps
Config lines ('#' starts a comment):
  command PROGRAM ARGS...    the submit command
  option NAME=VALUE FLAGS... the flags for --NAME VALUE (none if FLAGS is empty)
  option NAME=* FLAGS...     the flags for any other value, which replaces \$0
  default NAME=VALUE         the value of --NAME when it is not given
Built-in rules:
$be->{rules}
EOF
  exit(@_ ? $_[0] : 1);
}

# The processes whose end ends the job: the caller, and the drivers of the run
# ("<pid>:<start time> ...", utils/lib.sh).
my $caller = getppid();
my @watched = ("$caller:" . (start_time($caller) // ''), grep { /^\d+:\d+$/ } split ' ', $ENV{SER_DRIVER} // '');
sub gone {          # "the calling process (pid N)" or "the driver (pid N)" once it has ended, else undef
  for my $i (0 .. $#watched) {
    my ($pid, $start) = split /:/, $watched[$i];
    next if (start_time($pid) // '') eq ($start // '');
    return $i == 0 ? "the calling process (pid $pid)" : "the driver (pid $pid)";
  }
  return undef;
}

# Quotes a word for bash unless it is plainly safe (as run.pl does).
sub shell_quote {
  my $s = shift;
  return $s if $s =~ /^[\w\/\.\-=:,+%@]+$/;
  $s =~ s/'/'"'"'/g;
  return "'$s'";
}

my ($config, $max_jobs_run, %opts) = (undef, 0);
while (@ARGV && $ARGV[0] =~ /^--/) {
  my $arg = shift @ARGV;
  usage(0) if $arg eq '--help';
  my ($opt, $val) = $arg =~ /^--([^=]+)=(.*)$/ ? ($1, $2) : (substr($arg, 2), shift @ARGV);
  usage() unless defined $val;
  $opt =~ s/-/_/g;
  if    ($opt eq 'config')       { $config = $val; }
  elsif ($opt eq 'max_jobs_run') { $max_jobs_run = $val; }
  else                           { $opts{$opt} = $val; }
}
die "$prog: --max-jobs-run must be a number, not '$max_jobs_run'\n" unless $max_jobs_run =~ /^\d+$/;

my ($jobname, $first, $last) = (undef, 1, 1);
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
  ($jobname, $first, $last) = ($1, $2, $3 // $2);
  shift @ARGV;
  die "$prog: invalid range $first:$last\n" if $last < $first;
}
usage() if @ARGV < 2;
my $logfile = shift @ARGV;
if (defined $jobname && $logfile !~ /\b$jobname\b/ && $last > $first) {
  die "$prog: the log name $logfile must contain $jobname when running several tasks\n";
}
my $cmd = join ' ', map { shell_quote($_) } @ARGV;

# The config: submit command, option rules and defaults.
$config //= $be->{config} if -f $be->{config};
my $rules = $be->{rules};
if (defined $config) {
  open(my $fh, '<', $config) or die "$prog: cannot read config $config: $!\n";
  $rules = do { local $/; <$fh> };
}
my $source = $config // 'the built-in rules';
my ($command, %rule, %default);
my $lineno = 0;
for (split /\n/, $rules) {
  $lineno++;
  s/#.*//;
  next unless /\S/;
  if    (/^\s*command\s+(\S.*?)\s*$/)              { $command = $1; }
  elsif (/^\s*option\s+(\w+)=(\S+)\s*(.*?)\s*$/)   { $rule{$1}{$2} = $3; }
  elsif (/^\s*default\s+(\w+)=(\S+)\s*$/)          { $default{$1} = $2; }
  else { die "$prog: cannot parse line $lineno of $source: $_\n"; }
}
die "$prog: no 'command' line in $source\n" unless defined $command;
my @submit = split ' ', $command;
my %values = (%default, %opts);
for my $name (sort keys %values) {
  my $val = $values{$name};
  my $r = $rule{$name} or die "$prog: no rule for --$name in $source\n";
  my $flags = $r->{$val} // $r->{'*'} // die "$prog: no rule for --$name $val in $source\n";
  push @submit, map { s/\$0/$val/gr } split ' ', $flags;
}

# Files: the task logs, and q/ beside them for the job script, the scheduler's
# output and the exit-status files.
sub for_task {  # for_task(STRING, N): STRING with the job name replaced by N
  my ($s, $task) = @_;
  $s =~ s/\b$jobname\b/$task/g if defined $jobname;
  return $s;
}
sub for_bash {  # STRING as a bash word in which the job name becomes $task
  my $s = shift;
  return shell_quote($s) unless defined $jobname;
  return join '"$task"', map { "'" . s/'/'"'"'/gr . "'" } split /\b$jobname\b/, $s, -1;
}
my $cwd = getcwd();
(my $qname = $logfile) =~ s/\.?\b$jobname\b//g if defined $jobname;
$qname //= $logfile;
my $qdir = dirname($qname) . '/q';
$qdir = "$cwd/$qdir" unless $qdir =~ m{^/};
$qname = basename($qname) =~ s/\.log$//r;
$qname = 'job' if $qname eq '';
my $qbase = "$qdir/$qname";
sub status_file { "$qbase.$_[0].status" }
my $status_word = shell_quote("$qbase.") . '"$task".status';  # in the job script
make_path($qdir);
for my $task ($first .. $last) {
  unlink for_task($logfile, $task), status_file($task), "$qbase.$task.out";
}

my $threads = $values{num_threads} // 1;
my $omp = exists $values{num_threads} ? "export OMP_NUM_THREADS=$threads\n" : '';
my ($task_var, $job_var) = ($be->{task_var}, $be->{job_var});
my @array = $be->{array}->($qname, $first, $last, $max_jobs_run, $qbase);
my $submit_line = join ' ', map { shell_quote($_) } @submit, @array, "$qbase.sh";
open(my $q, '>', "$qbase.sh") or die "$prog: cannot write $qbase.sh: $!\n";
print $q <<"EOF";
#!/bin/bash
# Task \$$task_var of: $prog @{[defined $jobname ? "$jobname=$first:$last " : '']}$logfile $cmd
# Submitted with: $submit_line
cd @{[shell_quote($cwd)]} || exit 1
task=\$$task_var
log=@{[for_bash($logfile)]}
cmd=@{[for_bash($cmd)]}
${omp}mkdir -p "\$(dirname "\$log")"
now() { date '+%a %b %e %H:%M:%S %Y'; }
printf '# %s\\n# Started at %s\\n# Running on %s (job %s, task %s)\\n#\\n' \\
  "\$cmd" "\$(now)" "\$(hostname)" "\$$job_var" "\$task" > "\$log"
start=\$(date +%s)
bash -c "\$cmd" >> "\$log" 2>&1
code=\$?
elapsed=\$((\$(date +%s) - start))
printf '# Accounting: time=%d threads=%d\\n# Ended (code %d) at %s, elapsed time %d seconds\\n' \\
  \$elapsed $threads \$code "\$(now)" \$elapsed >> "\$log"
echo \$code > $status_word.tmp && mv $status_word.tmp $status_word
exit \$code
EOF
close $q;
chmod 0755, "$qbase.sh";

# An interrupt cancels the job; one that comes while it is being submitted does
# so as soon as the job id is known.
my %signum = (INT => SIGINT, TERM => SIGTERM, HUP => SIGHUP);
my ($jobid, $caught, $submitting, $guard);
sub cancel { system("$be->{cancel} $jobid >/dev/null 2>&1") if defined $jobid; }
sub stop_guard {    # the guard ends without cancelling anything
  return unless $guard;
  kill 'USR1', $guard;
  waitpid($guard, 0);
  undef $guard;
}
sub interrupted {
  cancel();
  stop_guard();
  print STDERR "$prog: caught SIG$caught; " . (defined $jobid ? "cancelled job $jobid" : 'nothing submitted') .
               " ($logfile)\n";
  exit(128 + $signum{$caught});
}
$SIG{$_} = sub { $caught = $_[0]; interrupted() unless $submitting; } for keys %signum;
$submitting = 1;
# The jobs get the submitting shell's environment, but not the pids of its drivers
# (utils/lib.sh): they mean nothing on a node, and the cancel is what ends the jobs.
my $out = do { delete local $ENV{SER_DRIVER}; `$submit_line 2>&1` };
$jobid = $1 if $? == 0 && $out =~ /^(\d+)/m;
$submitting = 0;
interrupted() if $caught;
die "$prog: submission failed (exit " . ($? >> 8) . "):\n$submit_line\n$out" unless defined $jobid;

# The guard: it cancels the job when this runner, its caller or a driver has
# ended (checked every 0.2 s), or when it is sent TERM, INT or HUP (as the
# watchdog of a killed driver does, utils/watchdog.pl); USR1 ends it quietly, as
# the runner does when it is done. It keeps the runner's open files, so that the
# stage's lock (utils/lib.sh) stays held until the job is cancelled.
my $runner = $$;
$guard = fork();
if (defined $guard && $guard == 0) {
  POSIX::setsid();
  my $why;
  $SIG{USR1} = sub { POSIX::_exit(0); };
  $SIG{$_} = sub { $why = "was sent SIG$_[0]"; } for qw(TERM INT HUP);
  until (defined $why) {
    $why = "$prog (pid $runner) died" if getppid() != $runner;
    $why //= do { my $g = gone(); defined $g ? "$g died" : undef };
    Time::HiRes::sleep(0.2) unless defined $why;
  }
  cancel();
  print STDERR "$prog: $why; cancelled job $jobid ($logfile)\n";
  POSIX::_exit(1);
}

# Wait for every task's status file. Every 5 s, ask the scheduler whether the job
# is still there; tasks without status when it has been gone at two checks in a
# row are lost. Listing q/ refreshes a network file system's view of it.
my %code;
my ($polls, $gone) = (0, 0);
while (keys %code < $last - $first + 1) {
  sleep 1;
  if (defined(my $g = gone())) {
    cancel();
    stop_guard();
    print STDERR "$prog: $g died; cancelled job $jobid ($logfile)\n";
    exit 1;
  }
  opendir(my $dh, $qdir) or die "$prog: cannot list $qdir: $!\n";
  for (readdir $dh) {
    my ($task) = /^\Q$qname\E\.(\d+)\.status$/ or next;
    next if $task < $first || $task > $last || exists $code{$task};
    open(my $fh, '<', "$qdir/$_") or next;
    my $c = <$fh>;
    $code{$task} = $1 if defined $c && $c =~ /^(\d+)$/;
  }
  closedir $dh;
  next if keys %code == $last - $first + 1 || ++$polls % 5;
  my $queued = $be->{in_queue}->($jobid);
  next unless defined $queued;
  $gone = $queued ? 0 : $gone + 1;
  last if $gone >= 2;
}
stop_guard();
unlink map { status_file($_) } keys %code;

my @lost = grep { !exists $code{$_} } $first .. $last;
my @failed = sort { $a <=> $b } @lost, grep { $code{$_} != 0 } keys %code;
if (@lost) {
  print STDERR "$prog: task(s) @lost of job $jobid left the queue without an exit status " .
               "(cancelled, or killed for time or memory?); see $qbase.<task>.out\n";
}
if (@failed) {
  my @logs = map { for_task($logfile, $_) } @failed;
  my $n = @failed;
  print STDERR "$prog: $n / " . ($last - $first + 1) . " failed, log is in $logs[0]\n";
  print STDERR "$prog: failed logs: @logs\n" if $n > 1;
  exit 1;
}
exit 0;
