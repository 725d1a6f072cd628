"""Peak memory and time of `pgolf reproduce` when a run floods its output (issue 10, item 6).

    python benchmarks/runner_floods.py                      # local and docker runners
    python benchmarks/runner_floods.py --runner local --base /tmp/pgolf-364c053   # an older checkout too

For each runner it reproduces one seed of three records written here — a quiet one, one that
prints 5 MB of bare newlines, one that prints a single 100 MB line — through the real CLI in a
subprocess, and prints that subprocess's own peak RSS (`VmHWM` of its own image: `ru_maxrss` would carry a big parent's size across execve; the harness only: the run's
processes are its children and not counted) and its wall time. `--base DIR` runs the same with
the `harness` package of another checkout (e.g. `git archive 364c053 | tar -x -C DIR`), to
compare with the code before the capture module. Figures on a shared machine are noisy: run
twice.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDS = {
    "quiet": "pass",
    "5 MB of newlines": "out.write(b'\\n' * (5 * 1024 * 1024))",
    "one 100 MB line": "[out.write(b'x' * (1024 * 1024)) for _ in range(100)]",
}
CHILD = "import sys\nout = sys.stdout.buffer\nout.write(b'seed:1\\n')\n{body}\nout.write(b'\\nafter\\n')\nout.flush()\n"
MEASURE = ("import atexit, resource, runpy, sys; atexit.register(lambda: sys.stderr.write("
           "'PEAK_RSS_KB %d\\n' % int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]))); "
           "sys.argv = ['pgolf'] + sys.argv[1:]; runpy.run_module('harness.cli', run_name='__main__')")


def one(code_root: Path, record: Path, out: Path, runner: str) -> tuple[float, float, str]:
    args = [sys.executable, "-c", MEASURE, "reproduce", str(record), "--seeds", "1", "--launcher", "python",
            "--out", str(out), "--format", "json", "--quiet", "--timeout", "300"]
    if runner != "default":  # this checkout: its runner, and no dataset to check (the records read none);
        args += ["--runner", runner, "--skip-input-check"]  # an older --base knows neither option
    t0 = time.monotonic()
    # cwd outside any checkout: `python -c` puts the cwd first on sys.path, before PYTHONPATH
    p = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code_root)},
                       cwd=out.parent, timeout=900)
    wall = time.monotonic() - t0
    peak = int(p.stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0]) / 1024 if "PEAK_RSS_KB" in p.stderr else float("nan")
    try:
        status = json.loads(p.stdout)["data"]["seeds"][0]["status"]
    except (ValueError, KeyError, IndexError):
        status = f"no report (exit {p.returncode})"
    return peak, wall, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", choices=("local", "docker", "both"), default="both")
    ap.add_argument("--base", type=Path, help="another checkout's root, measured the same way (local runner)")
    args = ap.parse_args()
    runners = ["local", "docker"] if args.runner == "both" else [args.runner]
    with tempfile.TemporaryDirectory(prefix="pgolf-floods-") as tmp:
        recs = {}
        for i, (name, body) in enumerate(RECORDS.items()):
            rec = Path(tmp) / f"rec{i}"
            rec.mkdir()
            (rec / "train_gpt.py").write_text(CHILD.format(body=body))
            recs[name] = rec
        print(f"{'code':10s} {'runner':7s} {'output':18s} {'peak RSS MB':>12s} {'wall s':>8s}  status")
        cases = [("this", REPO, r) for r in runners]
        if args.base:
            cases.append(("base", args.base.resolve(), "default"))  # older checkouts ran locally by default
        for label, root, runner in cases:
            for name, rec in recs.items():
                out = Path(tmp) / f"out-{label}-{runner}-{rec.name}"
                peak, wall, status = one(root, rec, out, runner)
                print(f"{label:10s} {runner:7s} {name:18s} {peak:12.0f} {wall:8.1f}  {status}", flush=True)


if __name__ == "__main__":
    main()
