"""The program's order: the events reachable from the entry point, in execution order.

Starting at the module's top level (which reaches `main()` through `if __name__ == "__main__"`),
each call to one of the file's own functions is inlined (memoized per function, recursion cut),
so the result is one flat list: each loop body appears once, hence the order of two events in
the same loop iteration is their order in the list. An event keeps the loops around it (outermost
first), the `if` guards it sits under (for dormant-flag analysis), whether it runs under
`no_grad`/`inference_mode`, and the chain of call sites that led to it (the evidence).

Event kinds: update (a `.backward()`/`autograd.grad` on a loss), score (a metric accumulator fed
under no-grad), net, dyn (exec/dynamic import), calib (a GPTQ/Hessian/calibration call and the
data it got), read (a data-loading call), oracle (min over losses), tkey (a read keyed by a hash
of the target), mix (a target probability blended with a target-keyed lookup), tadj (a score
of the target moved by a term computed from the target itself), free (a tensor created with
requires_grad: a SLOT delta).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from audit.static.body_scan import (SAME_DATA, assignments_list, collect_backward,
                                     loop_targets, mutated, bound_names, names_read, param_uses, reads_name,
                                     root_is_name, target_name, this_iteration_value, tuple_writes)
from audit.static.call_kinds import (CALIB, dotted_call, hook_event, DATA_ATTR, DYN_CALLS, LIKELY_NAME, NATIVE_CALLS, NET_WORDS, NLLISH, READ,
                                      SCORE_ACC, SCOREY, STRONG_SCORE, TYPED_KINDS, NET_EXACT, NET_PREFIX, NET_SUFFIX,
                                      comparison_operand, compiles, fresh_free_tensor, likelihood_call, manual_step,
                                      mentions, oracle_shape, looks_scored, target_only_term)
from audit.static.callbacks import bind_params, callback_sites, chosen_functions
from audit.static.count_tables import table_root_of, table_write
from audit.static.flow import MUTATORS, Flow, is_val, norm, to_prior
from audit.static.ir import Call, Function
from audit.static.offsets import block_slice
from audit.static.normalisation import STACKS, count_ratio, nondist_components, token_comparison
from audit.static.selection import overwrites_with, score_comparison, where_select
from audit.static.sinks import template_of


@dataclass(frozen=True)
class Loop:
    node_id: int
    kind: str  # for | while
    targets: tuple
    iter_node: object
    path: str
    line: int
    fn: str
    ctx: tuple = ()  # call sites that inlined this loop: two calls of one function are two loops


@dataclass(frozen=True)
class Guard:
    test: object  # libcst expression
    polarity: bool
    path: str
    line: int
    depth: int  # how many loops enclose the guard (to tell guards inside a loop from outside)
    kind: str = "if"  # if | range
    fn: str = ""  # the function whose locals the test reads


@dataclass
class Event:
    kind: str
    labels: frozenset
    path: str
    line: int
    fn: str
    loops: tuple = ()
    guards: tuple = ()
    nograd: bool | None = None
    chain: tuple = ()  # ((path, line, message), ...) call sites, outermost first
    info: dict = field(default_factory=dict)

    @property
    def val(self) -> bool:
        return "val" in self.labels


class Tracer:
    """`reported`: the keys the reported score is made of (audit.static.slice), or None when the
    program prints no score we could find (then accumulators are recognised by their names)."""

    def __init__(self, flow: Flow, max_depth: int = 14, reported: set | None = None, deps=None,
                 sink_fns: set | None = None, branch=None):
        self.flow = flow
        # branch(test, function) -> True/False/UNKNOWN, the `if` test's value in the run: values
        # bound only in a branch the run never takes do not flow past the `if` (its own events
        # still carry the guard, so what it would do is reported as dormant)
        self.branch = branch
        self.reported = reported
        self.deps = deps
        self.sink_fns = sink_fns or set()  # functions that print a reported score themselves
        self.table_roots = flow.table_roots
        self._site: set = set()  # keys the statement being traced writes (its call sites' results)
        self.memo: dict[str, list[Event]] = {}
        self.active: set[str] = set()
        self.max_depth = max_depth
        self._bw: dict[str, set] = {}
        self.inlined: set[str] = set()  # functions reached through a call
        self._nograd: dict[str, set] = {}  # per function: names assigned under no_grad

    def trace(self, fn: Function) -> list[Event]:
        got = self.memo.get(fn.qual)
        if got is not None:
            return got
        if fn.qual in self.active or len(self.active) > self.max_depth:
            return []
        self.active.add(fn.qual)
        out: list[Event] = []
        saved = (self.flow.override, self.flow.override_fn, self.flow.loopvars)
        self.flow.override, self.flow.override_fn, self.flow.loopvars = {}, fn, {}
        try:
            self.body(fn.body, fn, out, loops=(), guards=(), nograd=fn.nograd)
        finally:
            self.flow.override, self.flow.override_fn, self.flow.loopvars = saved
        self.active.discard(fn.qual)
        self.memo[fn.qual] = out
        return out

    # -- statements --------------------------------------------------------------------------
    def body(self, stmts, fn, out, loops, guards, nograd) -> None:
        for s in stmts:
            tag = s[0]
            if tag in ("assign", "expr", "ret", "aug"):
                self._site = self._site_keys(s, fn)
                written = table_write(s, fn.all_assigns) if tag != "ret" else None
                if written is not None:  # counts of validation tokens added to a table: learned state
                    labels = self.flow.L(written[1], fn)
                    if tag == "aug":
                        labels = labels | self.flow.L(s[1][2] if s[1][0] == "sub" and len(s[1]) > 2 else None, fn)
                    if is_val(norm(labels)):
                        out.append(Event("twrite", frozenset(labels), fn.path, s[-1], fn.qual, loops, guards, nograd,
                                         info={"table": written[0]}))
            if tag in ("assign", "expr", "ret"):
                v = s[2] if tag == "assign" else s[1]
                self.value(v, fn, out, s[-1], loops, guards, nograd)
                if tag == "assign":
                    self._bind(s[1], v, fn)
                elif tag == "expr" and v is not None and v[0] == "c" and v[1].attr in MUTATORS and v[1].recv is not None:
                    r = self.flow.root(v[1].recv)  # `hidden.append(h)`: the list now holds h
                    if r is not None and r[0] == "n" and r[1] in self.flow.override:
                        extra = set()
                        for a in v[1].args:
                            extra |= self.flow.L(a, fn)
                        self.flow.override[r[1]] = self.flow.override[r[1]] | extra
                hook = hook_event(v, tag == "expr", lambda a: self.flow.L(a, fn))
                if hook is not None:
                    out.append(Event(hook[0], frozenset(hook[1]), fn.path, s[-1], fn.qual, loops, guards, nograd,
                                     info={"call": dotted_call(v[1])}))
                if tag == "assign" and nograd:  # values computed without grad: what scoring makes
                    self._nograd.setdefault(fn.qual, set()).update(bound_names(s[1]))
                step = manual_step(v, s[1]) if tag == "assign" else None
                if step is not None and is_val(norm(self.flow.L(step, fn))):
                    # `bias = bias - lr * grad` with grad computed from validation targets: a
                    # gradient step without autograd (a SLOT/ETLB bias fitted by hand)
                    labs = self.flow.L(step, fn)
                    out.append(Event("free", frozenset(), fn.path, s[-1], fn.qual, loops, guards, nograd))
                    out.append(Event("update", frozenset(labs), fn.path, s[-1], fn.qual, loops, guards, nograd,
                                     info={"via": "a hand-written gradient step"}))
                if tag == "assign" and v is not None and v[0] == "b" and v[1] == "Add" and s[1][0] == "n":
                    if reads_name(v, s[1][1]):
                        self.score(fn, out, s[-1], loops, guards, nograd, v, s[1][1], self._site)
                elif tag == "assign" and self.reported is not None and (s[1][0] == "sub" or likelihood_call(v)):
                    # `nll[idx] = …` (a per-token buffer) or `val_loss = F.cross_entropy(…)`
                    self.score(fn, out, s[-1], loops, guards, nograd, v, target_name(s[1]), self._site)
                if tag == "expr" and v is not None and v[0] == "c":
                    c = v[1]
                    if c.attr in ("add_", "append", "extend", "copy_", "index_add_", "scatter_add_") and c.recv is not None:
                        r = self.flow.root(c.recv)
                        if r is not None and c.args:
                            self.score(fn, out, s[-1], loops, guards, nograd, c.args[-1], r[1], self._site)
            elif tag == "aug":
                self.value(s[3], fn, out, s[-1], loops, guards, nograd)
                if s[1][0] == "n" and s[1][1] in self.flow.override:
                    self.flow.override[s[1][1]] = self.flow.override[s[1][1]] | self.flow.L(s[3], fn)
                if s[2] in ("AddAssign", "SubtractAssign") and s[1][0] in ("n", "a", "sub"):
                    name = target_name(s[1])
                    self.score(fn, out, s[-1], loops, guards, nograd, s[3], name, self._site)
                elif s[2] in ("MultiplyAssign", "DivideAssign") and s[1][0] in ("n", "sub") and comparison_operand(s[3], fn):
                    root = target_name(s[1])  # `nll[:n] *= (stored != y)`: the answer switches the score
                    if root and "tprob" in norm(self.flow.L(("n", root), fn)):
                        self._typed(out, "tmask", self.flow.L(s[3], fn) | self.flow.L(("n", root), fn), fn, s[-1], loops, guards, nograd)
            elif tag == "for":
                self.value(s[2], fn, out, s[5], loops, guards, nograd)
                loop = Loop(s[6], "for", bound_names(s[1]), s[7], fn.path, s[5], fn.qual)
                g = guards + (Guard(s[7], True, fn.path, s[5], len(loops), "range", fn.qual),)
                before = self._enter_loop(s[3], s[6], bound_names(s[1]))
                for n in bound_names(s[1]):  # "lv:ID": derived from this loop's variable (loop_order.py)
                    self.flow.override[n] = set(self.flow.L(s[2], fn)) | {f"lv:{s[6]}"}
                saved_vars = self.flow.loopvars
                self.flow.loopvars = {**saved_vars, **{n: s[6] for n in bound_names(s[1])}}
                self.body(s[3], fn, out, loops + (loop,), g, nograd)
                self.flow.loopvars = saved_vars
                self._merge(before)
                self.body(s[4], fn, out, loops, guards, nograd)
            elif tag == "while":
                self.value(s[1], fn, out, s[3], loops, guards, nograd)
                loop = Loop(s[4], "while", (), s[5], fn.path, s[3], fn.qual)
                before = self._enter_loop(s[2], s[4])
                self.body(s[2], fn, out, loops + (loop,), guards, nograd)
                self._merge(before)
            elif tag == "if":
                self.value(s[2], fn, out, s[5], loops, guards, nograd)
                sides = score_comparison(s[1], lambda n: norm(self.flow.L(("n", n), fn)))
                if sides is not None and is_val(norm(self.flow.L(s[2], fn))) and (
                        overwrites_with(s[3], sides[0] | sides[1])):
                    self._site = set().union(*(self._site_keys(b, fn) for b in s[3] if b[0] in ("assign", "aug")))
                    per_token = any(b[0] in ("assign", "aug") and b[1][0] == "sub" for b in s[3])
                    self._typed(out, "select", self.flow.L(s[2], fn), fn, s[5], loops, guards, nograd)
                    out[-1].info["per_token"] = per_token
                before = dict(self.flow.override)
                self.body(s[3], fn, out, loops, guards + (Guard(s[1], True, fn.path, s[5], len(loops), "if", fn.qual),), nograd)
                after_then = self.flow.override
                self.flow.override = dict(before)
                self.body(s[4], fn, out, loops, guards + (Guard(s[1], False, fn.path, s[5], len(loops), "if", fn.qual),), nograd)
                taken = self.branch(s[1], fn.qual) if self.branch is not None else None
                if taken is True:
                    self.flow.override = after_then
                elif taken is not False:
                    self._merge(after_then)
            elif tag == "with":
                for v, t in s[2]:
                    self.value(v, fn, out, s[-1], loops, guards, nograd)
                    if t is not None:
                        self._bind(t, v, fn)
                self.body(s[3], fn, out, loops, guards, s[1] if s[1] is not None else nograd)
            elif tag == "block":
                self.body(s[1], fn, out, loops, guards, nograd)

    # -- flow-sensitive locals: the labels of a name's latest assignment on this path -------
    def _bind(self, target, v, fn) -> None:
        ov = self.flow.override
        if target[0] == "n":
            ov[target[1]] = set(self.flow.L(v, fn))
        elif target[0] == "sub":  # `buf[i] = x`: a weak update of buf
            root = target_name(target)
            if root in ov:
                ov[root] = ov[root] | self.flow.L(v, fn)
            elif root is not None and root_is_name(target):
                ov[root] = set(self.flow.get(self.flow.key(fn, root))) | self.flow.L(v, fn)
        elif target[0] == "tuple":
            names = target[1]
            per = self.flow.unpack_labels(len(names), v[1], fn) if v is not None and v[0] == "c" else None
            whole = None if per is not None else set(self.flow.L(v, fn))
            for i, t in enumerate(names):
                if t[0] == "n":
                    ov[t[1]] = per[i] if per is not None else whole
                else:
                    for n in bound_names(t):
                        ov.pop(n, None)

    def _blocks(self, values, fn, targets) -> bool:
        """Every value the loop carries over is (a copy of) a name bound to block k of the
        iteration's loop variable (offsets.block_slice): consecutive blocks do not overlap."""
        if not values or fn is None or not targets:
            return False
        for v in values:
            while v is not None and v[0] == "c" and v[1].attr in SAME_DATA and v[1].recv is not None:
                v = v[1].recv
            if v is None or v[0] != "n":
                return False
            nodes = fn.all_assigns.get(v[1], ())
            if not nodes or not all(any(block_slice(nd, fn.assigns, k) for k in targets) for nd in nodes):
                return False
        return True

    def _enter_loop(self, body, loop_id: int, targets: tuple = ()) -> dict:
        """At the head of an iteration, a name the body assigns or mutates holds its value from
        before the loop or from an earlier iteration: validation tokens in the latter were
        already scored by that iteration ("vp:ID", see flow.to_prior). The body's own
        assignments then give this iteration's labels along each path; a path join keeps both."""
        ov = self.flow.override
        before = dict(ov)
        writes: dict = {}
        for n, v in assignments_list(body):
            writes.setdefault(n, []).append(v)
        for n, v in mutated(body) + tuple_writes(body):
            writes.setdefault(n, []).append(v)
        names = set(writes) | set(loop_targets(body))
        fn = self.flow.override_fn
        here = set(writes) | set(loop_targets(body))
        for n in names:
            if not all(this_iteration_value(v, here) for v in writes.get(n, [None])):
                # e.g. a prefetched next chunk: not known to be scored already; its flow-insensitive
                # labels, plus the loop variables its value before the loop depended on
                lv = {label for label in before.get(n, ()) if label.startswith("lv:")}
                if lv and fn is not None:
                    ov[n] = set(self.flow.get(self.flow.key(fn, n))) | lv
                else:
                    ov.pop(n, None)
                continue
            carried = to_prior(self.flow.get(self.flow.key(fn, n)), loop_id) if fn is not None else set()
            if any(label.startswith(("vp:", "@vp:", "pv:")) for label in carried) and not self._blocks(writes.get(n), fn, targets):
                carried.add(f"carried:{loop_id}")  # "already scored" only by the loop's own say-so (shapes.py)
            if n in before:
                carried |= before[n]
            elif fn is not None and n in fn.params:
                carried.add("p:" + n)  # the argument's own value on the first iteration
            ov[n] = carried
        return before

    def _merge(self, other: dict) -> None:
        """Join two paths: a name keeps path labels only if both paths know it (their union).
        A name one path alone binds falls back to its flow-insensitive labels, plus the loop
        variables it depends on there ("lv:", which only the tracer computes)."""
        cur = self.flow.override
        merged = {k: cur[k] | other[k] for k in cur.keys() & other.keys()}
        fn = self.flow.override_fn
        for side in (cur, other):
            for k in side.keys() - merged.keys():
                lv = {label for label in side[k] if label.startswith("lv:")}
                if lv and fn is not None:
                    merged[k] = set(self.flow.get(self.flow.key(fn, k))) | lv
        self.flow.override = merged

    def _typed(self, out, kind, labels, fn, line, loops, guards, nograd) -> None:
        """An event about the type of a value being scored; `unreported` when the statement's
        result is none of the reported score's keys (a diagnostic computation)."""
        info = {}
        if self.reported is not None and not (self._site & self.reported):
            info["unreported"] = True
        out.append(Event(kind, frozenset(labels), fn.path, line, fn.qual, loops, guards, nograd, info=info))

    def _site_keys(self, s, fn) -> set:
        """The keys a statement writes: its targets, its function's return, or (for a bare call)
        the plain variables it passes (a callee may write the score into them)."""
        if self.deps is None:
            return set()
        tag = s[0]
        if tag in ("assign", "aug"):
            return self.deps.target_keys(s[1], fn)
        if tag == "ret":
            return {("r", fn.qual)}
        v = s[1]
        out = set()
        if v is not None and v[0] == "c":
            for a in v[1].args + [v[1].recv]:
                if a is not None and a[0] in ("n", "a"):
                    out |= self.deps.keys(a, fn)
        return out

    def score(self, fn, out, line, loops, guards, nograd, v, name, keys=frozenset()) -> None:
        raw = self.flow.L(v, fn)
        # a score ends in the printed val_loss/val_bpb; an accumulator that only looks like one
        # (by its name) is a score whose number is not reported: it still makes a pass score-first
        likelihood = "tprob" in raw or "@tprob" in raw or bool(name and LIKELY_NAME.search(name))
        ends = self.reported is not None and bool(keys & self.reported) and likelihood
        accepted = ends or bool(name and SCORE_ACC.search(name))
        if accepted and is_val(norm(raw)):
            # a metric accumulator outside no_grad still scores (SLOT scores after its own
            # no_grad block) as long as it does not accumulate the loss that was backpropagated
            trained = self.backward_names(fn)
            read = names_read(v)
            detached = not (read & trained) and name not in trained
            scorey = (bool(STRONG_SCORE.search(name or "")) or any(NLLISH.search(n) for n in read)
                      or bool(read & self._nograd.get(fn.qual, set())))
            info = {"into": name, "detached": detached and (scorey or ends)}
            if self.reported is not None and not ends:
                info["unreported"] = True
            out.append(Event("score", frozenset(raw), fn.path, line, fn.qual, loops, guards, nograd, info=info))

    def _only_metadata(self, c: Call, targets, skip, fn) -> bool:
        """True when every validation-labeled argument is used by the callee only through
        non-data attributes (`val_data.sp`, the tokenizer): calibration that merely borrows the
        val container's tokenizer is not calibration on validation tokens."""
        for f in targets:
            params = f.params[skip:] if skip and f.params and f.params[0] in ("self", "cls") else f.params
            exprs = dict(zip(params, c.args)) | {k: v for k, v in c.kwargs.items() if k in f.params}
            for p, labs in self.flow.bind(c, f, skip, fn).items():
                arg = exprs.get(p)
                if arg is not None and arg[0] == "a" and not DATA_ATTR.search(arg[2]):
                    continue  # `val_data.sp`: the tokenizer riding on the val container
                if is_val(norm(labs)) and any(u is None or DATA_ATTR.search(u) for u in param_uses(f.body, p)):
                    return False
        return True

    def backward_names(self, fn) -> set:
        got = self._bw.get(fn.qual)
        if got is None:
            got = set()
            collect_backward(fn.body, got)
            self._bw[fn.qual] = got
        return got

    # -- expressions: calls in evaluation order ---------------------------------------------
    def value(self, v, fn, out, line, loops, guards, nograd) -> None:
        if v is None:
            return
        tag = v[0]
        if tag == "c":
            c: Call = v[1]
            if c.recv is not None:
                self.value(c.recv, fn, out, line, loops, guards, nograd)
            for a in c.args:
                self.value(a, fn, out, line, loops, guards, nograd)
            for a in c.kwargs.values():
                self.value(a, fn, out, line, loops, guards, nograd)
            self.call(c, fn, out, line, loops, guards, nograd)
            last = c.last
            if last in STACKS and c.args and c.args[0] is not None and c.args[0][0] == "u":
                parts = [norm(self.flow.L(p, fn)) for p in c.args[0][1]]
                if nondist_components(parts):
                    self._typed(out, "nondist", set().union(*parts), fn, line, loops, guards, nograd)
            elif last == "where" and len(c.args) == 3 and where_select(c.node, lambda n: norm(self.flow.L(("n", n), fn))):
                if any(is_val(norm(self.flow.L(a, fn))) for a in c.args):
                    self._typed(out, "select", set().union(*(self.flow.L(a, fn) for a in c.args)), fn, line, loops, guards, nograd)
                    out[-1].info["per_token"] = True
            elif last == "where" and len(c.args) == 3 and c.node.args and token_comparison(c.node.args[0].value, fn.all_assigns):
                labs = [norm(self.flow.L(a, fn)) for a in c.args[1:]]
                if any("tprob" in lab for lab in labs):
                    self._typed(out, "tmask", set().union(*labs), fn, line, loops, guards, nograd)
        elif tag == "i":
            self.value(v[1], fn, out, line, loops, guards, nograd)
            self.value(v[2], fn, out, line, loops, guards, nograd)
            raw = self.flow.L(v[2], fn)
            root = table_root_of(v)
            if root is not None and root in self.table_roots and is_val(norm(raw)):
                out.append(Event("tread", frozenset(raw), fn.path, line, fn.qual, loops, guards, nograd, info={"table": root}))
            idx = norm(raw)
            if "thash" in idx and "target" in idx:
                out.append(Event("tkey", frozenset(self.flow.L(v, fn) | raw), fn.path, line, fn.qual, loops, guards, nograd))
        elif tag == "b":
            self.value(v[2], fn, out, line, loops, guards, nograd)
            self.value(v[3], fn, out, line, loops, guards, nograd)
            if v[1] in ("Add", "Subtract"):
                rl, rr = self.flow.L(v[2], fn), self.flow.L(v[3], fn)
                left, right = norm(rl), norm(rr)
                if ("tprob" in left and "tkeyed" in right) or ("tprob" in right and "tkeyed" in left):
                    self._typed(out, "mix", rl | rr, fn, line, loops, guards, nograd)
                elif ((target_only_term(left, right) and looks_scored(v[2])) or (target_only_term(right, left) and looks_scored(v[3]))):
                    self._typed(out, "tadj", rl | rr, fn, line, loops, guards, nograd)
            elif v[1] == "Divide":
                rl, rr = self.flow.L(v[2], fn), self.flow.L(v[3], fn)
                if count_ratio(norm(rl), norm(rr)):
                    self._typed(out, "cratio", rl | rr, fn, line, loops, guards, nograd)
            elif v[1] == "Multiply":
                for a, b in ((v[2], v[3]), (v[3], v[2])):
                    if comparison_operand(b, fn) and "tprob" in norm(self.flow.L(a, fn)):
                        self._typed(out, "tmask", self.flow.L(a, fn) | self.flow.L(b, fn), fn, line, loops, guards, nograd)
                        break
        elif tag in ("a", "t", "shift"):
            self.value(v[1], fn, out, line, loops, guards, nograd)
        elif tag == "u":
            for p in v[1]:
                self.value(p, fn, out, line, loops, guards, nograd)
        elif tag == "walrus":
            self.value(v[2], fn, out, line, loops, guards, nograd)

    def call(self, c: Call, fn, out, line, loops, guards, nograd) -> None:
        flow = self.flow
        q = c.qual or ""
        last = c.last
        ev = lambda kind, labels, **info: out.append(Event(kind, frozenset(labels), fn.path, line, fn.qual, loops, guards, nograd, info=info))  # noqa: E731
        if c.attr == "backward" and c.recv is not None:
            ev("update", flow.L(c.recv, fn), via=".backward()")
        elif q.endswith("autograd.grad") and c.args:
            ev("update", flow.L(c.args[0], fn), via="torch.autograd.grad")
        if fresh_free_tensor(c):
            ev("free", ())
        if q and (q in NET_EXACT or q.startswith(NET_PREFIX) or q.endswith(NET_SUFFIX)):
            ev("net", (), call=q)
        elif q.startswith("subprocess.") or q in ("os.system", "os.popen"):
            text = " ".join(a[1] for a in c.args + list(c.kwargs.values()) if a is not None and a[0] == "s")
            if NET_WORDS.search(text) or any(a is not None and a[0] == "u" and any(p and p[0] == "s" and NET_WORDS.search(p[1]) for p in a[1]) for a in c.args):
                ev("net", (), call=q)
        if q in DYN_CALLS and not (q in ("__import__", "importlib.import_module") and c.args
                                   and c.args[0] is not None and (c.args[0][0] == "s" or (
                                       c.args[0][0] == "n" and c.args[0][1] not in fn.params))):
            ev("dyn", (), call=q)  # importing a package by a literal name (or a loop over names) runs no unseen code
        if q in NATIVE_CALLS or (q.startswith("subprocess.") and compiles(c)):
            ev("native", (), call=q)
        tmpl = template_of(c)
        if tmpl is not None:
            ev("print", (), template=tmpl)
        if oracle_shape(c):
            labs = [flow.L(a, fn) for a in c.args] + ([flow.L(c.recv, fn)] if c.attr else [])
            if any(is_val(norm(lab)) for lab in labs) and mentions(c, SCOREY):
                ev("oracle", set().union(*labs), call=q or c.attr)
        targets, skip = flow.resolve(c, fn, higher_order=False)
        labs_args = set()
        for a in c.args + list(c.kwargs.values()):
            labs_args |= flow.L(a, fn)
        recv = flow.L(c.recv, fn) if c.recv is not None else set()
        if CALIB.search(last) and not (targets and self._only_metadata(c, targets, skip, fn)):
            ev("calib", labs_args | recv, call=last)
        elif READ.search(last) and {"train", "val"} & norm(labs_args | recv):
            ev("read", labs_args | recv, call=last)
        callees = [(f, flow.bind(c, f, skip, fn)) for f in targets]
        for f, pos, kw in callback_sites(c, fn, flow):  # `timed(eval_val, m, d)`, `opt.step(closure)`
            if f not in targets:
                callees.append((f, bind_params(f, pos, kw, lambda a: flow.L(a, fn))))
        site_keys = self._site
        choices = chosen_functions(c, fn, flow) if not targets or c.qual in fn.assigns else []
        for f, bound in callees:
            self.inlined.add(f.qual)
            sub = self.trace(f)
            site = (fn.path, line, f"calls {f.qual}()")
            params = set(f.params)
            key = id(c.node)
            dead = f in targets and self._dead_site(f, site_keys)  # a callback's result flows through its helper
            chosen = [Guard(t, pol, fn.path, line, len(loops), "if", fn.qual) for g, t, pol in choices if g is f and t is not None]
            for e in sub:
                inner = tuple(replace(lp, ctx=(key,) + lp.ctx) for lp in e.loops)
                info = {**e.info, "unreported": True} if dead and e.kind in TYPED_KINDS else e.info
                out.append(replace(e, labels=_subst(e.labels, bound, params), loops=loops + inner,
                                   guards=guards + tuple(chosen[:1]) + tuple(_shift(g, len(loops)) for g in e.guards),
                                   nograd=e.nograd if e.nograd is not None else nograd, chain=(site,) + e.chain,
                                   info=info))
        self._site = site_keys

    def _dead_site(self, f: Function, site_keys: set) -> bool:
        """A call whose callee hands its score out only through its return value, here assigned
        to variables no reported number is made of (a diagnostic evaluation, a pass whose
        number was never submitted): its scores are not the reported score."""
        R = self.reported
        if R is None or f.qual in self.sink_fns:
            return False
        returns = ("r", f.qual) in R or any(k[:2] == ("r", f.qual) for k in R if k[0] == "r" and len(k) == 3)
        return returns and not (site_keys & R)

    def program(self, entry: Function, functions: list[Function] = ()) -> list[Event]:
        """The entry's events with context-free labels resolved: only labels that reach each
        event along its own call chain remain ("@" labels, merged over all callers, drop).

        A library module (its top level calls none of its functions) has no entry point: then
        every top-level function no other one calls is a root, in definition order."""
        events = self.trace(entry)
        if not self.inlined:
            roots = [f for f in functions if "." not in f.qual and not f.qual.startswith("<")]
            for f in roots:
                self.trace(f)
            for f in roots:
                if f.qual not in self.inlined:
                    events = events + self.memo.get(f.qual, [])
        return [replace(e, labels=_final_labels(e.labels)) for e in events]


