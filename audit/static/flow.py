"""Where validation and training tokens flow: a label fixpoint over the module IR.

Labels on values:
  val     derived from validation tokens (a `fineweb_val_*` path, a `val_tokens`-like name,
          or anything computed from one: slices, `.to()/.view()`, model outputs, losses)
  vp:ID   validation tokens from an earlier iteration of loop ID (a loop-carried `prev` chunk,
          `chunks[k - 1]`): already scored there, so learning from them is score-first (C3).
          Set only while the tracer walks a loop; resolved events carry "val" for either kind
          and "val:now" when this iteration's tokens are in it (trace._final_labels)
  train   derived from training shards
  target  the shifted half of a validation sequence (`chunk[1:]`), the token being scored
  thash   arithmetic that mixes the target into a key (`(ctx * P + y) % M`)
  tkeyed  a table read keyed by such a hash (an n-gram count for the target)
  tprob   a value indexed by the target (`probs.gather(-1, y)`, `p[..., y]`)
  hkey    arithmetic that hashes a key (`(ctx * P + tok) % M`, `h ^ t`), target or not
  hcount  a read of a count table (one the program adds counts to) at a hashed key: under
          collisions such counts over the vocabulary need not add up to the context's count
  tcount  such a count taken at the target (`pair_c.gather(-1, y)`): the numerator of an n-gram
          estimate of the target

Context-insensitive and flow-insensitive within a function (a name's labels are the union over
all its assignments), interprocedural through parameters and returns of the file's own
functions (and helper modules beside it). Sound enough to find where tokens go; the rules
decide what the ordering means.
"""
from __future__ import annotations

import re
from typing import Any

from audit.static.callbacks import chosen_functions, parameter_bindings
from audit.static.count_tables import table_root_of, table_roots
from audit.static.ir import Call, Function, ModuleIR
from audit.static.normalisation import type_of_call
from audit.static.offsets import earlier

VAL_STRING = re.compile(r"fineweb_val|(^|[/_])val_[0-9]*\*?\.bin|_val_\*|/val\b")
TRAIN_STRING = re.compile(r"fineweb_train|(^|[/_])train_[0-9]*\*?\.bin|_train_\*")
VAL_NAME = re.compile(r"^_*(val|valid|validation|eval)_(tokens?|toks|data|ids|seqs?|stream|files|set|chunks?)$")
TRAIN_NAME = re.compile(r"^_*train_(tokens|toks|files|data|stream|shards?|loader|batch(es)?)$")
VAL_CALL = re.compile(r"(^|_)(load_val|load_validation|get_val|val_tokens|validation_tokens)")
TARGET_NAMES = frozenset({"y", "yb", "y_batch", "target", "targets", "tgt", "tgts", "tgt_ids", "target_ids",
                          "labels", "target_tokens", "next_tokens", "y_tok", "ys"})
SPECIAL = frozenset({"target", "thash", "tkeyed", "tprob", "shift", "dist", "vred", "hkey", "hcount", "tcount",
                     "@target", "@thash", "@tkeyed", "@tprob", "@shift", "@dist", "@vred", "@hkey", "@hcount", "@tcount"})


def norm(labels) -> frozenset:
    """Plain labels: "@val" (val reaching a parameter from some caller) counts as val; symbols drop."""
    return frozenset(l[1:] if l[0] == "@" else l for l in labels if not l.startswith("p:"))


def has(labels, name: str) -> bool:
    return name in labels or ("@" + name) in labels


def to_param(labels) -> set:
    return {l if l[0] == "@" else "@" + l for l in labels if not l.startswith("p:")}


def is_val(labels) -> bool:
    """Validation data of this iteration ("val") or of an earlier iteration of a loop ("vp:ID")."""
    if "val" in labels or "@val" in labels:
        return True
    return any(l.startswith(("vp:", "@vp:")) for l in labels)


