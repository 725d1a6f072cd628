"""`pgolf gate`: the CI gate for a record pull request (see harness.gate)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import InputError

EPILOG = """\
examples:
  # in a CI job on the PR's checkout, against the target branch:
  pgolf gate --repo . --base origin/main --format markdown --output comment.md
  # another branch checked out: the PR is read from REF's tree, never the working tree
  pgolf gate --repo . --base origin/main --head refs/pull/1234/head
  # paths outside the record folder a reviewer allows (the file must not come from the PR):
  pgolf gate --repo . --base origin/main --allow-from-base .github/pgolf-allow.txt
  pgolf gate --repo . --base origin/main --allow /etc/pgolf/allow.txt
  # a record folder directly (no git):
  pgolf gate records/track_10min_16mb/2026-04-09_A2_Muon097_3Seed
  pgolf gate --repo . --base main --against records/track_10min_16mb/CURRENT_RECORD --format json

what it does: finds every folder the PR adds under records/track_* (a folder the base already
has is not new), checks the shape of the change (PG-GATE-*: one new folder, its name, its files,
nothing changed, added or deleted outside it, no symbolic links), runs every `pgolf check` rule
on its logs and `pgolf audit` on its code, and prints one verdict with, for every error and
warning, where (path:line in the record), why and how to fix it. The markdown is the PR comment.
The PR is only read (from git, no link followed, every file capped), never run.

A PR that adds no record prints "no record added: nothing to gate" and exits 0, so CI can run
the gate on every PR. Exit 0 PASS or REVIEW, 1 FAIL, 2 unusable input (bad ref, bad option).
"""


def register(sub) -> None:
    p = sub.add_parser("gate", help="gate a record pull request in CI (shape, checks, audit)",
                       description="Gate a record pull request: the shape of the change, the "
                                   "record's limits and claims, and the legality of its code.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record", nargs="?", type=Path, help="a record folder (instead of --repo/--base)")
    p.add_argument("--repo", type=Path, help="a git repository holding the PR's commits")
    p.add_argument("--base", help="the ref the PR targets (e.g. origin/main)")
    p.add_argument("--head", default="HEAD", help="the PR's ref (default HEAD); read from git, not the working tree")
    allow = p.add_mutually_exclusive_group()
    allow.add_argument("--allow", type=Path, metavar="FILE",
                       help="reviewer-owned allow-list (glob per line) of paths outside the record a PR may "
                            "touch; refused when inside --repo (the PR controls that)")
    allow.add_argument("--allow-from-base", metavar="PATH",
                       help="read the allow-list from PATH in the --base commit (the PR cannot change it)")
    p.add_argument("--against", type=Path, help="the current record folder, for the significance test")
    p.add_argument("--format", default="text", choices=["text", "json", "markdown", "sarif"])
    p.add_argument("--output", type=Path, help="also write the output to FILE (atomically)")
    p.set_defaults(func=run)


def build(args) -> "object":
    """The gate Report for parsed arguments (the GitHub Action calls this too)."""
    from harness.gate import gate_folder, gate_repo, load_allow_list

    against = None
    if args.against:
        from harness.checks import baseline_from_record

        against = baseline_from_record(args.against)
    if args.record is not None:
        if args.repo is not None or args.base is not None:
            raise InputError("give a RECORD folder, or --repo and --base, not both")
        if not args.record.is_dir():
            raise InputError("not a folder", path=str(args.record))
        return gate_folder(args.record, against=against)
    if args.repo is None or args.base is None:
        raise InputError("give a RECORD folder, or --repo and --base")
    allow = load_allow_list(args.allow, args.repo, args.base, args.allow_from_base)
    return gate_repo(args.repo, args.base, args.head, allow, against)


def run(args) -> int:
    from harness.atomic import write_text
    from harness.findings import exit_code
    from harness.report import render

    report = build(args)
    text = render(args.format, report)
    print(text, end="" if text.endswith("\n") else "\n")
    if args.output:
        write_text(args.output, text)
    return exit_code(report.verdict)
