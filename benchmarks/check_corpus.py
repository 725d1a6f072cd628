"""Time `pgolf check` over the whole upstream corpus (target: under 3 s on the project machine).

    python benchmarks/check_corpus.py [RECORDS_TREE] [--repeat N]

Measures what `pgolf check --all` does after start-up: load every record folder (parse its logs
and submission.json), run the rule set of its track, build the report and render the text table.
Prints the first (cold-cache) run, the best of N, and the size of the input.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.checks import check_record  # noqa: E402
from harness.commands.check import record_dirs, summary_row  # noqa: E402
from harness.errors import InputError  # noqa: E402
from harness.records import load_record  # noqa: E402
from harness.report import render  # noqa: E402


def check_tree(tree: Path) -> tuple[int, int, int]:
    folders = logs = lines = 0
    for d in record_dirs(tree):
        folders += 1
        try:
            rec = load_record(d)
        except InputError:
            continue
        rep = check_record(rec)
        render("text", rep)
        summary_row(rep)
        logs += len(rec.logs)
        lines += sum(lf.run.line_count for lf in rec.logs)
    return folders, logs, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("PGOLF_CORPUS") or str(ROOT.parent / "shared" / "corpus" / "records")
    ap.add_argument("tree", nargs="?", default=default)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tree = Path(args.tree)
    if not tree.is_dir():
        print(f"corpus not found: {tree}", file=sys.stderr)
        return 2
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        folders, logs, lines = check_tree(tree)
        times.append(time.perf_counter() - t0)
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and p.suffix in (".log", ".txt"))
    print(f"corpus: {tree} — {folders} folders, {logs} train logs, {lines:,} lines, {size / 1e6:.1f} MB of .log/.txt")
    print(f"check whole corpus: first run {times[0]:.3f} s, best of {len(times)} {min(times):.3f} s "
          f"(target < 3 s): {'OK' if max(times) < 3.0 else 'OVER TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
