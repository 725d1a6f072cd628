"""The harness's own time per seed on a Slurm cluster (the local one of containers/ci-setup-slurm.sh),
measured through the real `pgolf queue` command, and the same figures for the local runner.

For each seed of a tiny record that prints a line, sleeps, prints another and exits:
  submit -> first stamped line   from the harness calling sbatch to the in-job observer stamping the
                                 run's first line, split into: the sbatch call; Slurm (queue, launch,
                                 until the job's Python starts); the job's set-up (imports, record
                                 fingerprint, copying the record); the run's own start to its first line
  last line -> result collected  from the last stamped line to the queue having read the seed's
                                 result, split into: the job writing result.json (the run's exit,
                                 observation, atomic writes); the queue noticing it (its polling)
All times are wall-clock (time.time()) on one machine; on a real cluster the node's and the login
node's clocks would also differ by their NTP offset. The local runner's row is the same record
through `pgolf reproduce --launcher python --runner local`: harness start -> first stamped line, last line ->
result written.

Usage: python benchmarks/queue_overhead.py [--seeds 4] [--sleep 1.0] [--poll 0.2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.runners.slurm_journal import read_journal  # noqa: E402

CHILD = """\
import time
print("step:0/2 val_loss:5.0 val_bpb:3.0 train_time:0ms step_avg:0.01ms", flush=True)
time.sleep({sleep})
print("step:2/2 val_loss:4.0 val_bpb:2.5 train_time:{ms}ms step_avg:1ms", flush=True)
print("stopping_early: wallclock_cap train_time:{ms}ms step:2/2", flush=True)
print("final_int8_zlib_roundtrip val_loss:4.0 val_bpb:2.5000 eval_time:1ms", flush=True)
"""

CONFIG = """\
[slurm]
exclusive = false
cpus_per_task = 1
poll_s = {poll}
state_poll_s = 1.0
settle_grace_s = 1.0
time_margin_s = 60
"""


def run(argv: list[str]) -> float:
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pgolf {argv[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.time() - t


def stamps(path: Path) -> list[float]:
    return [float(row.split("\t", 1)[0]) for row in path.read_text().splitlines()]


def slurm_seed(out: Path, seed: int) -> dict[str, float]:
    sdir = out / "record" / "slurm" / f"seed_{seed}"
    a = json.loads((sdir / "jobs.json").read_text())["attempts"][-1]
    started = json.loads((sdir / f"started-{a['job_id']}.json").read_text())["started_unix"]
    j = read_journal(sdir / f"journal-{a['job_id']}.tsv")
    first, last = j.start_unix + j.lines[0].t, j.start_unix + j.lines[-1].t
    written = (out / "record" / f"seed_{seed}" / "result.json").stat().st_mtime
    return {"sbatch": a["sbatch_s"], "slurm": started - a["submitted_unix"] - a["sbatch_s"],
            "job set-up": j.start_unix - started, "run start -> first line": first - j.start_unix,
            "submit -> first stamped line": first - a["submitted_unix"],
            "last line -> result written": written - last, "result written -> collected": a["collected_unix"] - written,
            "last line -> result collected": a["collected_unix"] - last}


def fmt(rows: list[dict[str, float]], key: str) -> str:
    xs = [r[key] for r in rows]
    return f"median {statistics.median(xs):6.3f} s  (min {min(xs):.3f}, max {max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--sleep", type=float, default=1.0, help="the run's own duration between its lines")
    ap.add_argument("--poll", type=float, default=0.2, help="the queue's poll interval (poll_s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        record = tmp / "record"
        record.mkdir()
        (record / "train_gpt.py").write_text(CHILD.format(sleep=args.sleep, ms=int(args.sleep * 1000)))
        conf = tmp / "pgolf.toml"
        conf.write_text(CONFIG.format(poll=args.poll))
        seeds = ",".join(str(s) for s in range(1, args.seeds + 1))
        q = tmp / "q"
        wall = run(["queue", str(record), "--seeds", seeds, "--launcher", "python", "--out", str(q),
                    "--config", str(conf), "--quiet", "--skip-input-check"])  # the record reads no dataset
        rows = [slurm_seed(q, s) for s in range(1, args.seeds + 1)]
        print(f"slurm: {args.seeds} seeds of a {args.sleep:.1f} s run, 2 at a time on the 2-CPU node (seeds 3+ wait "
              f"in Slurm's queue for a free CPU), poll {args.poll} s: `pgolf queue` took {wall:.1f} s")
        print(f"  {'seconds':32s} " + " ".join(f"seed {s:<3d}" for s in range(1, args.seeds + 1)) + "  median")
        for key in rows[0]:
            print(f"  {key:32s} " + " ".join(f"{r[key]:8.3f}" for r in rows) + f"  {statistics.median(r[key] for r in rows):6.3f}")
        local_rows = []
        for s in range(1, min(args.seeds, 2) + 1):
            out = tmp / f"local{s}"
            t_launch = time.time()
            run(["reproduce", str(record), "--seeds", str(s), "--launcher", "python", "--out", str(out), "--quiet",
                 "--runner", "local", "--skip-input-check"])
            res = json.loads((out / f"seed_{s}" / "result.json").read_text())
            st = stamps(out / f"seed_{s}" / f"stamps_seed{s}.tsv")
            t0 = res["started_monotonic"] - time.monotonic() + time.time()  # the run's start, as wall clock
            written = (out / f"seed_{s}" / "result.json").stat().st_mtime
            local_rows.append({"start -> first stamped line": t0 + st[0] - t_launch,
                               "last line -> result written": written - (t0 + st[-1])})
        print("local runner (`pgolf reproduce --launcher python --runner local`, one seed per call):")
        for key in local_rows[0]:
            print(f"  {key:32s} {fmt(local_rows, key)}")


if __name__ == "__main__":
    main()
