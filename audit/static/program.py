"""One analysed program (a script, its decoded payload, its helper modules): the ordered events
and the questions rules ask about them (same loop iteration? covered by an earlier score? dormant?).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from audit.findings import EvidenceStep, Finding, Location, Severity
from audit.static.flags import FlagEval
from audit.static.flow import Flow
from audit.static.trace import Event


_RANK = {"dormant": 0, "live": 1, "enabled": 2}


def shared_loops(a: Event, b: Event) -> tuple:
    n = 0
    for x, y in zip(a.loops, b.loops):
        if x.node_id != y.node_id or x.ctx != y.ctx:
            break
        n += 1
    return a.loops[:n]


@dataclass
class Program:
    path: str
    events: list[Event]
    flow: Flow
    defaults: FlagEval
    evidence: FlagEval | None
    findings: list[Finding] = field(default_factory=list)
    decoded_note: str | None = None
    _seen: dict = field(default_factory=dict)

    # -- event queries -------------------------------------------------------------------------
    def of(self, kind: str, label: str | None = None) -> list[tuple[int, Event]]:
        return [(i, e) for i, e in enumerate(self.events) if e.kind == kind and (label is None or label in e.labels)]

    def val_updates(self):
        return self.of("update", "val")

    def val_scores(self):
        return [(i, e) for i, e in self.of("score", "val") if e.nograd or (e.nograd is None and e.info.get("detached"))]

    def val_source(self) -> Event | None:
        """The first place the program reads validation tokens (the head of every chain)."""
        return next((e for _, e in self.of("read", "val")), None)

    def covering_score(self, i: int, u: Event) -> Event | None:
        """An earlier val score in the same loop iteration as update `u` (score-first)."""
        for j, s in self.val_scores():
            if j < i and shared_loops(u, s):
                return s
        return None

    # -- dormancy -----------------------------------------------------------------------------
    def state(self, e: Event) -> tuple[str, list[EvidenceStep]]:
        """'live', 'dormant' (a guard is off by default) or 'enabled' (off by default, on by evidence)."""
        closed = [g for g in e.guards if self.defaults.guard_open(g.test, g.polarity, g.kind, g.fn) is False]
        if not closed:
            return "live", []
        if self.evidence is not None:
            self.evidence.used.clear()
            opened = [g for g in closed if self.evidence.guard_open(g.test, g.polarity, g.kind, g.fn) is True]
            still = [g for g in e.guards if self.evidence.guard_open(g.test, g.polarity, g.kind, g.fn) is False]
            if opened and not still:
                seen = []
                for used in self.evidence.used:
                    if used not in seen:
                        seen.append(used)
                steps = [EvidenceStep(f"guard off by default, on in the record: {w}={v}", Location(f, ln)) for w, f, ln, v in seen]
                return "enabled", steps
        steps = [EvidenceStep("guard off by default", Location(g.path, g.line)) for g in closed]
        return "dormant", steps

    # -- findings -----------------------------------------------------------------------------
    def emit(self, rule, e: Event, message: str | None = None, evidence: list[EvidenceStep] | None = None,
             severity: Severity | None = None, undecided: bool = False, related: list[Event] = ()) -> None:
        key = (rule.id, e.path, e.line)
        sev = severity or rule.severity
        msg = message or rule.message
        steps = []
        if "val" in e.labels and rule.condition in ("C1", "C2", "C3", "C4", "DATA"):
            src = self.val_source()
            if src is not None:
                steps.append(EvidenceStep("validation tokens are loaded here", Location(src.path, src.line)))
        steps += [EvidenceStep(m, Location(p, ln)) for p, ln, m in e.chain]
        steps += list(evidence or [])
        state, gsteps = ("live", [])
        for ev in (e, *related):
            st, gs = self.state(ev)
            if st != "live":
                state, gsteps = st, gs
                break
        confidence = rule.confidence
        if state == "dormant" and sev is Severity.ERROR:
            sev = Severity.WARNING
            msg = f"dormant (behind a flag that is off by default): {msg}"
        elif state == "enabled":
            msg = f"{msg} (behind a flag the record turns on)"
        steps += gsteps
        if self.decoded_note:
            steps.append(EvidenceStep(self.decoded_note))
        new = Finding(rule.id, sev, msg, rule.condition, Location(e.path, e.line), tuple(steps),
                      confidence, undecided, {"state": state})
        old = self._seen.get(key)
        if old is None:
            self._seen[key] = len(self.findings)
            self.findings.append(new)
        elif _RANK[state] > _RANK[self.findings[old].data["state"]]:
            self.findings[old] = new  # the same place reached along a path where it is live