def to_prior(labels, loop_id: int) -> set:
    """The labels of a value that comes from an earlier iteration of loop `loop_id` (a name the
    loop body assigns, read before this iteration assigns it; `chunks[k - 1]`): its validation
    tokens are already-scored ones ("vp:ID"); a parameter symbol p:x becomes pv:ID:x, which the
    call site resolves to the prior form of the argument's labels."""
    out = set()
    for l in labels:
        if l == "val":
            out.add(f"vp:{loop_id}")
        elif l == "@val":
            out.add(f"@vp:{loop_id}")
        elif l.startswith("p:"):
            out.add(f"pv:{loop_id}:{l[2:]}")
        else:
            out.add(l)
    return out
HASH_OPS = frozenset({"BitXor", "Multiply", "Modulo", "LeftShift", "RightShift", "BitAnd", "BitOr"})
# calls that keep target-ness (conversions/elementwise); any other call drops the special labels
KEEP_SPECIAL = frozenset({"long", "int", "to", "view", "reshape", "flatten", "cuda", "cpu", "contiguous", "unsqueeze",
                          "squeeze", "clone", "detach", "float", "double", "half", "bfloat16", "log", "exp", "clamp",
                          "clamp_min", "clamp_max", "tolist", "numpy", "as_tensor", "tensor", "from_numpy", "item",
                          "abs", "neg", "type", "view_as", "expand", "expand_as", "log1p", "sqrt", "max", "maximum",
                          "astype", "minimum", "min", "where", "clip", "copy", "float32", "float64", "int64", "uint64",
                          "array", "asarray", "sum", "mean", "pow", "reciprocal", "cat", "stack", "concatenate",
                          "hstack", "vstack", "column_stack", "softmax", "log_softmax", "amax", "nansum", "neg",
                          "logsumexp", "logaddexp"})
STOP_CALLS = frozenset({"len", "isinstance", "print", "type", "id", "hasattr", "callable", "log0", "logger.info",
                        "time.time", "time.perf_counter", "numel", "dim", "size"})
MUTATORS = frozenset({"append", "extend", "copy_", "add_", "insert", "update", "put", "index_add_", "scatter_add_",
                      "index_copy_", "scatter_", "setdefault", "push", "fill_"})
EMPTY: frozenset = frozenset()
GENERIC_ATTRS = frozenset({"data", "grad", "weight", "bias", "T", "mT", "real", "imag"})


