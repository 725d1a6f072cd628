"""`pgolf queue RECORD... --seeds ...`: reproduce many records × seeds on a Slurm cluster.

Each seed is one Slurm job (the cluster's own scheduler decides where and when); the job runs
the seed as `pgolf reproduce` does on one machine and writes its result to the results folder
on shared storage. This command submits, shows the whole queue live, resubmits a seed lost to a
node failure or preemption once, writes each record's report when its seeds are done, and a
summary table of the queue. Everything is on disk: rerun it to follow the same jobs again.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.findings import exit_code
from harness.runners.slurm import safe_name

EPILOG = """\
examples:
  pgolf queue records/track_10min_16mb/2026-03-2*_* --out /shared/pgolf/week12 \\
      --data /shared/data/fineweb10B_sp1024 --tokenizer /shared/data/fineweb_1024_bpe.model --vocab-size 1024
  pgolf queue --out /shared/pgolf/week12               # follow it again (after Ctrl-C, a reboot, anything)
  pgolf queue --out /shared/pgolf/week12 --cancel      # scancel every job it submitted, then report
  pgolf queue REC_A REC_B --seeds 1337,42 --partition h100 --account review --container pyxis \\
      --image /shared/images/pgolf-gpu.sqsh --submit-only   # submit and return; follow later
  pgolf reproduce REC --runner slurm --out repro/       # one record, the same jobs, the local report

settings: ./pgolf.toml (or --config FILE, or $PGOLF_CONFIG); options given here win. A minimal
file for an 8xH100 partition:

  [slurm]
  partition = "h100"
  account = "pgolf-review"
  gpus_per_node = 8
  [container]
  mechanism = "docker"        # or pyxis / apptainer, with image = the pinned image built for it
  [paths]
  results = "/shared/pgolf/queue"

Results folder (--out, default paths.results, else ./pgolf-queue), on storage every node mounts:
  queue.json, summary.{txt,md,json}        the queue and its summary table
  <record>/seed_<S>/result.json            each seed, written by its job
  <record>/slurm/seed_<S>/jobs.json        its submissions (job ids); slurm-<id>.out, journal-<id>.tsv
  <record>/report.{txt,md,json}, plots/    each record's report, as `pgolf reproduce` writes it
A seed whose job ended NODE_FAIL or PREEMPTED is resubmitted once (the report says so); one that
failed by its own doing (exit status, a limit) is never retried; Slurm's time limit reads TIMEOUT.

Before anything is submitted, each record's inputs are checked as `pgolf reproduce` checks them
(exit 2 naming what is wrong; see `pgolf reproduce --help`): --data holds the fineweb shards,
--tokenizer is the SentencePiece model they were tokenized with, and one vocabulary agrees with
--vocab-size and the record's logs. --skip-input-check queues a record that reads another data
layout (its report says so):
  pgolf queue records/studies/own_data --out /shared/pgolf/studies --skip-input-check

exit codes: 0 nothing failed, 1 a record's report FAILs, 2 unusable input or call, 130 interrupted
(the jobs keep running: rerun to follow them, --cancel to stop them).
"""


# --- options shared with `pgolf reproduce --runner slurm` -------------------------------------
def add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (Slurm; override the config file)")
    g.add_argument("--config", type=Path, help="cluster settings file (default ./pgolf.toml or $PGOLF_CONFIG)")
    g.add_argument("--partition", help="sbatch --partition")
    g.add_argument("--account", help="sbatch --account")
    g.add_argument("--qos", help="sbatch --qos")
    g.add_argument("--gpus-per-node", type=int, help="GPUs on each node (0: CPU nodes, no --gres)")
    g.add_argument("--container", choices=("none", "docker", "pyxis", "apptainer"),
                   help="how the seed runs on the node: as a process, or in the pinned image")


def cluster_from_args(args: argparse.Namespace) -> Any:
    from harness.queue.config import load_config

    cluster = load_config(args.config)
    s = cluster.slurm
    for key in ("partition", "account", "qos"):
        if getattr(args, key, None):
            setattr(s, key, getattr(args, key))
    if getattr(args, "gpus_per_node", None) is not None:
        if args.gpus_per_node < 0:
            raise InputError("--gpus-per-node must be >= 0")
        s.gpus_per_node = args.gpus_per_node
    if getattr(args, "container", None):
        cluster.container.mechanism = args.container
    if getattr(args, "image", None):
        cluster.container.image = args.image
    return cluster


def queue_opts(cluster: Any, args: argparse.Namespace) -> Any:
    from harness.queue.loop import QueueRun

    s = cluster.slurm
    return QueueRun(poll_s=s.poll_s, state_poll_s=s.state_poll_s, settle_grace_s=s.settle_grace_s,
                    cancel=bool(getattr(args, "cancel", False)), wait=not getattr(args, "submit_only", False))


def forget_previous(entries: list[Any], cluster: Any) -> None:
    """--force: cancel the entries' live jobs and set their results and job lists aside."""
    from harness.runners.slurm import SlurmRunner, jobs_file

    runner = SlurmRunner(cluster)
    handles = [h for e in entries for job in e.jobs() if (h := runner.reattach(job)) is not None]
    if handles:
        runner.refresh(handles)
        runner.cancel(handles, "pgolf --force")
    stamp = int(time.time())
    for e in entries:
        for job in e.jobs():
            if jobs_file(job.slurm_dir).is_file():
                jobs_file(job.slurm_dir).rename(job.slurm_dir / f"jobs-replaced-{stamp}.json")
            job.result_path.unlink(missing_ok=True)


