"""The rule registry: every check is a small typed function registered under a stable id.

A rule declares its id (`PG-<AREA>-<NNN>`, never reused), a short name, the condition it enforces
(design.md), its default severity, a one-line summary, a frozen dataclass of the numbers a rule
set may set (`Params`), the clause of the severity policy that sets its severity
(`harness/rulesets/README.md`: `limit`, `score`, `hidden-limit`, `figure`, `not-scored`,
`allowance`, `unestablished`, `context`), and its scope: `seed` rules judge each seed's own
evidence, `record` rules judge the record as a whole (the mean, the seed count, significance),
which a reproduction of only some seeds cannot evaluate. Rule sets (YAML) only select rules by id
and set those numbers; they never carry code. Registering an id twice is a bug and raises at
import time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from harness.findings import CONDITIONS, EvidenceStep, Finding, Location, Severity

if TYPE_CHECKING:
    from harness.checks.context import CheckContext


@dataclass(frozen=True)
class NoParams:
    """For rules with no settable numbers."""


@dataclass(frozen=True)
class UndecidedParams:
    """For rules reporting something unverifiable: on the record track it sends the record to
    REVIEW (`undecided: true`); elsewhere it is only a note."""

    undecided: bool = True


CheckFn = Callable[["Rule", "CheckContext", Any], Iterable[Finding]]

# The clauses of the severity policy (harness/rulesets/README.md), each with the severities it allows.
POLICY = {
    "limit": "a limit of the track broken by the record's own evidence: error",
    "score": "the score itself misreported or unsound (val_bpb, val_loss, its byte denominator, significance): error",
    "hidden-limit": "a claimed figure that hides a broken limit (the claim fits, the logs do not): error",
    "figure": "a figure misreported while the corrected figure still meets every limit: warning",
    "not-scored": "a limit broken outside the scored evidence (an extra run, a diagnostic phase): warning",
    "allowance": "the record relies on an allowance a reviewer should confirm: warning (a note inside the grace)",
    "unestablished": "a fact the files cannot establish: undecided (REVIEW) on the record track, else a note",
    "context": "worth reading, decides nothing: note",
}
SCOPES = ("seed", "record")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    condition: str
    severity: Severity
    summary: str
    params: type
    fn: CheckFn
    policy: tuple[str, ...] = ()  # the policy clauses (POLICY) its findings follow
    scope: str = "seed"  # "seed" or "record" (see the module docstring)
    fix: str = ""  # how a PR author fixes a finding of this rule, in one line (the PR comment, SARIF help)

    def finding(
        self,
        message: str,
        location: Location | None = None,
        *,
        severity: Severity | None = None,
        evidence: Iterable[EvidenceStep] = (),
        undecided: bool = False,
        data: dict[str, Any] | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.id,
            severity=severity or self.severity,
            message=message,
            condition=self.condition,
            location=location,
            evidence=tuple(evidence),
            undecided=undecided,
            data=dict(data or {}),
        )

    def make_params(self, values: dict[str, Any] | None, where: str = "") -> Any:
        """Build this rule's `Params` from a rule set's mapping; unknown keys or wrong types
        raise ValueError naming the rule."""
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(self.params)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{where}{self.id}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields) or 'none'}")
        out: dict[str, Any] = {}
        for key, value in values.items():
            want = fields[key].type
            want_t = {"int": int, "float": float, "bool": bool, "str": str}.get(want if isinstance(want, str) else getattr(want, "__name__", ""))
            if want_t is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if want_t is not None and not isinstance(value, want_t) or (want_t in (int, float) and isinstance(value, bool)):
                raise ValueError(f"{where}{self.id}.{key}: expected {want_t.__name__ if want_t else want}, got {value!r}")
            out[key] = value
        return self.params(**out)


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, condition: str, severity: str | Severity, summary: str,
         params: type = NoParams, *, policy: str | tuple[str, ...], scope: str = "seed", fix: str = "") -> Callable[[CheckFn], Rule]:
    """Register a check function under `id`. Refuses duplicate ids, unknown conditions, policy
    clauses and scopes, and a rule without a docstring (its rationale). `fix` is the one line a PR
    author reads under each finding (tests/test_gate.py holds every rule to having one)."""
    if condition not in CONDITIONS:
        raise ValueError(f"{id}: unknown condition {condition!r}")
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"{id}: params must be a dataclass")
    clauses = (policy,) if isinstance(policy, str) else tuple(policy)
    unknown = [c for c in clauses if c not in POLICY]
    if not clauses or unknown:
        raise ValueError(f"{id}: unknown or missing policy clause(s) {unknown or clauses}; known: {', '.join(POLICY)}")
    if scope not in SCOPES:
        raise ValueError(f"{id}: scope must be one of {SCOPES}")

    def deco(fn: CheckFn) -> Rule:
        if id in RULES:
            raise ValueError(f"rule id {id!r} registered twice")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"{id}: a rule's docstring is its rationale; write one")
        r = Rule(id, name, condition, Severity(severity), summary, params, fn, clauses, scope, fix)
        RULES[id] = r
        return r

    return deco