class Flow:
    """Labels for every variable of one program (a main module plus its helper modules)."""

    def __init__(self, modules: list[ModuleIR]):
        self.modules = modules
        self.env: dict[tuple, set] = {}
        self.changed = False
        self.by_name: dict[str, list[Function]] = {}
        self.module_funcs: dict[str, dict[str, Function]] = {}
        self.constants: dict[str, str] = {}
        self.class_inits: dict[str, Function] = {}
        self.class_names: set[str] = set()
        for m in modules:
            for f in m.functions.values():
                if f.name.startswith("<"):
                    continue
                self.by_name.setdefault(f.name, []).append(f)
                if m.module_name and not f.is_method and "." not in f.qual:
                    for key in {m.module_name, m.module_name.rsplit(".", 1)[-1]}:
                        self.module_funcs.setdefault(key, {})[f.name] = f
                if f.name == "__init__" and f.cls:
                    self.class_inits[f.cls] = f
            for f in m.functions.values():
                if f.name == "<class>" and f.cls:
                    self.class_names.add(f.cls)
            self.constants.update(m.constants)
        self.aliases_of = {m.path: m.aliases for m in modules}
        self.table_roots = table_roots([f for m in modules for f in m.functions.values()])  # count tables
        self.types: dict[tuple, str] = {}  # variable key -> class it was constructed from
        self._reads: set = set()
        self.override: dict | None = None  # set by the tracer: flow-sensitive locals of one function
        self.override_fn: Function | None = None
        self.loopvars: dict[str, int] = {}  # set by the tracer: loop variable -> its loop's id
        self._earlier: dict = {}  # (slice, function, loop variables) -> offsets.earlier(...)
        self.tuple_len: dict[str, int] = {}  # functions whose every return is a k-tuple literal
        for m in modules:
            for f in m.functions.values():
                lens = _return_lengths(f.body)
                if lens and len(lens) == 1 and None not in lens:
                    self.tuple_len[f.qual] = lens.pop()
        self._changed_keys: set = set()
        self.methods: dict[tuple[str, str], Function] = {}
        for m in modules:
            for f in m.functions.values():
                if f.is_method and f.cls:
                    self.methods[(f.cls, f.name)] = f
        self.fparams: dict = {}
        self.called: set[str] = set()  # functions some call site reaches (their params' names are not evidence)
        self.param_args: dict = {}  # (function, param) -> [(caller, argument expression or None)]
        self.fparams = parameter_bindings(modules, self)

    # -- resolution -------------------------------------------------------------------------
    def resolve(self, call: Call, fn: Function | None = None, higher_order: bool = True) -> tuple[list[Function], int]:
        """The file's own functions a call may reach, and how many leading params are implicit.
        With `higher_order`, a call of a parameter (`fn(*args)`) reaches every function a call
        site passes for it (audit.static.callbacks)."""
        q = call.qual
        if higher_order and q is not None and fn is not None and q in fn.params and call.attr is None:
            bound = self.fparams.get((fn.qual, q))
            if bound:
                return list(bound), 0
        if q is not None and fn is not None and call.attr is None and q in fn.assigns and q not in self.by_name:
            chosen = chosen_functions(call, fn, self)  # `eval_fn = a if c else b; eval_fn(...)`
            if chosen:
                return [f for f, _, _ in chosen], 0
        if call.attr is not None and fn is not None and call.recv is not None and call.recv[0] == "n":
            cls = fn.cls if call.recv[1] == "self" and fn.is_method else self.types.get(self.key(fn, call.recv[1]))
            if cls is not None:
                m = self.methods.get((cls, call.attr))
                return ([m], 1) if m is not None else ([], 0)
        if q is not None and "." in q and call.attr is None:  # `from helper import f; f()`
            head, _, name = q.rpartition(".")
            mod = self.module_funcs.get(head)
            if mod is not None and name in mod:
                return [mod[name]], 0
        if q is not None and "." not in q:
            if q in self.class_inits:
                return [self.class_inits[q]], 1
            return self.scoped(q, fn), 0
        if call.attr is not None:
            if q is not None:
                head = q.rsplit(".", 1)[0]
                mod = self.module_funcs.get(head) or self.module_funcs.get(head.split(".")[-1])
                if mod is not None and call.attr in mod:
                    return [mod[call.attr]], 0
            fs = [f for f in self.by_name.get(call.attr, ()) if f.is_method]
            if 0 < len(fs) <= 2 and not call.attr.startswith("__"):
                return fs, 1
        return [], 0

    def scoped(self, name: str, fn: Function | None) -> list[Function]:
        """Functions a plain name can call from `fn`, by Python scoping: a nested def of the
        scope that binds the name, else a top-level def (a parameter named like some nested
        function elsewhere is not that function)."""
        cands = [f for f in self.by_name.get(name, ()) if not f.is_method]
        scope = fn
        while scope is not None and scope.qual != "<module>":
            if name in scope.locals:
                return [f for f in cands if f.parent is scope]
            scope = scope.parent
        return [f for f in cands if f.parent is None]

    # -- labels ------------------------------------------------------------------------------
    def key(self, fn: Function, name: str) -> tuple:
        f = fn
        while f is not None:
            if f.qual != "<module>" and name in f.locals:
                return ("l", f.qual, name)
            f = f.parent
        return ("g", name)

    def get(self, k) -> set:
        self._reads.add(k)
        return self.env.get(k, EMPTY)

    def add(self, k, labels) -> None:
        if not labels:
            return
        cur = self.env.get(k)
        if cur is None:
            self.env[k] = set(labels)
        elif not labels <= cur:
            cur |= labels
        else:
            return
        self.changed = True
        self._changed_keys.add(k)

    def L(self, v: Any, fn: Function) -> set:
        if v is None:
            return EMPTY
        tag = v[0]
        if tag == "n":
            name = v[1]
            ov = self.override
            if ov is not None and fn is self.override_fn and name in ov:
                out = ov[name]  # the value of the latest assignment on this path (tracer)
            else:
                out = self.get(self.key(fn, name))
            hint = _HINTS.get(name)
            if hint is None:
                hint = _HINTS[name] = _name_hint(name)
            if hint and not (name in fn.params and fn.qual in self.called):
                out = out | hint  # a parameter's name says nothing when its callers are known
            const = self.constants.get(name) if name not in fn.locals or fn.qual == "<module>" else None
            if const is not None:
                out = out | _string_labels(const)
            if (name in TARGET_NAMES or _target_named(name)) and is_val(out):
                out = out | {"target"}
            return out
        if tag == "a":
            out = self.L(v[1], fn) if v[2] in GENERIC_ATTRS else self.L(v[1], fn) | self.attr_labels(v, fn)
            hint = _HINTS.get(v[2])
            if hint is None:
                hint = _HINTS[v[2]] = _name_hint(v[2])
            return out | hint if hint else out
        if tag == "s":
            return _string_labels(v[1])
        if tag == "c":
            return self.call_labels(v[1], fn)
        if tag == "i":
            base = self.L(v[1], fn)
            idx = self.L(v[2], fn)
            if self.loopvars and fn is self.override_fn and is_val(base):  # `chunks[k - 1]`
                key = (id(v[3]), fn.qual, tuple(self.loopvars))
                back = self._earlier.get(key)
                if back is None:
                    back = self._earlier[key] = earlier(v[3], fn.assigns, self.loopvars)
                if back:
                    base = to_prior(base, self.loopvars[min(back)])
            out = base | (idx - SPECIAL)
            if has(idx, "hkey") and table_root_of(v) in self.table_roots:
                out = out | {"hcount"}
            if has(idx, "shift") and is_val(base):
                out = out | {"target"}
            elif has(idx, "target"):
                out = out | ({"tkeyed"} if has(idx, "thash") else {"tprob"})
                if has(base, "hcount"):
                    out = out | {"tcount"}
            return out
        if tag == "t":
            inner = self.L(v[1], fn)
            return inner | {"target"} if is_val(inner) else inner
        if tag == "shift":
            return self.L(v[1], fn) | {"shift"}
        if tag == "b":
            left, right = self.L(v[2], fn), self.L(v[3], fn)
            out = left | right
            if v[1] == "Subtract":
                out = out - {"shift", "@shift"}
            if v[1] in HASH_OPS and (has(left, "target") or has(right, "target")) and not has(out, "tprob") \
                    and (v[1] != "Multiply" or _hash_constant(v[2]) or _hash_constant(v[3])):
                out = out | {"thash"}
            if v[1] in ("Modulo", "BitAnd", "BitXor"):  # folding a key into a table's buckets
                out = out | {"hkey"}
            return out
        if tag == "u":
            out: set = set()
            for p in v[1]:
                out |= self.L(p, fn)
            return out
        if tag == "walrus":
            lab = self.L(v[2], fn)
            if v[1]:
                self.add(self.key(fn, v[1]), lab)
            return lab
        return EMPTY

    def call_labels(self, c: Call, fn: Function) -> set:
        q = c.qual or ""
        last = c.last
        if q in STOP_CALLS or last in ("numel", "size", "dim", "element_size", "__len__"):
            for a in c.args:  # still evaluate for walrus/param side effects
                self.L(a, fn)
            return EMPTY
        targets, skip = self.resolve(c, fn)
        arg_labels = [self.L(a, fn) for a in c.args]
        kw_labels = {k: self.L(v, fn) for k, v in c.kwargs.items()}
        recv = self.L(c.recv, fn) if c.recv is not None else EMPTY
        if targets:
            out: set = set()
            for f in targets:
                params = f.params[skip:] if skip and f.params and f.params[0] in ("self", "cls") else f.params
                bound: dict[str, set] = {}
                for i, lab in enumerate(arg_labels):
                    if i < len(params):
                        bound[params[i]] = lab
                        self.add(("l", f.qual, params[i]), to_param(lab))
                for k, lab in kw_labels.items():
                    if k in f.params:
                        bound[k] = lab
                        self.add(("l", f.qual, k), to_param(lab))
                if skip and f.params and f.params[0] == "self" and c.recv is not None:
                    bound["self"] = recv - SPECIAL
                    self.add(("l", f.qual, "self"), to_param(recv - SPECIAL))
                out |= self.instantiate(("r", f.qual), bound)
                if f.name == "__init__":
                    out = out | set().union(*arg_labels, *kw_labels.values()) - SPECIAL
            if VAL_CALL.search(last):
                out = out | {"val"}
            return out
        out = set(recv)
        for lab in arg_labels:
            out |= lab
        for lab in kw_labels.values():
            out |= lab
        if last in ("cross_entropy", "nll_loss") and any(has(lab, "target") for lab in arg_labels + list(kw_labels.values())):
            out = (out - SPECIAL) | {"tprob"}  # per-token -log p(target): the target's probability
        elif last in ("gather", "take_along_dim", "index_select") and any(has(lab, "target") for lab in arg_labels[1:] + list(kw_labels.values())):
            counts = has(recv | set().union(*arg_labels[:1]), "hcount")
            out = (out - SPECIAL) | {"tprob"} | ({"tcount"} if counts else set())
        elif last not in KEEP_SPECIAL:
            out = out - SPECIAL
        else:
            out = type_of_call(last, out, has)
        if VAL_CALL.search(last):
            out = out | {"val"}
        return out

    def bind(self, c: Call, f: Function, skip: int, fn: Function) -> dict[str, set]:
        """Raw labels of the arguments a call site passes to each parameter of `f`."""
        params = f.params[skip:] if skip and f.params and f.params[0] in ("self", "cls") else f.params
        bound: dict[str, set] = {}
        for i, a in enumerate(c.args):
            if i < len(params):
                bound[params[i]] = self.L(a, fn)
        for k, a in c.kwargs.items():
            if k in f.params:
                bound[k] = self.L(a, fn)
        if skip and f.params and f.params[0] == "self" and c.recv is not None:
            bound["self"] = self.L(c.recv, fn) - SPECIAL
        return bound

    def instantiate(self, key, bound: dict) -> set:
        """A callee's return summary at one call site: p:x -> the labels of argument x."""
        out: set = set()
        for l in self.get(key):
            if l.startswith("p:"):
                out |= bound.get(l[2:], EMPTY)
            elif l[0] != "@":
                out.add(l)
        return out

    def unpack_labels(self, n: int, c: Call, fn: Function) -> list[set] | None:
        """Per-element labels of `a, b = f(...)` when every f returns n-tuples."""
        targets, skip = self.resolve(c, fn)
        if not targets or any(self.tuple_len.get(f.qual) != n for f in targets):
            return None
        out = [set() for _ in range(n)]
        for f in targets:
            bound = self.bind(c, f, skip, fn)
            for i in range(n):
                out[i] |= self.instantiate(("r", f.qual, i), bound)
        return out

    def unpack(self, target, c: Call, fn: Function) -> bool:
        """`a, b = f(...)` where every f returns tuples: element i gets f's element i."""
        targets, skip = self.resolve(c, fn)
        elems = target[1]
        if not targets or any(self.tuple_len.get(f.qual) != len(elems) for f in targets):
            return False
        self.call_labels(c, fn)  # parameters still receive the arguments
        for f in targets:
            bound = self.bind(c, f, skip, fn)
            for i, t in enumerate(elems):
                self.assign(t, self.instantiate(("r", f.qual, i), bound), fn)
        return True

    # -- statements --------------------------------------------------------------------------
    def assign(self, t, labels, fn: Function) -> None:
        if not labels:
            return
        kind = t[0]
        if kind == "n":
            k = self.key(fn, t[1])
            # a global is shared by every caller: store plain labels, not this function's symbols
            self.add(k, labels if k[0] == "l" else set(norm(labels)))
        elif kind == "a":
            if t[1] not in GENERIC_ATTRS:  # `p.data`, `w.grad`: every tensor has one, no shared field
                plain = set(norm(labels))
                self.add(("a", t[1]), plain)  # every write, for reads whose receiver is unknown
                cls = self.receiver_class(t[2] if len(t) > 2 else None, fn)
                if cls is not None:
                    self.add(("ac", cls, t[1]), plain)
                else:  # a write through an unknown receiver may reach any class's field
                    self.add(("a?", t[1]), plain)
        elif kind == "sub":
            self.assign(t[1], labels, fn)
        elif kind == "tuple":
            for e in t[1]:
                self.assign(e, labels, fn)

    def receiver_class(self, recv: str | None, fn: Function) -> str | None:
        """The class of a plain-name receiver: `self` in a method, or a variable built from one."""
        if recv is None:
            return None
        if recv == "self" and fn.is_method and fn.cls is not None:
            return fn.cls
        annotated = fn.param_types.get(recv)
        if annotated is not None and annotated in self.class_names:
            return annotated
        return self.types.get(self.key(fn, recv))

    def attr_labels(self, v, fn: Function) -> set:
        """Labels of an attribute read. Attributes are keyed by class where the receiver's class
        is known (`self.sums` in a Hessian collector is not `self.sums` of a score accumulator),
        plus whatever was written through receivers of unknown class; otherwise by name alone."""
        recv = v[1]
        cls = self.receiver_class(recv[1], fn) if recv is not None and recv[0] == "n" else None
        if cls is None:
            return self.get(("a", v[2]))
        return self.get(("ac", cls, v[2])) | self.get(("a?", v[2]))

    def root(self, v) -> tuple | None:
        """The assignable thing a mutating method call changes (`buf` in `buf[i].add_(x)`)."""
        while v is not None:
            if v[0] == "n":
                return ("n", v[1])
            if v[0] == "a":
                recv = v[1]
                return ("a", v[2], recv[1] if recv is not None and recv[0] == "n" else None)
            if v[0] in ("i", "t"):
                v = v[1]
                continue
            return None
        return None

    def stmts(self, body: list, fn: Function) -> None:
        for s in body:
            tag = s[0]
            if tag == "assign":
                v = s[2]
                if s[1][0] == "tuple" and v is not None and v[0] == "c" and self.unpack(s[1], v[1], fn):
                    continue
                self.assign(s[1], self.L(s[2], fn), fn)
                if v is not None and v[0] == "c" and v[1].qual in self.class_names and s[1][0] == "n":
                    self.types[self.key(fn, s[1][1])] = v[1].qual
            elif tag == "aug":
                self.assign(s[1], self.L(s[3], fn), fn)
            elif tag == "expr":
                self.expr_stmt(s[1], fn)
            elif tag == "ret":
                self.add(("r", fn.qual), self.L(s[1], fn))
                if s[2] is not None:  # `return model, val_loss`: keep the elements apart
                    for i, e in enumerate(s[2]):
                        self.add(("r", fn.qual, i), self.L(e, fn))
            elif tag == "for":
                self.assign(s[1], self.L(s[2], fn), fn)
                self.stmts(s[3], fn)
                self.stmts(s[4], fn)
            elif tag == "while":
                self.L(s[1], fn)
                self.stmts(s[2], fn)
            elif tag == "if":
                self.L(s[2], fn)
                self.stmts(s[3], fn)
                self.stmts(s[4], fn)
            elif tag == "with":
                for v, t in s[2]:
                    lab = self.L(v, fn)
                    if t is not None:
                        self.assign(t, lab, fn)
                self.stmts(s[3], fn)
            elif tag == "block":
                self.stmts(s[1], fn)

    def expr_stmt(self, v, fn: Function) -> None:
        self.L(v, fn)  # evaluated for its calls: arguments flow into the callees' parameters
        if v is not None and v[0] == "c":
            c: Call = v[1]
            if c.attr in MUTATORS and c.recv is not None:
                r = self.root(c.recv)
                if r is not None:
                    args = set()
                    for a in c.args:
                        args |= self.L(a, fn)
                    self.assign(r, args, fn)
        return None

    def run(self, max_rounds: int = 10) -> int:
        """Chaotic iteration with a worklist: after the first round, a function is re-analysed
        only if a key it read (its params, a callee's return, a global, an attribute) changed."""
        funcs = [f for m in self.modules for f in m.functions.values()]
        for f in funcs:
            for p in f.params:
                self.env[("l", f.qual, p)] = {"p:" + p}
        reads: dict[str, set] = {}
        dirty = None  # None: everything
        for rounds in range(1, max_rounds + 1):
            self._changed_keys = set()
            n_types = len(self.types)
            for f in funcs:
                if dirty is not None and reads.get(f.qual, EMPTY).isdisjoint(dirty):
                    continue
                self._reads = set()
                self.stmts(f.body, f)
                reads[f.qual] = self._reads
            if not self._changed_keys and len(self.types) == n_types:
                return rounds
            dirty = None if len(self.types) != n_types else self._changed_keys
        return max_rounds


