"""The score sink: the `val_loss` / `val_bpb` values a program prints, and which printed line the
record reports (capability A).

A score is not a variable name: it is whatever ends in the numbers the run prints in the
upstream log format (`final_int8_zlib_roundtrip_exact val_loss:1.9 val_bpb:1.1`). This module
finds every print-like call of the program (`print`, `log0`, `logger.info`, `log_file.write`, ...)
and turns its format (f-string, `%`, `.format`, implicit concatenation, `{a if c else b}`) into
a template: a regular expression over log lines, the expressions printed after `val_bpb:` /
`val_loss:` (the sink values), and the alternatives of inline conditionals.

Against the record's logs (audit.static.evidence) a template says two things:
- which prints ran: a line only a guarded branch prints shows that branch ran (its guard was
  open in the logged run, whatever the default), and an inline `{' slot_lr=…' if use_slot else ''}`
  shows which way its test went;
- which sink is reported: the last sink line of each log, and any sink whose printed `val_bpb`
  equals a figure the submission claims.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from audit.static.evidence import Evidence
from audit.static.ir import Call

PRINTY = re.compile(r"^(print\w*|_?log\w*|info|warning|write|echo|emit|report)$", re.I)
SCORE_KEY = re.compile(r"(val_bpb|val_loss|\bbpb)\s*[:=]\s*$")
SINK_WORD = re.compile(r"val_bpb|val_loss")
# A print template is a regex with a lazy hole per formatted value: on a long line that holds its
# literals many times it backtracks polynomially (a 13.8 KB JSON `log_tail` line in a real
# record's train.log took the audit past its 300 s deadline). The longest line of the merged
# records' logs that a print template could match is a 1,506-character configuration echo;
# a line over this cap is a dump (JSON tails, arrays), not what a print of the code made, and
# is not matched. A crafted line under the cap can still be slow: the file's worker deadline
# (audit.static.isolate) bounds it, as a PG-PARSE-001 finding.
MAX_MATCHED_LINE = 4_000
MIN_LITERAL = 6  # a template with less literal text than this matches too much to be evidence
_SPEC = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[sdfegxrc%]|\{[^{}]*\}")


@dataclass
class Template:
    """A print call's format as a regular expression over one log line."""

    regex: re.Pattern
    skeleton: str  # the literal text with '#' for each printed value (for near matches)
    anchor: str  # its longest literal run (a fast filter: a line without it cannot match)
    sink: bool  # prints val_loss / val_bpb
    values: list = field(default_factory=list)  # cst expressions printed as val_bpb / val_loss
    alts: dict = field(default_factory=dict)  # group name -> (IfExp test node, branch taken)
    bpb_group: str | None = None


class _Builder:
    def __init__(self):
        self.parts: list[str] = []
        self.literal: list[str] = []
        self.values: list = []
        self.holes: list = []
        self.alts: dict = {}
        self.n = 0
        self.bpb: str | None = None

    def text(self, s: str) -> None:
        self.parts.append(re.escape(s))
        self.literal.append(s)

    def hole(self, expr=None) -> None:
        self.n += 1
        name = f"g{self.n}"
        prior = "".join(self.literal[-1:])
        if expr is not None:
            self.holes.append(expr)
        if expr is not None and SCORE_KEY.search(prior):
            self.values.append(expr)
            if "bpb" in prior:
                self.bpb = name
        self.parts.append(f"(?P<{name}>.*?)")
        self.literal.append("\0")

    def alt(self, test, body, orelse) -> None:
        """`{X if test else Y}` with literal X and Y: which one the log shows says how `test` went."""
        self.n += 1
        a, b = f"a{self.n}", f"b{self.n}"
        self.alts[a], self.alts[b] = (test, True), (test, False)
        self.parts.append(f"(?:(?P<{a}>{_fragment(body)})|(?P<{b}>{_fragment(orelse)}))")
        self.literal.append("\0")


def _fragment(node) -> str:
    """A regex for a literal or f-string piece inside an alternative (expressions match anything)."""
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        v = node.evaluated_value
        return re.escape(v) if isinstance(v, str) else ".*?"
    if isinstance(node, cst.FormattedString):
        out = []
        for p in node.parts:
            out.append(re.escape(p.value) if isinstance(p, cst.FormattedStringText) else ".*?")
        return "".join(out)
    return ".*?"


