"""The backward data flow of the reported score: every variable the printed number is made of.

Edges go from a variable to the variables its value is computed from, over the whole program
(its functions and helper modules): assignments and augmented assignments, writes by index
(`buf[i] += …`, `nll[idx] = …`), in-place mutators (`.add_`, `.append`, `.copy_`,
`.scatter_add_`, …), loop targets from their iterables, returns (per tuple element when every
return of a function is a tuple of that length), parameters from the arguments of each call
site, and a call site's arguments from the parameters a callee writes into (a value written into
a callee's argument). The closure from the sink values is the set of *reported* keys; a
validation likelihood accumulated into one of them is scoring, whatever it is called.

Keys are those of audit.static.flow (`("l", function, name)`, `("g", name)`, `("a", attr)`,
`("r", function[, i])`), so the tracer can ask whether an accumulation target is reported.
"""
from __future__ import annotations

from audit.static.flow import MUTATORS, Flow
from audit.static.ir import Call, Function, sub_bodies, value_nodes


class Deps:
    def __init__(self, flow: Flow):
        self.flow = flow
        self.edges: dict[tuple, set] = {}
        self.writes_param: dict[str, set[str]] = {}  # function -> params it mutates
        for m in flow.modules:
            for f in m.functions.values():
                self._mutated_params(f)
        for m in flow.modules:
            for f in m.functions.values():
                self._body(f.body, f)

    # -- keys a value tree reads ----------------------------------------------------------------
    def keys(self, v, fn: Function) -> set:
        out: set = set()
        for x in value_nodes(v):
            tag = x[0]
            if tag == "n":
                out.add(self.flow.key(fn, x[1]))
                if x[1] in self.flow.by_name:  # a function handed over as a value: its result
                    out.update(("r", f.qual) for f in self.flow.scoped(x[1], fn))
            elif tag == "a":
                out.add(("a", x[2]))
            elif tag == "c":
                c: Call = x[1]
                targets, _ = self.flow.resolve(c, fn)
                for f in targets:
                    out.add(("r", f.qual))
                if c.attr is None and c.qual and "." not in c.qual and not targets:
                    out.add(self.flow.key(fn, c.qual))  # an object called (`lora(h)`): its state feeds the result
        return out

    def target_keys(self, t, fn: Function) -> set:
        kind = t[0]
        if kind == "n":
            return {self.flow.key(fn, t[1])}
        if kind == "a":
            return {("a", t[1])}
        if kind == "sub":
            return self.target_keys(t[1], fn)
        if kind == "tuple":
            out: set = set()
            for e in t[1]:
                out |= self.target_keys(e, fn)
            return out
        return set()

    def _add(self, ks, deps) -> None:
        for k in ks:
            self.edges.setdefault(k, set()).update(deps)

    # -- statements -----------------------------------------------------------------------------
    def _body(self, body, fn: Function) -> None:
        for s in body:
            tag = s[0]
            if tag == "assign":
                self._assign(s[1], s[2], fn)
            elif tag == "aug":
                self._add(self.target_keys(s[1], fn), self.keys(s[3], fn))
                self._calls(s[3], fn)
            elif tag == "expr":
                self._calls(s[1], fn)
                v = s[1]
                if v is not None and v[0] == "c" and v[1].attr in MUTATORS and v[1].recv is not None:
                    root = self.flow.root(v[1].recv)
                    if root is not None:
                        deps: set = set()
                        for a in v[1].args:
                            deps |= self.keys(a, fn)
                        self._add(self.target_keys(root if root[0] == "n" else ("a", root[1]), fn), deps)
            elif tag == "ret":
                self._add({("r", fn.qual)}, self.keys(s[1], fn))
                if s[2] is not None:
                    for i, e in enumerate(s[2]):
                        self._add({("r", fn.qual, i)}, self.keys(e, fn))
                self._calls(s[1], fn)
            elif tag == "for":
                self._add(self.target_keys(s[1], fn), self.keys(s[2], fn))
                self._calls(s[2], fn)
                self._body(s[3], fn)
                self._body(s[4], fn)
            elif tag == "while":
                self._body(s[2], fn)
            elif tag == "if":
                self._body(s[3], fn)
                self._body(s[4], fn)
            elif tag == "with":
                for v, t in s[2]:
                    if t is not None:
                        self._add(self.target_keys(t, fn), self.keys(v, fn))
                self._body(s[3], fn)
            elif tag == "block":
                self._body(s[1], fn)

    def _assign(self, t, v, fn: Function) -> None:
        if t[0] == "tuple" and v is not None and v[0] == "c":
            targets, _ = self.flow.resolve(v[1], fn)
            n = len(t[1])
            if targets and all(self.flow.tuple_len.get(f.qual) == n for f in targets):
                rest = self.keys(v, fn) - {("r", f.qual) for f in targets}
                for i, e in enumerate(t[1]):
                    self._add(self.target_keys(e, fn), rest | {("r", f.qual, i) for f in targets})
                self._calls(v, fn)
                return
        self._add(self.target_keys(t, fn), self.keys(v, fn))
        self._calls(v, fn)

    def _calls(self, v, fn: Function) -> None:
        """Parameters from arguments; arguments from the parameters a callee writes into."""
        for x in value_nodes(v):
            if x[0] != "c":
                continue
            c: Call = x[1]
            targets, skip = self.flow.resolve(c, fn)
            for f in targets:
                params = f.params[skip:] if skip and f.params and f.params[0] in ("self", "cls") else f.params
                mutated = self.writes_param.get(f.qual, ())
                passed = list(zip(params, c.args)) + [(k, a) for k, a in c.kwargs.items() if k in f.params]
                for p, a in passed:
                    self._add({("l", f.qual, p)}, self.keys(a, fn))
                    if p in mutated and a is not None and a[0] in ("n", "a"):
                        self._add(self.keys(a, fn), {("l", f.qual, p)})

    def _mutated_params(self, f: Function) -> None:
        params = set(f.params)
        out: set[str] = set()

        def walk(body):
            for s in body:
                tag = s[0]
                if tag in ("assign", "aug") and s[1][0] == "sub":
                    t = s[1]
                    while t[0] == "sub":
                        t = t[1]
                    if t[0] == "n" and t[1] in params:
                        out.add(t[1])
                elif tag == "aug" and s[1][0] == "n" and s[1][1] in params:
                    out.add(s[1][1])  # `loss_sum += x` on a tensor argument adds in place
                elif tag == "expr" and s[1] is not None and s[1][0] == "c":
                    c = s[1][1]
                    if c.attr in MUTATORS and c.recv is not None:
                        r = self.flow.root(c.recv)
                        if r is not None and r[0] == "n" and r[1] in params:
                            out.add(r[1])
                for sub in sub_bodies(s):
                    walk(sub)

        walk(f.body)
        if out:
            self.writes_param[f.qual] = out

    # -- closure -------------------------------------------------------------------------------
    def closure(self, seeds: set) -> set:
        seen = set(seeds)
        stack = list(seeds)
        while stack:
            k = stack.pop()
            for d in self.edges.get(k, ()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return seen


def cst_keys(expr, fn: Function, flow: Flow) -> set:
    """Keys read by a libcst expression of `fn` (a value printed inside an f-string)."""
    import libcst as cst

    out: set = set()
    stack = [expr]
    while stack:
        x = stack.pop()
        if isinstance(x, cst.Name):
            out.add(flow.key(fn, x.value))
            for f in flow.scoped(x.value, fn):
                out.add(("r", f.qual))
        elif isinstance(x, cst.Attribute):
            out.add(("a", x.attr.value))
            stack.append(x.value)
        elif isinstance(x, cst.CSTNode):
            stack.extend(x.children)
    return out