def lock_queue(qdir: Path) -> Any:
    """One follower per queue: a second `pgolf queue` on the same folder would submit the same
    seeds again. An flock on queue.lock (released when this process ends, however it ends)."""
    import fcntl
    import os

    qdir.mkdir(parents=True, exist_ok=True)
    f = open(qdir / "queue.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        raise InputError(f"another pgolf follows this queue (pid {f.read().strip() or '?'}); stop it, or use "
                         "--cancel to stop the jobs", str(qdir / "queue.lock")) from None
    f.truncate(0)
    f.write(str(os.getpid()))
    f.flush()
    return f


def follow(entries: list[Any], qdir: Path, cluster: Any, args: argparse.Namespace) -> tuple[list[Any], Any]:
    """Run the queue with a live view; Ctrl-C leaves the jobs running and says how to go on."""
    from harness.queue.loop import run_queue
    from harness.queue.view import make_view

    lock = None if getattr(args, "cancel", False) else lock_queue(Path(qdir))
    view = make_view(sys.stderr, quiet=args.quiet)
    opts = queue_opts(cluster, args)
    view.message(f"pgolf queue: {len(entries)} record(s), {sum(len(e.seeds) for e in entries)} seed(s) -> {qdir}")
    try:
        tracks = run_queue(entries, cluster, view, opts)
    except KeyboardInterrupt:
        view.close()
        print(f"pgolf: stopped following; the jobs keep running. `pgolf queue --out {qdir}` follows them again, "
              f"`pgolf queue --out {qdir} --cancel` stops them.", file=sys.stderr)
        raise
    finally:
        view.close()
        if lock is not None:
            lock.close()
    return tracks, opts


def print_report(report: Any, fmt: str) -> None:
    from harness.report import render
    from harness.reproduce.report import render_markdown, render_text

    text = {"text": render_text, "markdown": render_markdown}.get(fmt)
    sys.stdout.write(text(report) if text else render("json", report))


# --- pgolf reproduce REC --runner slurm ------------------------------------------------------
def reproduce_on_slurm(args: argparse.Namespace, cfg: Any) -> int:
    """One record's seeds as Slurm jobs; the same report as `pgolf reproduce` prints."""
    from harness.queue.plan import load_queue, merge, plan_record, save_queue

    cluster = cluster_from_args(args)
    qdir = Path(cfg.out_dir) / "slurm"
    entry = plan_record(cfg, safe_name(Path(cfg.record_dir).resolve().name), cluster)
    if args.force:
        forget_previous([entry], cluster)
    entries = merge(load_queue(qdir), [entry], args.force)
    save_queue(qdir, entries, cluster)
    _, opts = follow(entries, qdir, cluster, args)
    report = opts.reports.get(entries[0].out)
    if report is None:
        print("pgolf: jobs submitted; rerun the same command to follow them to the report", file=sys.stderr)
        return 0
    print_report(report, args.format)
    print(f"report: {Path(entries[0].out) / 'report.md'} (also report.json, report.txt, plots/)", file=sys.stderr)
    return exit_code(report.verdict)


