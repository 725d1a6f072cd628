"""`pgolf audit`: static legality review of submission code (see audit.static)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import InputError
from harness.report import Report, render

EPILOG = """\
examples:
  pgolf audit records/track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon
  pgolf audit path/to/train_gpt.py --format json
  pgolf audit path/to/record --format sarif > audit.sarif          # GitHub code scanning
  pgolf audit records/ --jobs 2 --format markdown                   # every record below, one section each
  pgolf audit records/ --jobs 2 --format json --output audit.json   # also written to a file (atomically)
  pgolf audit path/to/record --waivers reviewer-waivers.yaml        # reviewer-owned waivers only

text output is compiler-style: path:line:col: RULE-ID severity: message, then the evidence chain.
verdicts: PASS (the reported score matched a legal shape, named in its PG-EVAL-001 line), FAIL (an
error: rule, line, evidence chain), REVIEW (PG-EVAL-002 or PARSE: the one fact the audit could not
establish). exit codes: 0 PASS/REVIEW, 1 FAIL, 2 unusable input (also a FILE that is not Python).
"""


def register(sub) -> None:
    p = sub.add_parser("audit", help="static review of TTT/eval legality (C1-C4, data, network)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a .py file, a record folder, or a folder of records")
    p.add_argument("--format", default="text", choices=["text", "json", "markdown", "sarif"])
    p.add_argument("--waivers", help="reviewer-owned waiver file (YAML or JSON)")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--output", metavar="FILE", help="also write the output to FILE (atomically)")
    p.set_defaults(func=run)


def build_report(path: Path, jobs: int = 1, waivers=None) -> Report:
    from audit.static import audit_paths, collect_targets
    from audit.waivers import apply_waivers

    files = collect_targets(path)
    if not files:
        raise InputError("no Python files to audit", str(path))
    results = audit_paths(files, jobs=max(1, jobs))
    children = []
    for r in results:
        findings = apply_waivers(r.findings, waivers, r.path, r.sha256) if waivers else r.findings
        child = Report("audit", r.path, findings, {"sha256": r.sha256, "lines": r.lines, "seconds": round(r.seconds, 3)})
        child.data["verdict"] = child.verdict.value
        children.append(child)
    report = Report("audit", str(path), [], {"files": len(children)}, children=children)
    report.data["per_file"] = {c.subject: c.verdict.value for c in children}
    return report


def text(report: Report) -> str:
    """Compiler-style lines; every submitted name and message escaped for the terminal and no
    line able to start a CI workflow command (harness.escape)."""
    from harness.escape import guard_output, terminal as t

    out = []
    for child in report.children:
        for f in child.findings:
            loc = f.location
            where = f"{loc.path}:{loc.line or 1}:{loc.column or 1}" if loc is not None else child.subject
            out.append(f"{t(where)}: {t(f.rule_id)} {f.severity.value}: {t(f.message)}")
            for step in f.evidence:
                at = f"{t(step.location)}: " if step.location is not None else ""
                out.append(f"    {at}{t(step.message)}")
        out.append(f"{t(child.subject)}: {child.verdict.value}")
    out.append(f"overall: {report.verdict.value} ({len(report.children)} file(s))")
    return guard_output("\n".join(out) + "\n", "text")


def run(args) -> int:
    path = Path(args.path)
    if not path.exists() and not path.is_symlink():
        raise InputError("no such file or folder", str(path))
    if not path.is_dir():
        from audit.static.engine import not_python

        problem = not_python(path)
        if problem is not None:
            raise InputError(f"not a Python file to audit: {problem}", str(path))
    waivers = None
    if args.waivers:
        from audit.waivers import WaiverError, load_waivers

        try:
            waivers = load_waivers(Path(args.waivers))
        except WaiverError as e:
            raise InputError(str(e), e.path, e.line) from None
    report = build_report(path, args.jobs, waivers)
    out = text(report) if args.format == "text" else render(args.format, report)
    sys.stdout.write(out)
    if args.output:
        from harness.atomic import write_text

        write_text(args.output, out)
    return 1 if report.verdict.value == "FAIL" else 0
