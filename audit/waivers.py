"""Reviewer-owned waivers: the only way to silence an audit finding.

A waiver file (JSON or YAML) lists entries, each naming the rule id, the submission (record
folder name), the sha256 of the audited file, the reason, who decided and when:

    waivers:
      - id: PG-DATA-003
        submission: 2026-03-29_Loader_FullGPTQ_XSA11_BigramHash2816
        sha256: 3f1c...            # of train_gpt.py as audited; a changed file is not waived
        reason: GPTQ calibration runs inside the timed training budget (log line 212)
        who: reviewer-handle
        when: 2026-04-02

Comments inside the audited code never silence a rule: the submitter controls that code.
A waived finding stays in the report as a note marked `waived`, so the decision is visible.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from audit.findings import EvidenceStep, Finding, Severity

REQUIRED = ("id", "submission", "sha256", "reason", "who", "when")


class WaiverError(ValueError):
    """A waiver file that cannot be used; carries the path (and entry index) for the message."""

    def __init__(self, message: str, path: str, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Waiver:
    rule_id: str
    submission: str
    sha256: str
    reason: str
    who: str
    when: str

    def matches(self, finding: Finding, file_path: str, sha256: str) -> bool:
        return (finding.rule_id == self.rule_id and sha256.lower() == self.sha256.lower()
                and self.submission in Path(file_path).parts)


def load_waivers(path: Path) -> list[Waiver]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise WaiverError(f"cannot read waiver file: {e.strerror or e}", str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        line = getattr(e, "lineno", None) or getattr(getattr(e, "problem_mark", None), "line", None)
        raise WaiverError(f"not valid {path.suffix.lstrip('.') or 'yaml'}: {e}", str(path), line) from None
    entries = doc.get("waivers") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise WaiverError("expected a list of waivers (or a mapping with key 'waivers')", str(path))
    out = []
    for i, ent in enumerate(entries, 1):
        if not isinstance(ent, dict):
            raise WaiverError(f"waiver #{i} is not a mapping", str(path))
        missing = [k for k in REQUIRED if not str(ent.get(k) or "").strip()]
        if missing:
            raise WaiverError(f"waiver #{i} lacks {', '.join(missing)}", str(path))
        out.append(Waiver(str(ent["id"]), str(ent["submission"]), str(ent["sha256"]), str(ent["reason"]),
                          str(ent["who"]), str(ent["when"])))
    return out


def apply_waivers(findings: list[Finding], waivers: list[Waiver], file_path: str, sha256: str) -> list[Finding]:
    """Waived findings become notes that say who waived them, when and why."""
    out = []
    for f in findings:
        w = next((w for w in waivers if w.matches(f, file_path, sha256)), None)
        if w is None:
            out.append(f)
            continue
        out.append(replace(f, severity=Severity.NOTE, undecided=False,
                           message=f"waived: {f.message}",
                           evidence=f.evidence + (EvidenceStep(f"waived by {w.who} on {w.when}: {w.reason}"),),
                           data={**f.data, "waived": True, "original_severity": f.severity.value}))
    return out
