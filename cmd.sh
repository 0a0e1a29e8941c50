# Job runners for the heavy stages, the Kaldi way: each is "<runner> [options]",
# called as  $cmd JOB=1:N <log> <command>. Pick the backend with one variable
# (here, or in the environment: cmd_backend=slurm ./run.sh):
#   local  utils/run.pl, on this machine
#   slurm  utils/slurm.pl, job arrays through sbatch (conf/slurm.conf maps options)
#   sge    utils/queue.pl, job arrays through qsub -t (conf/queue.conf maps options)
cmd_backend=${cmd_backend:-local}

case $cmd_backend in
  local)
    feat_cmd="run.pl"
    train_cmd="run.pl" ;;
  slurm)  # run.sh's --gpu 1 asks the scheduler for a GPU per training task
    feat_cmd="slurm.pl --config conf/slurm.conf --mem 2G --time 1:00:00"
    train_cmd="slurm.pl --config conf/slurm.conf --mem 4G --time 8:00:00 --gpu ${gpu:-0}" ;;
  sge)
    feat_cmd="queue.pl --config conf/queue.conf --mem 2G"
    train_cmd="queue.pl --config conf/queue.conf --mem 4G --gpu ${gpu:-0}" ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local, slurm, sge)" >&2
    return 1 2>/dev/null || exit 1 ;;
esac
