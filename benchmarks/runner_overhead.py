"""How much the harness adds around a run, measured through the real `pgolf reproduce` command.

1. start-up: from launching `pgolf reproduce` to the child's first line being written (the child
   prints its own CLOCK_MONOTONIC time; that clock is system-wide on Linux, so the numbers are
   comparable across processes), for `--launcher python` and for the standard torchrun launch;
2. stamp lag: for LINES lines written INTERVAL apart, the harness stamp (started_monotonic + the
   stamp) minus the time the child wrote the line: median, 95th percentile and maximum.

Usage: python benchmarks/runner_overhead.py [--lines 400] [--interval 0.005] [--runner local|docker]
(`python -m harness.cli` runs the checkout in the current folder: run it from another checkout's
root to measure that one.)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """\
import os, time
print(f"first {{time.monotonic():.6f}}", flush=True)
n, dt = int(os.environ.get("BENCH_LINES", "{lines}")), {interval}
for i in range(n):
    time.sleep(dt)
    print(f"line {{i}} {{time.monotonic():.6f}}", flush=True)
"""


def reproduce(record: Path, out: Path, launcher: str, runner: str) -> tuple[float, dict, list[tuple[float, str]]]:
    t_launch = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "reproduce", str(record), "--seeds", "1",
                           "--launcher", launcher, "--nproc", "1", "--out", str(out), "--quiet", "--force",
                           "--runner", runner, "--skip-input-check"],  # the record reads no dataset
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pgolf reproduce failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads((out / "seed_1" / "result.json").read_text())
    stamps = []
    for row in (out / "seed_1" / "stamps_seed1.tsv").read_text().splitlines():
        t, _, text = row.split("\t", 2)
        stamps.append((float(t), text))
    return t_launch, result, stamps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--runner", choices=("local", "docker"), default="local")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record"
        record.mkdir()
        (record / "train_gpt.py").write_text(CHILD.format(lines=args.lines, interval=args.interval))
        for launcher in ("python", "torchrun"):
            t_launch, result, stamps = reproduce(record, Path(tmp) / f"out-{launcher}", launcher, args.runner)
            t0 = result["started_monotonic"]
            first = next((t, s) for t, s in stamps if s.startswith("first "))
            written = float(first[1].split()[1])
            print(f"[{launcher}] pgolf reproduce start -> child's first line written: {written - t_launch:.3f} s "
                  f"(harness set-up to child start {t0 - t_launch:.3f} s, child start -> first line {written - t0:.3f} s)")
            lags = []
            for t, s in stamps:
                parts = s.split()
                if len(parts) == 3 and parts[0] == "line":
                    lags.append((t0 + t - float(parts[2])) * 1000.0)
            lags.sort()
            p95 = lags[int(0.95 * (len(lags) - 1))]
            print(f"[{launcher}] stamp lag over {len(lags)} lines, {args.interval * 1000:.0f} ms apart: "
                  f"median {statistics.median(lags):.3f} ms, p95 {p95:.3f} ms, max {lags[-1]:.3f} ms")


if __name__ == "__main__":
    main()
