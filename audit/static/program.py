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


def _unique(items) -> list:
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


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
    sinks: object = None  # audit.static.sinks.ScoreSinks
    _seen: dict = field(default_factory=dict)
    _printed: dict | None = None
    shape: object = None  # audit.static.shapes.Shape, set by the PG-EVAL rules
    _states: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.evidence is not None and self.sinks is not None:
            self.evidence.set_observed(self._inline_tests())

    # -- event queries -------------------------------------------------------------------------
    def of(self, kind: str, label: str | None = None) -> list[tuple[int, Event]]:
        return [(i, e) for i, e in enumerate(self.events) if e.kind == kind and (label is None or label in e.labels)]

    def reported_of(self, kind: str) -> list[Event]:
        """Typed events (mix, nondist, cratio, tmask, select, ...) about validation tokens whose
        value reaches the reported score: a diagnostic computation is not judged."""
        return [e for _, e in self.of(kind, "val") if not e.info.get("unreported")]

    def val_updates(self):
        return self.of("update", "val")

    def val_scores(self, reported: bool = True):
        """Scores of validation tokens: accumulated without gradient (or detached), and by default
        only those whose number reaches the reported val_loss/val_bpb (audit.static.sinks)."""
        return [(i, e) for i, e in self.of("score", "val")
                if (e.nograd or (e.nograd is None and e.info.get("detached")))
                and not (reported and e.info.get("unreported"))]

    def val_source(self) -> Event | None:
        """The first place the program reads validation tokens (the head of every chain)."""
        return next((e for _, e in self.of("read", "val")), None)

    def covering_score(self, i: int, u: Event) -> Event | None:
        """An earlier val score in the same loop iteration as update `u` (score-first), reported or
        not: a pass that scores each chunk before learning from it is score-first even when its
        own number is thrown away (what it does to a later, reported score is C4's business)."""
        for j, s in self.val_scores(reported=False):
            if j < i and shared_loops(u, s):
                return s
        return None

    # -- dormancy -----------------------------------------------------------------------------
    # -- what the logs show ran ----------------------------------------------------------------
    def printed_branches(self) -> dict:
        """(id(guard test), polarity) -> (log path, line) for each `if` branch that holds a print
        whose line is in the record's logs: that branch ran, whatever the flag's default."""
        if self._printed is None:
            self._printed = {}
            if self.sinks is not None:
                prints = self.of("print")
                sites: dict = {}
                for _, p in prints:  # a format printed from several places cannot tell which ran
                    sites.setdefault(p.info["template"].regex.pattern, set()).add((p.path, p.line))
                for _, p in prints:
                    m = self.sinks.seen(p.info["template"])
                    if m is None or len(sites[p.info["template"].regex.pattern]) > 1:
                        continue
                    for g in p.guards:
                        # only the print's own function: a helper that prints for several
                        # callers cannot say which caller's branch ran
                        if g.kind == "if" and g.fn == p.fn:
                            self._printed.setdefault((id(g.test), g.polarity), m.where)
        return self._printed

    def _inline_tests(self) -> dict:
        """(function, test text) -> (value, log path, line) for `{' x=…' if test else ''}` pieces
        of printed lines: the logged line shows which way the test went."""
        import libcst as cst

        out: dict = {}
        for _, p in self.of("print"):
            m = self.sinks.seen(p.info["template"])
            if m is None or not m.alts:
                continue
            for g, (test, branch) in p.info["template"].alts.items():
                got = m.alts.get(id(test))
                if got and len(got) == 1 and branch in got:
                    out[(p.fn, cst.Module([]).code_for_node(test))] = (branch, *m.where)
        return out

    def _opened_by_print(self, g) -> EvidenceStep | None:
        where = self.printed_branches().get((id(g.test), g.polarity))
        if where is None:
            return None
        return EvidenceStep("the log has a line only this branch prints", Location(where[0], where[1]))

    def state(self, e: Event) -> tuple[str, list[EvidenceStep]]:
        """'live', 'dormant' (a guard is off in the run: off by default and nothing turns it on,
        or the record's own evidence turns it off) or 'enabled' (off by default, on by evidence).
        Cached per event: rules ask about the same events many times."""
        key = id(e)
        got = self._states.get(key)
        if got is None:
            got = self._states[key] = self._state(e)
        return got

    def _state(self, e: Event) -> tuple[str, list[EvidenceStep]]:
        closed = [g for g in e.guards if self.defaults.guard_open(g.test, g.polarity, g.kind, g.fn) is False]
        ev = self.evidence
        by_print = {id(g): self._opened_by_print(g) for g in e.guards}
        if ev is not None:
            ev.used.clear()
            off = [g for g in e.guards if by_print[id(g)] is None
                   and ev.guard_open(g.test, g.polarity, g.kind, g.fn) is False and g not in closed]
            if off:  # on by default, off in the run that produced the logs
                steps = [EvidenceStep(f"the record's run turns it off: {w}={v}", Location(f, ln)) for w, f, ln, v in _unique(ev.used)]
                return "dormant", steps or [EvidenceStep("guard off in the record's run", Location(g.path, g.line)) for g in off]
        if not closed:
            return "live", []
        if ev is not None or any(by_print.values()):
            if ev is not None:
                ev.used.clear()
            opened = [g for g in closed if by_print[id(g)] is not None or (ev is not None and ev.guard_open(g.test, g.polarity, g.kind, g.fn) is True)]
            still = [g for g in e.guards if by_print[id(g)] is None and ev is not None and ev.guard_open(g.test, g.polarity, g.kind, g.fn) is False]
            if ev is None:
                still = [g for g in closed if by_print[id(g)] is None]
            if opened and not still:
                steps = [EvidenceStep(f"guard off by default, on in the record: {w}={v}", Location(f, ln))
                         for w, f, ln, v in _unique(ev.used if ev is not None else [])]
                steps += [by_print[id(g)] for g in opened if by_print[id(g)] is not None]
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
        for ev in (e, *related):  # a violation needs all its events: one dormant one makes it dormant
            st, gs = self.state(ev)
            if st == "dormant" or (st == "enabled" and state == "live"):
                state, gsteps = st, gs
            if st == "dormant":
                break
        confidence = rule.confidence
        if state == "dormant" and sev is Severity.ERROR:
            sev = Severity.WARNING
            off_in_run = any("turns it off" in s.message or "off in the record" in s.message for s in gsteps)
            msg = (f"dormant (behind a flag the record's run turns off): {msg}" if off_in_run
                   else f"dormant (behind a flag that is off by default): {msg}")
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


