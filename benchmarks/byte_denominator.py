"""The FineWeb validation byte total as the merged records measure it, and the PRs PG-SCORE-001 catches.

    python benchmarks/byte_denominator.py [RECORDS_TREE] [--git-dir UPSTREAM.git] [--all-logs]

1. Merged records (RECORDS_TREE, default ../shared/corpus/records): for every scored seed whose
   log prints a validation token count, the byte count its figures imply,
   val_loss · val_tokens / (val_bpb · ln 2) (harness.checks.denominator). Printed: each record's
   figures, the median over records of the full-precision (8-decimal) figures — the total the
   rule sets use — and the largest deviation of any merged record from it, by tokenizer.
   `--all-logs` measures every log that prints the figures, extra runs included.
2. With `--git-dir` (a bare mirror with refs/pull/N/head): every record folder a pull request
   adds that is not on the default branch (its logs and submission.json, written to a temporary
   folder, never executed) is checked with `pgolf check`'s rules; printed: the folders whose
   PG-SCORE-001 fires (PR, folder, implied total, val_bpb), and how many folders were checked.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.checks import build_context, check_record  # noqa: E402
from harness.checks.denominator import implied_val_bytes  # noqa: E402
from harness.commands.check import record_dirs  # noqa: E402
from harness.errors import InputError  # noqa: E402
from harness.gate import snapshot_from_git  # noqa: E402
from harness.records import load_record  # noqa: E402
from harness.rulesets import load_ruleset, ruleset_for_track  # noqa: E402


def merged(tree: Path, all_logs: bool) -> int:
    per_record: dict[str, list[float]] = defaultdict(list)
    tokenizer: dict[str, str] = {}
    rows = []
    for d in record_dirs(tree):
        try:
            rec = load_record(d)
        except InputError:
            continue
        ctx = build_context(rec, load_ruleset(ruleset_for_track(rec.track)))
        logs = [(lf, ctx.choices.get(lf.rel)) for lf in rec.logs] if all_logs else [(s.log, s.choice) for s in ctx.seeds]
        for lf, ch in logs:
            ph = ch.phase if ch else None
            tokens = lf.run.val_tokens
            if ph is None or tokens is None or ph.val_loss is None:
                continue
            b = implied_val_bytes(ph.val_loss, tokens.value, ph.val_bpb)
            if b is None:
                continue
            full = (ph.bpb_decimals or 0) >= 8 and (ph.loss_decimals or 0) >= 8
            rows.append((b, rec.name, lf.path.name, tokens.value, ph.name, full))
            if full:
                per_record[rec.name].append(b)
                tokenizer[rec.name] = f"{tokens.value:,} tokens"
    rows.sort()
    for b, name, log, tokens, phase, full in rows:
        print(f"{b:>15,.0f}  {'full' if full else '4-dp'}  {tokens:>11,}  {name[:58]:58s} {log[:32]:32s} {phase}")
    medians = {k: statistics.median(v) for k, v in per_record.items()}
    total = statistics.median(medians.values())
    print(f"\n{len(rows)} logs; {len(medians)} records with full-precision figures; median over records "
          f"{total:,.0f} bytes")
    spread = sorted(((b / total - 1.0, name) for name, b in medians.items()), key=lambda x: abs(x[0]))
    for off, name in spread[-5:]:
        print(f"  widest: {off:+.4%}  {name} ({tokenizer[name]})")
    return 0


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=True).stdout


def pull_requests(git_dir: str, tmp: Path) -> int:
    main_blobs = {ln.split()[2] for ln in git(git_dir, "ls-tree", "-r", "HEAD", "--", "records").splitlines()}
    refs = [r for r in git(git_dir, "for-each-ref", "--format=%(refname)", "refs/pull").split() if r.endswith("/head")]
    refs.sort(key=lambda r: int(r.split("/")[2]))
    checked = caught = 0
    seen_folders: set[tuple[str, tuple[str, ...]]] = set()
    for ref in refs:
        folders: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for ln in git(git_dir, "ls-tree", "-r", ref, "--", "records").splitlines():
            meta, path = ln.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind != "blob" or mode == "120000":  # links are never read
                continue
            parts = path.split("/")
            if len(parts) < 4:
                continue
            folders["/".join(parts[:3])].append((path, sha))
        for folder, files in folders.items():
            logs = [(p, s) for p, s in files if p.endswith((".log", ".txt"))]
            if not logs or all(s in main_blobs for _, s in logs):
                continue
            key = (folder, tuple(sorted(s for _, s in logs)))
            if key in seen_folders:
                continue
            seen_folders.add(key)
            dst = snapshot_from_git(Path(git_dir), ref, folder, tmp / ref.split("/")[2]).folder
            try:
                report = check_record(load_record(dst))
            except InputError:
                continue
            checked += 1
            hits = [f for f in report.findings if f.rule_id == "PG-SCORE-001" and f.severity.value == "error"]
            if hits:
                caught += 1
                d = hits[0].data
                bpbs = sorted({s["val_bpb"] for s in report.data["seeds"] if s.get("val_bpb") is not None})
                print(f"#{ref.split('/')[2]:>5}  {Path(folder).name[:60]:60s} implied {d['implied_bytes']:>13,} "
                      f"({d['relative']:+.2%})  val_bpb {', '.join(f'{b:.4f}' for b in bpbs)}")
    print(f"\n{checked} pull-request record folders with new logs checked; PG-SCORE-001 error in {caught}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("PGOLF_CORPUS") or str(ROOT.parent / "shared" / "corpus" / "records")
    ap.add_argument("tree", nargs="?", default=default)
    ap.add_argument("--git-dir", help="bare upstream mirror with refs/pull/N/head: check every PR's new record folders")
    ap.add_argument("--all-logs", action="store_true", help="measure every log, not only each seed's scored one")
    args = ap.parse_args()
    if not Path(args.tree).is_dir():
        print(f"corpus not found: {args.tree}", file=sys.stderr)
        return 2
    merged(Path(args.tree), args.all_logs)
    if args.git_dir:
        with tempfile.TemporaryDirectory(prefix="pgolf-denominator-") as tmp:
            pull_requests(args.git_dir, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