def _walk_format(node, b: _Builder, args: list) -> bool:
    """Add `node` (the format argument) to the builder; False when it is not a format at all."""
    if isinstance(node, cst.FormattedString):
        for p in node.parts:
            if isinstance(p, cst.FormattedStringText):
                b.text(p.value.replace("{{", "{").replace("}}", "}"))
            else:
                e = p.expression
                if isinstance(e, cst.IfExp) and _literal_like(e.body) and _literal_like(e.orelse):
                    b.alt(e.test, e.body, e.orelse)
                else:
                    b.hole(e)
        return True
    if isinstance(node, cst.ConcatenatedString):
        return _walk_format(node.left, b, args) and _walk_format(node.right, b, args)
    if isinstance(node, cst.SimpleString):
        v = node.evaluated_value
        if not isinstance(v, str):
            return False
        pos = 0
        for m in _SPEC.finditer(v):  # printf and str.format holes, in order, bound to the args
            b.text(v[pos:m.start()])
            if m.group(0) == "%%":
                b.text("%")
            else:
                b.hole(args.pop(0) if args else None)
            pos = m.end()
        b.text(v[pos:])
        return True
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
        right = node.right
        vals = [e.value for e in right.elements] if isinstance(right, cst.Tuple) else [right]
        return _walk_format(node.left, b, vals)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "format":
        return _walk_format(node.func.value, b, [a.value for a in node.args if a.keyword is None])
    return False


def _literal_like(node) -> bool:
    return isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString))


_UNSET = object()


def template_of(call: Call) -> Template | None:
    """The template of a print-like call, or None (not a print, or too little literal text).
    Kept on the call itself: built once per call, never shared between programs."""
    got = getattr(call, "_template", _UNSET)
    if got is _UNSET:
        got = _build(call)
        call._template = got
    return got


def _build(call: Call) -> Template | None:
    name = call.last
    if not PRINTY.match(name) or not call.node.args:
        return None
    first = call.node.args[0].value
    b = _Builder()
    rest = [a.value for a in call.node.args[1:] if a.keyword is None]
    if not _walk_format(first, b, rest):
        return None
    literal = "".join(x for x in b.literal if x != "\0")
    if len(literal.strip()) < MIN_LITERAL:
        return None
    anchor = max(("".join(b.literal).split("\0")), key=len).strip()
    if len(anchor) < 3:
        return None
    try:
        regex = re.compile(("".join(b.parts).strip() + r"\s*$") if "".join(b.literal).strip() else "$^")
    except re.error:
        return None
    sink = bool(SINK_WORD.search(literal)) or bool(b.values)
    if sink and not b.values:  # `print("val_bpb", bpb)`, f"val_bpb {x}": every printed value
        b.values = b.holes + rest
    skeleton = "".join("#" if x == "\0" else x for x in b.literal)
    return Template(regex, skeleton, anchor, sink, b.values, b.alts, b.bpb)


@dataclass
class LogMatch:
    """What the logs say about one template: did it print, which way its inline tests went,
    the printed val_bpb values, and whether it printed a log's last score line."""

    seen: bool = False
    alts: dict = field(default_factory=dict)  # IfExp test node id -> set of branches seen
    bpb: list = field(default_factory=list)
    last: bool = False
    where: tuple | None = None  # (path, line) of a matching log line


def match_logs(templates: list[Template], ev: Evidence) -> dict[int, LogMatch]:
    """id(template) -> LogMatch, for the templates the logs show."""
    out: dict[int, LogMatch] = {}
    if not ev.has_logs:
        return out
    text = ev.log_text()
    live = [t for t in templates if t.anchor in text]
    last_sink: dict[str, list[int]] = {}
    last_score_line: dict[str, bool] = {}  # log -> whether its last score-looking line matched a sink
    by_anchor: dict[str, list[Template]] = {}
    for t in live:
        by_anchor.setdefault(t.anchor, []).append(t)
    for ll in ev.log_lines:
        line = ll.text
        if len(line) > MAX_MATCHED_LINE:
            continue
        hit_sinks = []
        for anchor, ts in by_anchor.items():
            if anchor not in line:
                continue
            for t in ts:
                m = t.regex.search(line)
                if m is None:
                    continue
                lm = out.setdefault(id(t), LogMatch())
                lm.seen = True
                lm.where = lm.where or (ll.path, ll.line)
                for g, (test, branch) in t.alts.items():
                    if m.group(g) is not None:
                        lm.alts.setdefault(id(test), set()).add(branch)
                if t.sink:
                    hit_sinks.append(id(t))
                    if t.bpb_group and m.group(t.bpb_group):
                        lm.bpb.append(_number(m.group(t.bpb_group)))
        if hit_sinks:
            last_sink[ll.path] = hit_sinks
        if SINK_WORD.search(line):
            last_score_line[ll.path] = line if not hit_sinks else ""
    for ids in last_sink.values():
        for i in ids:
            out[i].last = True
    sinks = [t for t in templates if t.sink]
    for path, line in last_score_line.items():
        if not line:
            continue
        # the log ends on a score line no print of this code makes exactly: it came from a
        # slightly different revision (`zstd` for `zlib`, a renamed phase). The nearest sink
        # format stands for it when one is clearly nearest; otherwise the logs cannot say which
        # of this code's numbers is the reported one
        t = _nearest(line, sinks)
        if t is None:
            out[UNMATCHED] = LogMatch()
            continue
        lm = out.setdefault(id(t), LogMatch())
        lm.seen, lm.last, lm.where = True, True, lm.where or (path, 0)
    return out