# --- pgolf queue ------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("queue", help="reproduce many records x seeds on a Slurm cluster",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("records", nargs="*", type=Path, help="record folders to queue (none: follow the queue in --out)")
    p.add_argument("--out", type=Path, help="results folder on shared storage (default: paths.results, else ./pgolf-queue)")
    p.add_argument("--seeds", help="comma-separated seeds for every record (default: each record's claimed seeds)")
    p.add_argument("--cancel", action="store_true", help="scancel every job of the queue (by its recorded job id), then report")
    p.add_argument("--submit-only", action="store_true", help="submit and return; rerun without it to follow")
    r = p.add_argument_group("runs (as `pgolf reproduce`)")
    r.add_argument("--data", help="DATA_PATH for the runs (the dataset folder, on shared storage)")
    r.add_argument("--tokenizer", help="TOKENIZER_PATH for the runs")
    r.add_argument("--vocab-size", type=int, help="VOCAB_SIZE for the runs (default: the tokenizer's piece count)")
    r.add_argument("--skip-input-check", action="store_true",
                   help="do not check --data/--tokenizer before queueing (a record with its own data layout)")
    r.add_argument("--nproc", type=int, default=1, help="processes per seed on CPU nodes (GPU nodes: the track's GPUs)")
    r.add_argument("--launcher", choices=("torchrun", "python"), default="torchrun", help="torchrun (default) or python")
    r.add_argument("--tolerance", type=float, default=0.003, help="allowed |reproduced - claimed| val_bpb")
    r.add_argument("--against", type=Path, help="record folder to beat (significance on reproduced val_loss)")
    r.add_argument("--ruleset", help="rule set name or path (default: from each record's track)")
    r.add_argument("--timeout", type=float, help="kill each seed after this many seconds (default: rule set budgets + grace)")
    r.add_argument("--image", help="the container image (see --container)")
    r.add_argument("--force", action="store_true", help="cancel and redo the given records' seeds")
    add_cluster_options(p)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="the summary table's format")
    p.add_argument("--quiet", action="store_true", help="no live view")
    p.set_defaults(func=run)


def record_names(records: list[Path]) -> list[str]:
    names: list[str] = []
    for r in records:
        base = safe_name(r.resolve().name)  # it names the record's results folder and its jobs
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    from harness.commands.reproduce import check_run_args, checked_inputs, default_seeds, parse_seeds
    from harness.queue.plan import load_queue, merge, plan_record, save_queue
    from harness.queue.summary import RENDER, rows, write_summary
    from harness.reproduce.seeds import ReproConfig

    cluster = cluster_from_args(args)
    qdir = args.out or (Path(cluster.paths.results) if cluster.paths.results else Path.cwd() / "pgolf-queue")
    check_run_args(args)
    existing = load_queue(qdir)
    if args.records:
        if args.cancel:
            raise InputError("--cancel stops a queue: give --out, not records")
        planned = []
        for rec, name in zip(args.records, record_names(args.records)):
            if not rec.is_dir():
                raise InputError("no such record folder", str(rec))
            seeds = parse_seeds(args.seeds) if args.seeds else default_seeds(rec)
            vocab_size, inputs = checked_inputs(args, rec)
            cfg = ReproConfig(record_dir=rec, out_dir=Path(qdir) / name, seeds=seeds, data_path=args.data,
                              tokenizer_path=args.tokenizer, vocab_size=vocab_size, nproc=args.nproc,
                              launcher=args.launcher, tolerance=args.tolerance, force=args.force,
                              against=args.against, ruleset=args.ruleset, timeout_s=args.timeout, runner="slurm",
                              inputs=inputs)
            planned.append(plan_record(cfg, name, cluster))
        if args.force:
            forget_previous(planned, cluster)
        entries = merge(existing, planned, args.force)
        save_queue(qdir, entries, cluster)
    elif existing:
        entries = existing
        if args.seeds:
            extra = parse_seeds(args.seeds)
            for e in entries:
                e.seeds = e.seeds + [s for s in extra if s not in e.seeds]
            save_queue(qdir, entries, cluster)
    else:
        raise InputError("no queue here: give record folders to queue, or the --out of an existing queue",
                         str(qdir))
    tracks, opts = follow(entries, Path(qdir), cluster, args)
    table = rows(entries, tracks, opts.reports)
    paths = write_summary(Path(qdir), table)
    sys.stdout.write(RENDER[args.format](table))
    print(f"summary: {paths['markdown']} (also summary.json, summary.txt); reports: <record>/report.md", file=sys.stderr)
    verdicts = [r["verdict"] for r in table]
    return 1 if "FAIL" in verdicts else 0

