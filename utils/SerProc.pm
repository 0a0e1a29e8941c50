# Process facts the job runners (run.pl, slurm.pl, queue.pl) and utils/watchdog.pl share.
package SerProc;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT_OK = qw(start_time);

# The start time of a live process (field 22 of /proc/PID/stat); undef for one that is
# gone or a zombie (a driver killed by a parent that has not reaped it yet). With it, a
# pid reused by another process is not taken for the one watched.
sub start_time {
  my $pid = shift;
  open(my $fh, '<', "/proc/$pid/stat") or return undef;
  my $stat = <$fh> // return undef;
  my ($state, $rest) = $stat =~ /\)\s+(\S)\s+(.*)$/ or return undef;
  return undef if $state eq 'Z' || $state eq 'X';
  return (split ' ', $rest)[18];
}

1;
