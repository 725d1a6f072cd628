"""The rule protocol and registry: one small class per rule, each with its examples.

A rule has a stable id (`PG-<AREA>-<NNN>`, never reused), the condition of rules.md it enforces,
a default severity and confidence (kept apart, as in bandit), a one-line message, a rationale
(the class docstring) and VALID / INVALID example programs. An INVALID example is
`(source, line)`: the finding must land on that line. tests/test_audit_rules.py runs them all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from audit.findings import Severity

if TYPE_CHECKING:
    from audit.static.program import Program

RULES: dict[str, type["Rule"]] = {}


class Rule:
    id: ClassVar[str]
    condition: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    confidence: ClassVar[str] = "medium"
    message: ClassVar[str]
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[tuple[str, int]]] = []

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if getattr(cls, "id", None):
            if cls.id in RULES:
                raise ValueError(f"rule id {cls.id} registered twice")
            RULES[cls.id] = cls

    @classmethod
    def rationale(cls) -> str:
        return " ".join((cls.__doc__ or "").split())

    def check(self, prog: "Program") -> None:  # pragma: no cover - interface
        raise NotImplementedError
