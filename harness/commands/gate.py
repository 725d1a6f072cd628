"""`pgolf gate`: the CI gate for a record pull request (see harness.gate)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import InputError

EPILOG = """\
examples:
  # in a CI job on the PR's checkout, against the target branch:
  pgolf gate --repo . --base origin/main --format markdown --output comment.md
  # a record folder directly (no git):
  pgolf gate records/track_10min_16mb/2026-04-09_A2_Muon097_3Seed
  pgolf gate --repo . --base main --against records/track_10min_16mb/CURRENT_RECORD --format json

what it does: finds the one folder the PR adds under records/track_*, checks the shape of the
change (PG-GATE-*), runs every `pgolf check` rule on its logs and `pgolf audit` on its code,
and prints one verdict. Exit 0 PASS or REVIEW, 1 FAIL, 2 unusable input.
"""


def register(sub) -> None:
    p = sub.add_parser("gate", help="gate a record pull request in CI (shape, checks, audit)",
                       description="Gate a record pull request: the shape of the change, the "
                                   "record's limits and claims, and the legality of its code.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record", nargs="?", type=Path, help="a record folder (instead of --repo/--base)")
    p.add_argument("--repo", type=Path, help="a git checkout of the PR")
    p.add_argument("--base", help="the ref the PR targets (e.g. origin/main)")
    p.add_argument("--head", default="HEAD", help="the PR's ref (default HEAD)")
    p.add_argument("--against", type=Path, help="the current record folder, for the significance test")
    p.add_argument("--format", default="text", choices=["text", "json", "markdown", "sarif"])
    p.add_argument("--output", type=Path, help="also write the output to FILE (atomically)")
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.atomic import write_text
    from harness.findings import exit_code
    from harness.gate import changed_files, gate_folder, shape_findings
    from harness.report import Report, render

    against = None
    if args.against:
        from harness.checks import baseline_from_record

        against = baseline_from_record(args.against)
    if args.record is not None:
        if not args.record.is_dir():
            raise InputError("not a folder", path=str(args.record))
        report = gate_folder(args.record, against=against)
    else:
        if args.repo is None or args.base is None:
            raise InputError("give a RECORD folder, or --repo and --base")
        shape, folder = shape_findings(changed_files(args.repo, args.base, args.head))
        if folder is None:
            report = Report(kind="gate", subject=str(args.repo), findings=shape)
        else:
            report = gate_folder(args.repo / folder, shape, shown_as=folder, against=against)
    text = render(args.format, report)
    print(text, end="" if text.endswith("\n") else "\n")
    if args.output:
        write_text(args.output, text)
    return exit_code(report.verdict)
