"""The CI gate for an incoming record pull request.

What a PR may change is itself a rule (rules.md, "Record submissions"): it adds exactly one new
folder under one `records/track_*` folder, named `YYYY-MM-DD_Description`, holding README.md,
submission.json, train_gpt.py and its train logs. The gate finds that folder from the git diff,
checks the shape of the change, then runs the same `check` rules and the static `audit` on the
folder, and rolls everything into one report whose markdown is the PR comment.

Submissions are data here: the gate reads files and parses code, it never runs or imports them.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.findings import Finding, Location, Severity

FOLDER_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\S.*$")
REQUIRED_FILES = ("README.md", "submission.json", "train_gpt.py")


@dataclass(frozen=True)
class GateRule:
    """A rule on the shape of a PR, with its id and message; tests run its examples."""

    rule_id: str
    severity: Severity
    message: str


ONE_FOLDER = GateRule("PG-GATE-001", Severity.ERROR, "a record PR adds exactly one new folder under one records/track_* folder")
FOLDER_NAME = GateRule("PG-GATE-002", Severity.ERROR, "the record folder is named YYYY-MM-DD_Description")
REQUIRED = GateRule("PG-GATE-003", Severity.ERROR, "the record folder holds README.md, submission.json, train_gpt.py and train logs")
OUTSIDE = GateRule("PG-GATE-004", Severity.WARNING, "the PR changes files outside its record folder")


def _finding(rule: GateRule, detail: str, path: str | None = None) -> Finding:
    return Finding(
        rule_id=rule.rule_id,
        severity=rule.severity,
        message=f"{rule.message}: {detail}",
        condition="PARSE",
        location=Location(path) if path else None,
    )


def changed_files(repo: Path, base: str, head: str = "HEAD") -> list[tuple[str, str]]:
    """(status, path) of every file the PR changes: `git diff --name-status base...head`."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "diff", "--name-status", "--no-renames", f"{base}...{head}"],
            check=True, capture_output=True, text=True,
        ).stdout
    except FileNotFoundError:
        raise InputError("git is not installed") from None
    except subprocess.CalledProcessError as e:
        raise InputError(f"git diff {base}...{head} failed: {e.stderr.strip()}", path=str(repo)) from None
    rows = []
    for line in out.splitlines():
        status, _, path = line.partition("\t")
        if path:
            rows.append((status.strip()[:1], path.strip()))
    return rows


def shape_findings(changes: list[tuple[str, str]]) -> tuple[list[Finding], str | None]:
    """Findings on the shape of the change, and the record folder (repo-relative) if one was found."""
    added_folders: set[str] = set()
    for status, path in changes:
        parts = path.split("/")
        if status == "A" and len(parts) >= 4 and parts[0] == "records" and parts[1].startswith("track_"):
            added_folders.add("/".join(parts[:3]))
    findings: list[Finding] = []
    if len(added_folders) != 1:
        detail = "found none" if not added_folders else "found " + ", ".join(sorted(added_folders))
        findings.append(_finding(ONE_FOLDER, detail))
        return findings, None
    folder = added_folders.pop()
    name = folder.rsplit("/", 1)[-1]
    if not FOLDER_RE.match(name):
        findings.append(_finding(FOLDER_NAME, f"{name!r}", folder))
    outside = sorted(p for _, p in changes if not p.startswith(folder + "/"))
    if outside:
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        findings.append(_finding(OUTSIDE, shown, outside[0]))
    return findings, folder


def required_files_findings(folder: Path, shown_as: str) -> list[Finding]:
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    has_log = any(folder.glob("*.log")) or any(folder.glob("*.txt"))
    if not has_log:
        missing.append("train logs (*.log)")
    if missing:
        return [_finding(REQUIRED, "missing " + ", ".join(missing), shown_as)]
    return []


def gate_folder(folder: Path, shape: list[Finding] | None = None, shown_as: str | None = None, against=None):
    """One report for a record folder: shape findings, then `check` and `audit` as children."""
    from harness.checks import check_record
    from harness.records import load_record
    from harness.report import Report

    shown_as = shown_as or str(folder)
    findings = list(shape or []) + required_files_findings(folder, shown_as)
    children = []
    try:
        children.append(check_record(load_record(folder), None, against))
    except InputError as e:
        findings.append(Finding("PG-GATE-005", Severity.ERROR, f"the record's files could not be checked: {e}",
                                condition="PARSE", location=Location(shown_as)))
    audit_report = audit_folder_report(folder)
    if audit_report is not None:
        children.append(audit_report)
    return Report(kind="gate", subject=shown_as, findings=findings, children=children,
                  data={"record": shown_as})


def audit_folder_report(folder: Path):
    """The static audit of the folder's code as a Report, or None when it has no Python code."""
    from harness.commands.audit import build_report

    if not any(folder.glob("*.py")):
        return None
    return build_report(folder)