_OPTIMIZER = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LBFGS", "Muon", "Adafactor")


def trains_local_module(prog: Program, u: Event) -> bool:
    """The update's optimizer (built in the same function) steps only modules that function
    creates itself (`probe = nn.Linear(...)`) and that no reported score uses: a diagnostic
    probe on frozen activations, not the scored model (issue 9 H)."""
    import libcst as cst

    from audit.static.names import dotted

    if prog.sinks is None or prog.sinks.reported_keys is None:
        return False
    fn = next((m.functions.get(u.fn) for m in prog.flow.modules if u.fn in m.functions), None)
    if fn is None:
        return False
    roots: set[str] = set()
    for name, nodes in fn.all_assigns.items():
        for node in nodes:
            if isinstance(node, cst.Call) and (dotted(node.func) or "").rsplit(".", 1)[-1] in _OPTIMIZER and node.args:
                roots |= {n.value for n in _cst_names(node.args[0].value)}
    if not roots:
        return False
    for r in roots:
        made = fn.all_assigns.get(r, ())
        local_module = made and all(_constructs(n) for n in made)
        if not local_module or prog.flow.key(fn, r) in prog.sinks.reported_keys:
            return False
    return True


def _cst_names(node) -> list:
    import libcst as cst

    out, stack = [], [node]
    while stack:
        x = stack.pop()
        if isinstance(x, cst.Name):
            out.append(x)
        elif isinstance(x, cst.Attribute):
            stack.append(x.value)  # `probe.parameters()`: the receiver, not the method name
        elif isinstance(x, cst.CSTNode):
            stack.extend(x.children)
    return out


def _constructs(node) -> bool:
    """`nn.Linear(d, V).to(device)`: a module built here (a capitalised constructor)."""
    import libcst as cst

    from audit.static.names import dotted

    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("to", "cuda", "float", "half", "bfloat16"):
        node = node.func.value
    if not isinstance(node, cst.Call):
        return False
    last = (dotted(node.func) or "").rsplit(".", 1)[-1]
    return last[:1].isupper()
