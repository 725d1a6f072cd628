"""What the Docker runner costs: the image build from scratch, and the overhead around each run.

1. build (with --rebuild): remove the pinned CPU image and its Debian base, clear nothing else
   (the wheel cache stays), then time `pgolf containers build --cpu`; the seconds of each step
   are in its output;
2. start-up: from `runner.prepare` to the child's first line being written (the child prints its
   own CLOCK_MONOTONIC time: containers share the host's clock, so the numbers compare), for a
   plain `python` launch and for the standard torchrun launch;
3. stamp lag: for LINES lines written INTERVAL apart, the harness stamp (t0 + stamp) minus the
   time the child wrote the line: median, 95th percentile and maximum.

Usage: python benchmarks/docker_runner.py [--rebuild] [--lines 400] [--interval 0.005]
Needs a running engine (bash containers/ci-setup-docker.sh).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """\
import os, time
print(f"first {{time.monotonic():.6f}}", flush=True)
for i in range({lines}):
    time.sleep({interval})
    print(f"line {{i}} {{time.monotonic():.6f}}", flush=True)
"""


def rebuild() -> float:
    from harness import containers

    client = containers.docker_client()
    lock = containers.RECIPES["cpu"].lock()
    for tag in (containers.pinned_image("cpu"), containers.base_tag(lock["debian"])):
        if client.images.list(name=tag):
            client.images.remove(tag, force=True)
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness.cli", "containers", "build", "--cpu"], check=True)
    return time.monotonic() - t


def one_run(tmp: Path, argv: tuple[str, ...], lines: int, interval: float) -> tuple[float, list[float]]:
    from harness.runners import make_runner
    from harness.runners.base import RunSpec

    record = tmp / "record"
    record.mkdir(parents=True, exist_ok=True)
    (record / "train_gpt.py").write_text(CHILD.format(lines=lines, interval=interval))
    spec = RunSpec(record_dir=record, workdir=tmp / f"work-{len(argv)}", seed=1, env={"SEED": "1"},
                   timeout_s=300, argv=argv)
    runner = make_runner("docker")
    t_prepare = time.monotonic()
    handle = runner.start(runner.prepare(spec))
    outcome = runner.collect(handle)
    if outcome.exit_code != 0:
        raise SystemExit("run failed:\n" + "\n".join(l.text for l in outcome.lines[-20:]))
    first = next(l for l in outcome.lines if l.text.startswith("first "))
    startup = float(first.text.split()[1]) - t_prepare
    lags = [handle.t0 + l.t - float(l.text.split()[2]) for l in outcome.lines if l.text.startswith("line ")]
    return startup, lags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebuild", action="store_true", help="remove the pinned image and base, time the build")
    ap.add_argument("--lines", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.005)
    args = ap.parse_args()
    if args.rebuild:
        print(f"build from scratch (base + image; wheel cache kept): {rebuild():.1f} s")
    with tempfile.TemporaryDirectory(prefix="pgolf-bench-docker-") as tmp:
        for label, argv in (("python", ("python", "train_gpt.py")), ("torchrun", ())):
            startup, lags = one_run(Path(tmp), argv, args.lines, args.interval)
            lags_ms = sorted(x * 1000 for x in lags)
            p95 = lags_ms[int(0.95 * (len(lags_ms) - 1))]
            print(f"{label:>8}: prepare -> first line written {startup:.2f} s; stamp lag over {len(lags_ms)} lines: "
                  f"median {statistics.median(lags_ms):.2f} ms, p95 {p95:.2f} ms, max {lags_ms[-1]:.2f} ms")


if __name__ == "__main__":
    main()