def _nearest(line: str, sinks: list[Template]) -> Template | None:
    import difflib

    shape = re.sub(r"[-+]?\d[\d.eE+-]*", "#", line.strip())
    scored = sorted(((difflib.SequenceMatcher(None, shape, t.skeleton.strip()).ratio(), i) for i, t in enumerate(sinks)),
                    reverse=True)
    if not scored or scored[0][0] < 0.8 or (len(scored) > 1 and scored[0][0] - scored[1][0] < 0.02):
        return None
    return sinks[scored[0][1]]


UNMATCHED = -1


def reported(templates: list[Template], matches: dict[int, LogMatch], ev: Evidence) -> set[int] | None:
    """ids of the sink templates whose line is the reported score, or None when the logs do not
    say (no logs, no sink line in them, or a final score line this code does not print): then
    every sink counts as reported."""
    if UNMATCHED in matches:
        return None
    sinks = [t for t in templates if t.sink]
    seen = [t for t in sinks if matches.get(id(t)) is not None and matches[id(t)].seen]
    if not seen:
        return None
    out = {id(t) for t in seen if matches[id(t)].last}
    for t in seen:
        if any(_close(v, c) for v in matches[id(t)].bpb for c in ev.claimed):
            out.add(id(t))
    return out or None


def _number(s: str) -> float | None:
    try:
        return float(s.strip().rstrip(",;"))
    except ValueError:
        return None


def _close(a, b) -> bool:
    return a is not None and b is not None and abs(a - b) <= 5e-5


def print_sites(functions) -> list[tuple]:
    """(function, template) for every print-like call of the program with a usable template."""
    out = []
    for fn in functions:
        stack = list(fn.body)
        while stack:
            s = stack.pop()
            tag = s[0]
            if tag == "expr" and s[1] is not None and s[1][0] == "c":
                t = template_of(s[1][1])
                if t is not None:
                    out.append((fn, t))
            elif tag in ("for", "if"):
                stack.extend(s[3])
                stack.extend(s[4])
            elif tag == "while":
                stack.extend(s[2])
            elif tag == "with":
                stack.extend(s[3])
            elif tag == "block":
                stack.extend(s[1])
    return out


class ScoreSinks:
    """The program's score sinks, what its logs show of them, and the reported keys.

    `reported_keys` is None when the program prints no val_loss/val_bpb at all (a helper module,
    a rule example): the tracer then recognises accumulators by their names."""

    def __init__(self, flow, functions, evidence: Evidence | None):
        from audit.static.slice import Deps, cst_keys

        self.sites = print_sites(functions)
        templates = [t for _, t in self.sites]
        self.matches = match_logs(templates, evidence) if evidence is not None else {}
        self.reported_ids = reported(templates, self.matches, evidence) if evidence is not None else None
        sinks = [(fn, t) for fn, t in self.sites if t.sink and (self.reported_ids is None or id(t) in self.reported_ids)]
        self.deps = Deps(flow) if sinks else None
        self.sink_fns = {fn.qual for fn, _ in sinks}
        self.reported_keys = None
        if sinks:
            seeds: set = set()
            for fn, t in sinks:
                for expr in t.values:
                    seeds |= cst_keys(expr, fn, flow)
            self.reported_keys = self.deps.closure(seeds)

    def seen(self, t: Template) -> LogMatch | None:
        m = self.matches.get(id(t))
        return m if m is not None and m.seen else None