def _final_labels(labels) -> frozenset:
    """Context-free labels of a resolved event. "val" marks any validation data (this
    iteration's or an earlier one's), "val:now" data of the current iteration; "vp:ID" stays
    for data from earlier iterations of loop ID."""
    out = {l for l in labels if l[0] != "@" and not l.startswith(("p:", "pv:"))}
    if "val" in out:
        out.add("val:now")
    elif any(l.startswith("vp:") for l in out):
        out.add("val")
    return frozenset(out)


def _subst(labels: frozenset, bound: dict, params: set) -> frozenset:
    """Instantiate a callee event's labels at one call site: p:x -> the labels of argument x."""
    out = set()
    for l in labels:
        if l.startswith("p:"):
            name = l[2:]
            if name in params:
                out |= bound.get(name, set())
            else:
                out.add(l)  # a closure's free variable: the enclosing call site resolves it
        elif l.startswith("pv:"):  # a parameter's value from an earlier iteration of a loop
            _, lid, name = l.split(":", 2)
            if name in params:
                out |= to_prior(bound.get(name, set()), int(lid))
            else:
                out.add(l)
        elif l[0] != "@":
            out.add(l)
    return frozenset(out)


def _shift(g: Guard, by: int) -> Guard:
    return replace(g, depth=g.depth + by) if by else g

