"""Many records × seeds on a Slurm cluster: the queue behind `pgolf queue` and
`pgolf reproduce --runner slurm`. Read in this order:

- `config`   the cluster settings (pgolf.toml): partition, account, GPUs per node, container
             mechanism, shared paths;
- `plan`     records -> entries of the queue (each record frozen into its results folder on
             shared storage, its fingerprint, GPUs and time limit) -> queue.json;
- `loop`     submit every seed as a job (`harness.runners.slurm`), follow them, resubmit a seed
             lost to a node failure or preemption once, settle the rest, report each record
             when its seeds are done; everything it knows is on disk, so a restarted harness
             reattaches to the jobs it had submitted;
- `view`     the live view of the queue (rich on a terminal, plain lines elsewhere);
- `summary`  one row per record: the queue's summary table (text, markdown, JSON).
"""
