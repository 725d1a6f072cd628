"""Run `pgolf gate` on every merged record PR of a fetched upstream repository.

    python benchmarks/gate_upstream.py GIT_DIR [--jobs 2] [--only PR[,PR…]] [--json OUT.json]
    python benchmarks/gate_upstream.py /work/.mirror/openai+parameter-golf/repo

For each merge commit on the main branch whose change touches `records/` (and each squash-merged
PR commit, `… (#N)`, on its first-parent history), the gate runs as CI would: `pgolf gate --repo
GIT_DIR --base <first parent> --head <merge commit> --format json`, each in its own process. GIT_DIR may be a bare repository: the
gate reads the PR from git objects, never a working tree. Prints one row per PR (verdict, exit
code, failing rule ids, warnings, seconds) and the PASS / FAIL / REVIEW / exit-2 counts; the
organizers merged every one of these PRs, so each FAIL is either a real violation or a gate
defect, and the row says which rule decided it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_NUMBER = re.compile(r"(?:pull request|PR) #(\d+)")


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True,
                          text=True).stdout


def merged_record_prs(git_dir: Path, branch: str) -> list[dict]:
    """(pr, base, head, subject, how) of each PR merged into `branch` whose change touches
    records/: every merge commit (base = its first parent), and every squash-merged commit on the
    first-parent history whose subject names a PR, `… (#N)` (base = its parent)."""
    out = []
    merges = git(git_dir, "log", "--merges", "--format=%H %P%x09%s", branch).splitlines()
    squashes = [ln for ln in git(git_dir, "log", "--first-parent", "--no-merges", "--format=%H %P%x09%s",
                                 branch).splitlines() if re.search(r"\(#\d+\)\s*$", ln)]
    for how, lines in (("merge", merges), ("squash", squashes)):
        for line in lines:
            shas, _, subject = line.partition("\t")
            parts = shas.split()
            if len(parts) < 2:
                continue  # a root commit
            head, base = parts[:2]
            touched = git(git_dir, "diff", "--name-only", "-z", base, head).split("\0")
            if not any(p.startswith("records/") for p in touched):
                continue
            m = PR_NUMBER.search(subject) or re.search(r"\(#(\d+)\)\s*$", subject)
            if m is None:
                continue  # e.g. "Merge branch 'openai:main' into main" inside a fork's history: no PR
            out.append({"pr": int(m.group(1)), "base": base, "head": head, "subject": subject,
                        "how": how})
    return out


def errors_and_warnings(doc: dict) -> tuple[list[str], list[str]]:
    errs: list[str] = []
    warns: list[str] = []

    def walk(d: dict) -> None:
        for f in d.get("findings", []):
            (errs if f["severity"] == "error" else warns if f["severity"] == "warning" else []).append(f["id"])
        for c in d.get("children", []):
            walk(c)

    walk(doc)
    return errs, warns


def gate_one(git_dir: Path, pr: dict) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", "gate", "--repo", str(git_dir), "--base", pr["base"],
                           "--head", pr["head"], "--format", "json"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    row = dict(pr, rc=done.returncode, seconds=round(time.perf_counter() - t0, 2))
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        row.update(verdict="exit-2" if done.returncode == 2 else "CRASH", errors=[], warnings=[],
                   records=[], detail=(done.stderr.strip().splitlines() or [""])[-1][:200])
        return row
    errs, warns = errors_and_warnings(doc)
    verdict = "nothing" if doc.get("data", {}).get("nothing_to_gate") else doc["verdict"]
    row.update(verdict=verdict, errors=errs, warnings=warns, records=doc.get("data", {}).get("records", []),
               messages=[f"{f['id']}: {f['message'][:160]}" for f in _all_errors(doc)][:8])
    return row


def _all_errors(doc: dict) -> list[dict]:
    out = [f for f in doc.get("findings", []) if f["severity"] == "error"]
    for c in doc.get("children", []):
        out += _all_errors(c)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("git_dir", type=Path)
    ap.add_argument("--branch", default="main")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", help="comma-separated PR numbers")
    ap.add_argument("--json", type=Path, help="also write every row (with error messages) to this file")
    ap.add_argument("--verbose", action="store_true", help="print each FAIL's error messages")
    args = ap.parse_args()
    prs = merged_record_prs(args.git_dir, args.branch)
    if args.only:
        wanted = {int(x) for x in args.only.split(",")}
        prs = [p for p in prs if p["pr"] in wanted]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda p: gate_one(args.git_dir, p), prs))
    print(f"{'PR':>6} {'how':<6} {'verdict':<8} {'rc':>3} {'s':>6}  record / failing rules (errors) [warnings]")
    for r in rows:
        rec = ", ".join(x.rsplit("/", 1)[-1] for x in r["records"])[:70] or r["subject"][:70]
        errs = " ".join(sorted(set(r["errors"])))
        warns = " ".join(sorted(set(r["warnings"])))
        print(f"{str(r['pr']):>6} {r['how']:<6} {r['verdict']:<8} {r['rc']:>3} {r['seconds']:>6}  {rec}")
        if errs or r.get("detail"):
            print(f"{'':>34}errors: {errs or r.get('detail')}")
            if args.verbose:
                for m in r.get("messages", []):
                    print(f"{'':>36}{m}")
        if warns:
            print(f"{'':>34}[warnings: {warns}]")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    by_rule: dict[str, int] = {}
    for r in rows:
        for rid in set(r["errors"]):
            by_rule[rid] = by_rule.get(rid, 0) + 1
    secs = sorted(r["seconds"] for r in rows)
    hows = {h: sum(1 for r in rows if r["how"] == h) for h in ("merge", "squash")}
    print(f"\n{len(rows)} merged PRs touching records/ ({hows['merge']} merge commits, {hows['squash']} squashed): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("failing rule ids (PRs): " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items(), key=lambda x: -x[1])))
    if secs:
        print(f"gate time per PR: median {secs[len(secs) // 2]:.2f} s, max {secs[-1]:.2f} s; "
              f"wall {time.perf_counter() - t0:.1f} s with {args.jobs} jobs")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
