"""The one result type shared by checks, the static audit and the dynamic probes.

It lives in `audit` because `audit` must not import `harness` (design.md), while `harness`
wires everything and may import `audit`; `harness.findings` re-exports it. Every renderer
(text, json, markdown, sarif) takes a list of these, so a new check never needs a new
output format.

Verdict roll-up, in order: any error -> FAIL; otherwise any finding marked `undecided`
(the analysis could not decide: a parse failure, an `exec` of unknown code) -> REVIEW;
otherwise PASS. Warnings and notes never fail a submission on their own.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterable


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


class Verdict(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    REVIEW = "REVIEW"


# The condition a rule enforces: the four conditions of rules.md and the harness areas.
CONDITIONS = ("C1", "C2", "C3", "C4", "BYTES", "TIME", "SEEDS", "CLAIMS", "STATS", "DATA", "NET", "PARSE",
              "EVAL")  # EVAL: the audit's account of the evaluation it proved (or could not)


@dataclass(frozen=True)
class Location:
    """A place in a file. Lines and columns are 1-based; `line` may be None for a whole file."""

    path: str
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        s = self.path
        if self.line is not None:
            s += f":{self.line}"
            if self.column is not None:
                s += f":{self.column}"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class EvidenceStep:
    """One located step of the chain that led to a finding (e.g. "val tokens loaded here")."""

    message: str
    location: Location | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"message": self.message}
        if self.location is not None:
            d["location"] = self.location.to_dict()
        return d


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one place: id, condition, severity, plain message, where, and why.

    `confidence` (high/medium/low) is kept apart from severity, as in bandit: a rule may be
    sure of a note or unsure of an error. `data` carries machine-readable figures (the
    parsed value, the limit) for JSON consumers.
    """

    rule_id: str
    severity: Severity
    message: str
    condition: str = "PARSE"
    location: Location | None = None
    evidence: tuple[EvidenceStep, ...] = ()
    confidence: str = "high"
    undecided: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r} for {self.rule_id}")
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.rule_id,
            "condition": self.condition,
            "severity": self.severity.value,
            "message": self.message,
            "confidence": self.confidence,
        }
        if self.location is not None:
            d["location"] = self.location.to_dict()
        if self.evidence:
            d["evidence"] = [e.to_dict() for e in self.evidence]
        if self.undecided:
            d["undecided"] = True
        if self.data:
            d["data"] = self.data
        return d


def roll_up(findings: Iterable[Finding]) -> Verdict:
    """FAIL on any error, else REVIEW on any undecided finding, else PASS."""
    findings = list(findings)
    if any(f.severity is Severity.ERROR for f in findings):
        return Verdict.FAIL
    if any(f.undecided for f in findings):
        return Verdict.REVIEW
    return Verdict.PASS


def exit_code(verdict: Verdict) -> int:
    """design.md: 0 nothing failed, 1 a rule failed. (2, unusable input, is raised elsewhere.)"""
    return 1 if verdict is Verdict.FAIL else 0