_HINTS: dict[str, frozenset] = {}


_TARGET_NAME = re.compile(r"^(y|yb|ys)(_|$)|(^|_)(tgts?|targets?|labels|next_toks?|next_tokens?)(_|$)")
_NOT_TOKENS = re.compile(r"byte|count|cnt|len|size|mb\b|bpb|loss|time|step|mask|prob|logit|nll|lr\b", re.I)


def _target_named(name: str) -> bool:
    """`scored_tgt`, `all_tgt`, `y_row`, `targets_gpu`: named as the tokens being predicted."""
    return bool(_TARGET_NAME.search(name)) and not _NOT_TOKENS.search(name)


def _hash_constant(v) -> bool:
    """A multiplier that makes a product a hash: a number literal (None in the IR) or an
    UPPERCASE constant (`PRIME`, `PRIMES[k]`); `[y] * pad` repeats a list, it hashes nothing."""
    if v is None:
        return True
    while v[0] in ("i", "a"):
        v = v[1]
        if v is None:
            return False
    return v[0] == "n" and v[1].lstrip("_").isupper()


def _name_hint(name: str) -> frozenset:
    """Labels a name implies on its own (`val_tokens` holds validation tokens)."""
    if VAL_NAME.match(name):
        return frozenset({"val"})
    if TRAIN_NAME.match(name):
        return frozenset({"train"})
    return EMPTY


def _string_labels(s: str) -> set:
    if "fineweb_val" in s or VAL_STRING.search(s):
        return {"val"}
    if "fineweb_train" in s or TRAIN_STRING.search(s):
        return {"train"}
    return EMPTY


def _return_lengths(body) -> set:
    out: set = set()
    for s in body:
        tag = s[0]
        if tag == "ret":
            out.add(len(s[2]) if s[2] is not None else None)
        elif tag in ("for", "if"):
            out |= _return_lengths(s[3]) | _return_lengths(s[4])
        elif tag == "while":
            out |= _return_lengths(s[2])
        elif tag == "with":
            out |= _return_lengths(s[3])
        elif tag == "block":
            out |= _return_lengths(s[1])
    return out
