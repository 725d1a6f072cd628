"""A compact intermediate form of one module, built in one pass over the libcst tree.

Why not analyse the libcst tree directly: the data-flow fixpoint revisits every function several
times, and libcst nodes carry whitespace and parentheses we never need. Each function becomes a
list of statements whose expressions are small tuples ("value trees"):

    ("n", name)                 a variable read            ("a", recv, attr)  attribute read
    ("s", text)                 a string literal           ("c", call)        a call (see Call)
    ("i", value, index)         subscript with an index    ("t", value)       a `[1:]`-style slice
    (the libcst slice elements ride along as a 4th item, for audit.static.offsets)
    ("b", op, left, right)      binary operation           ("u", parts)       anything else: union
    None                        no data (numbers, `len(...)`, shapes)

Statements are tuples too, each carrying its line (from `positions.statement_positions`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from audit.static.names import qualify

# Calls whose result carries no data from their arguments (sizes, types, logging).
_STOP_ATTRS = {"shape", "numel", "size", "dtype", "device", "ndim", "dim", "is_cuda", "element_size", "nbytes", "item_size"}


@dataclass
class Call:
    qual: str | None  # qualified dotted name when the callee is a Name/Attribute chain
    attr: str | None  # the method name for `x.meth(...)`
    recv: Any  # value tree of the receiver (`x` in `x.meth()`), or None
    args: list  # value trees of positional args
    kwargs: dict  # keyword -> value tree
    arg_names: list  # plain Name of each positional arg (closures passed to `opt.step(closure)`)
    node: cst.Call
    kw_literals: dict = field(default_factory=dict)  # keyword -> literal python value when simple

    @property
    def last(self) -> str:
        """The called name's last part: `softmax` for `F.softmax(...)` and for `x.softmax(...)`."""
        return self.attr or (self.qual or "").rsplit(".", 1)[-1]


@dataclass
class Function:
    qual: str
    name: str
    params: list[str]
    body: list
    path: str
    line: int
    locals: set[str] = field(default_factory=set)
    nograd: bool | None = None  # @torch.no_grad()/@torch.inference_mode() decorator
    is_method: bool = False
    cls: str | None = None
    parent: "Function | None" = None  # the enclosing function, for closures
    assigns: dict = field(default_factory=dict)  # name -> its only assigned expression (None: several)
    all_assigns: dict = field(default_factory=dict)  # name -> every expression assigned to it
    param_types: dict = field(default_factory=dict)  # param -> class name its annotation names
    defaults: dict = field(default_factory=dict)  # param -> its default value (libcst expression)


def _annotated_class(node) -> str | None:
    """The class a parameter annotation names: `X`, `"X"`, `X | None`, `Optional[X]`."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.SimpleString):
        text = node.evaluated_value if isinstance(node.evaluated_value, str) else ""
        return text if text.isidentifier() else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        for side in (node.left, node.right):
            if not (isinstance(side, cst.Name) and side.value == "None"):
                return _annotated_class(side)
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and node.value.value == "Optional":
        return _annotated_class(node.slice[0].slice.value) if node.slice and isinstance(node.slice[0].slice, cst.Index) else None
    return None


@dataclass
class ModuleIR:
    path: str
    functions: dict[str, Function]  # qual -> Function; "<module>" is the top level
    by_name: dict[str, list[Function]]  # simple name -> definitions
    aliases: dict[str, str]
    constants: dict[str, str]  # module-level NAME = "string"
    class_attrs: dict[str, cst.BaseExpression]  # attribute name -> its value expression (config classes)
    module_name: str = ""


def _lit(node) -> Any:
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, (cst.Integer, cst.Float)):
        return fast_number(node)
    if isinstance(node, cst.SimpleString):
        return fast_string(node)
    if isinstance(node, cst.ConcatenatedString):
        try:
            return node.evaluated_value
        except Exception:
            return None
    return None


def fast_number(node):
    """int/float literal value without a compile per literal."""
    text = node.value.replace("_", "")
    try:
        return int(text, 0) if isinstance(node, cst.Integer) else float(text)
    except ValueError:
        try:
            return node.evaluated_value
        except Exception:
            return None


def fast_string(node: cst.SimpleString):
    """A string literal's value without `ast.literal_eval` (which compiles each literal and
    cost ~10% of the audit on the merged records); escapes still go the slow, exact way."""
    prefix = node.prefix.lower()
    quote = node.quote
    body = node.value[len(prefix) + len(quote): len(node.value) - len(quote)]
    if "b" not in prefix and ("\\" not in body or "r" in prefix):
        return body
    try:
        return node.evaluated_value
    except Exception:
        return None


class Builder:
    """Turns a libcst Module into a ModuleIR. One instance per module."""

    def __init__(self, module: cst.Module, path: str, positions: dict[int, tuple[int, int]], aliases: dict[str, str]):
        self.module = module
        self.path = path
        self.pos = positions
        self.aliases = aliases
        self.functions: dict[str, Function] = {}
        self.constants: dict[str, str] = {}
        self.class_attrs: dict[str, cst.BaseExpression] = {}
        self._line = 1
        self._fn: Function | None = None
        self._pending: list = []  # comprehension bindings, emitted before their statement
        self._renames: list[dict[str, str]] = []  # comprehension scopes
        self.literals: dict = {}

    # -- entry -------------------------------------------------------------------------------
    def build(self) -> ModuleIR:
        top = Function("<module>", "<module>", [], [], self.path, 1)
        self.functions["<module>"] = top
        self._fn = top
        top.body = self.block(self.module.body, prefix="")
        by_name: dict[str, list[Function]] = {}
        for f in self.functions.values():
            by_name.setdefault(f.name, []).append(f)
        return ModuleIR(self.path, self.functions, by_name, self.aliases, self.constants, self.class_attrs)

    def line_of(self, stmt) -> int:
        p = self.pos.get(id(stmt))
        if p is not None:
            self._line = p[0]
        return self._line

    # -- statements ----------------------------------------------------------------------------
    def block(self, body, prefix: str, cls: str | None = None) -> list:
        out: list = []
        for s in body:
            if isinstance(s, cst.SimpleStatementLine) or isinstance(s, cst.SimpleStatementSuite):
                for small in s.body:
                    self.small(small, out, prefix, cls)
            elif isinstance(s, cst.BaseSmallStatement):
                self.small(s, out, prefix, cls)
            else:
                self.compound(s, out, prefix, cls)
        return out

    def sub(self, node, prefix, cls=None) -> list:
        if node is None:
            return []
        if isinstance(node, (cst.Else, cst.Finally)):
            return self.sub(node.body, prefix, cls)
        if isinstance(node, cst.If):
            out: list = []
            self.compound(node, out, prefix, cls)
            return out
        return self.block(node.body, prefix, cls)

    def small(self, s, out: list, prefix: str, cls: str | None) -> None:
        self._flushing(self._small, s, out, prefix, cls)

    def _flushing(self, build, s, out: list, prefix: str, cls: str | None) -> None:
        """Run `build`, then put the comprehension bindings it met before its statement."""
        n0 = len(out)
        build(s, out, prefix, cls)
        if self._pending:
            out[n0:n0] = self._pending
            self._pending = []

    def _small(self, s, out: list, prefix: str, cls: str | None) -> None:
        line = self.line_of(s)
        fn = self._fn
        if isinstance(s, cst.Assign):
            v = self.vx(s.value)
            for t in s.targets:
                self._assign(t.target, s.value, v, out, line)
                tt = t.target
                if (fn.name == "__init__" and isinstance(tt, cst.Attribute) and isinstance(tt.value, cst.Name)
                        and tt.value.value == "self"):
                    self.class_attrs.setdefault(tt.attr.value, s.value)  # config read in __init__
                if isinstance(t.target, cst.Name):
                    name = t.target.value
                    fn.assigns[name] = s.value if name not in fn.assigns else None
                    fn.all_assigns.setdefault(name, []).append(s.value)
                elif isinstance(tt, (cst.Tuple, cst.List)):
                    pairs = isinstance(s.value, (cst.Tuple, cst.List)) and len(tt.elements) == len(s.value.elements)
                    for k, te in enumerate(tt.elements):  # `x, y = a[:-1], a[1:]`; `a, b = f()`
                        if isinstance(te.value, cst.Name):
                            name = te.value.value
                            ve = s.value.elements[k].value if pairs else None
                            fn.assigns[name] = ve if name not in fn.assigns and ve is not None else None
                            if ve is not None:
                                fn.all_assigns.setdefault(name, []).append(ve)
            if fn.qual == "<module>" and len(s.targets) == 1 and isinstance(s.targets[0].target, cst.Name):
                lit = _lit(s.value)
                if isinstance(lit, str):
                    self.constants[s.targets[0].target.value] = lit
                if lit is not None:  # minified scripts alias literals: `_B=True`
                    self.literals[s.targets[0].target.value] = lit
            if cls is not None:
                for t in s.targets:
                    if isinstance(t.target, cst.Name):
                        self.class_attrs[t.target.value] = s.value
                        out.append(("assign", ("a", t.target.value), v, line))
        elif isinstance(s, cst.AnnAssign):
            if s.value is not None:
                self._assign(s.target, s.value, self.vx(s.value), out, line)
                if cls is not None and isinstance(s.target, cst.Name):
                    self.class_attrs[s.target.value] = s.value
                    out.append(("assign", ("a", s.target.value), self.vx(s.value), line))
        elif isinstance(s, cst.AugAssign):
            t = self.tx(s.target)
            if isinstance(s.target, cst.Name):
                fn.assigns[s.target.value] = None  # several values: not a single binding
            out.append(("aug", t, type(s.operator).__name__, self.vx(s.value), line))
        elif isinstance(s, cst.Expr):
            out.append(("expr", self.vx(s.value), line))
        elif isinstance(s, cst.Return):
            elems = [self.vx(e.value) for e in s.value.elements] if isinstance(s.value, cst.Tuple) else None
            out.append(("ret", self.vx(s.value) if s.value is not None else None, elems, line))
        elif isinstance(s, (cst.Global, cst.Nonlocal)):
            for n in s.names:
                fn.locals.discard(n.name.value)
        elif isinstance(s, (cst.Assert, cst.Raise, cst.Del)):
            v = getattr(s, "test", None) or getattr(s, "exc", None)
            if v is not None:
                out.append(("expr", self.vx(v), line))

    def _assign(self, target, value_node, v, out, line) -> None:
        if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value_node, (cst.Tuple, cst.List)) and len(target.elements) == len(value_node.elements):
            for te, ve in zip(target.elements, value_node.elements):
                self._assign(te.value, ve.value, self.vx(ve.value), out, line)
            return
        out.append(("assign", self.tx(target), v, line))

    def _renamed(self, name: str) -> str:
        for scope in reversed(self._renames):
            if name in scope:
                return scope[name]
        return name

    def tx(self, t) -> tuple:
        """An assignment target: ("n", name) | ("a", attr, recv) | ("sub", target, index) | ("tuple", [..]).

        `recv` is the receiver's plain name (`self` in `self.sums = ...`) or None: the flow keys
        `self.<attr>` by class so two classes' same-named fields don't share labels."""
        if isinstance(t, cst.Name):
            name = self._renamed(t.value)
            self._fn.locals.add(name)
            return ("n", name)
        if isinstance(t, cst.Attribute):
            return ("a", t.attr.value, t.value.value if isinstance(t.value, cst.Name) else None)
        if isinstance(t, cst.Subscript):  # the index rides along: what a count table is keyed by
            idx = [self.vx(el.slice.value) for el in t.slice if isinstance(el.slice, cst.Index)]
            return ("sub", self.tx(t.value), ("u", tuple(i for i in idx if i is not None)) if idx else None)
        if isinstance(t, (cst.Tuple, cst.List)):
            return ("tuple", [self.tx(e.value) for e in t.elements])
        if isinstance(t, cst.StarredElement):
            return self.tx(t.value)
        return ("none",)

    def compound(self, s, out: list, prefix: str, cls: str | None) -> None:
        self._flushing(self._compound, s, out, prefix, cls)

    def _compound(self, s, out: list, prefix: str, cls: str | None) -> None:
        line = self.line_of(s)
        if isinstance(s, cst.FunctionDef):
            self.function(s, prefix, cls, line)
            self._fn.locals.add(s.name.value)
            out.append(("def", s.name.value, line))
        elif isinstance(s, cst.ClassDef):
            name = s.name.value
            saved = self._fn
            qual = f"{prefix}{name}"
            body_fn = Function(f"{qual}.<class>", "<class>", [], [], self.path, line, cls=name)
            self.functions[body_fn.qual] = body_fn
            self._fn = body_fn
            body_fn.body = self.sub(s.body, f"{qual}.", cls=name)
            self._fn = saved
            self._fn.locals.add(name)
            out.append(("class", name, body_fn.qual, line))
        elif isinstance(s, cst.If):
            out.append(("if", s.test, self.vx(s.test), self.sub(s.body, prefix, cls), self.sub(s.orelse, prefix, cls), line))
        elif isinstance(s, cst.For):
            it = self.vx(s.iter)
            t = self.tx(s.target)
            out.append(("for", t, it, self.sub(s.body, prefix, cls), self.sub(s.orelse, prefix, cls), line, id(s), s.iter))
        elif isinstance(s, cst.While):
            out.append(("while", self.vx(s.test), self.sub(s.body, prefix, cls), line, id(s), s.test))
        elif isinstance(s, cst.With):
            items = []
            mode = None
            for it in s.items:
                q = qualify(it.item.func if isinstance(it.item, cst.Call) else it.item, self.aliases) or ""
                if q.endswith(("no_grad", "inference_mode")):
                    mode = True
                elif q.endswith("enable_grad"):
                    mode = False
                t = self.tx(it.asname.name) if it.asname is not None else None
                items.append((self.vx(it.item), t))
            out.append(("with", mode, items, self.sub(s.body, prefix, cls), line))
        elif isinstance(s, (cst.Try, cst.TryStar)):
            body = self.sub(s.body, prefix, cls)
            for h in s.handlers:
                body += self.sub(h.body, prefix, cls)
            body += self.sub(s.orelse, prefix, cls) + self.sub(s.finalbody, prefix, cls)
            out.append(("block", body, line))
        elif isinstance(s, cst.Match):
            body = [("expr", self.vx(s.subject), line)]
            for c in s.cases:
                body += self.sub(c.body, prefix, cls)
            out.append(("block", body, line))

    def function(self, s: cst.FunctionDef, prefix: str, cls: str | None, line: int) -> None:
        name = s.name.value
        qual = f"{prefix}{name}"
        while qual in self.functions:
            qual += "'"
        params = [p.name.value for p in (*s.params.posonly_params, *s.params.params, *s.params.kwonly_params)]
        fn = Function(qual, name, params, [], self.path, line, set(params), is_method=cls is not None, cls=cls,
                      parent=self._fn if self._fn is not None and not self._fn.name.startswith("<") else None)
        for p in (*s.params.posonly_params, *s.params.params, *s.params.kwonly_params):
            if p.default is not None:
                fn.defaults[p.name.value] = p.default
            t = _annotated_class(p.annotation.annotation) if p.annotation is not None else None
            if t is not None:
                fn.param_types[p.name.value] = t
        for d in s.decorators:
            dq = qualify(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator, self.aliases) or ""
            if dq.endswith(("no_grad", "inference_mode")):
                fn.nograd = True
        self.functions[qual] = fn
        saved = self._fn
        self._fn = fn
        fn.body = self.sub(s.body, f"{qual}.", None)
        self._fn = saved

    # -- expressions ---------------------------------------------------------------------------
    def vx(self, e) -> Any:
        if e is None:
            return None
        if isinstance(e, cst.Name):
            return ("n", self._renamed(e.value))
        if isinstance(e, cst.Attribute):
            if e.attr.value in _STOP_ATTRS:
                return None
            return ("a", self.vx(e.value), e.attr.value)
        if isinstance(e, cst.Call):
            return self.call(e)
        if isinstance(e, (cst.SimpleString, cst.ConcatenatedString)):
            v = _lit(e)
            return ("s", v) if isinstance(v, str) else None
        if isinstance(e, cst.FormattedString):
            parts = [self.vx(p.expression) for p in e.parts if isinstance(p, cst.FormattedStringExpression)]
            text = "".join(p.value for p in e.parts if isinstance(p, cst.FormattedStringText))
            return ("u", tuple(p for p in parts if p is not None) + (("s", text),))
        if isinstance(e, cst.Subscript):
            base = self.vx(e.value)
            if len(e.slice) == 1 and isinstance(e.slice[0].slice, cst.Index):
                return ("i", base, self.vx(e.slice[0].slice.value), e.slice)
            idx = []
            shifted = False
            for el in e.slice:
                sl = el.slice
                if isinstance(sl, cst.Index):
                    idx.append(self.vx(sl.value))
                elif isinstance(sl, cst.Slice):
                    lo = sl.lower
                    if isinstance(lo, cst.Integer) and lo.value == "1" and sl.upper is None:
                        shifted = True
                    elif lo is not None and isinstance(lo, cst.BinaryOperation) and isinstance(lo.right, cst.Integer) and lo.right.value == "1" and isinstance(lo.operator, cst.Add):
                        shifted = True  # x[s + 1 : e + 1]
                    for b in (sl.lower, sl.upper):
                        if b is not None:
                            idx.append(self.vx(b))
            v = ("i", base, ("u", tuple(i for i in idx if i is not None)), e.slice)
            return ("t", v) if shifted else v
        if isinstance(e, cst.BinaryOperation):
            return ("b", type(e.operator).__name__, self.vx(e.left), self.vx(e.right))
        if isinstance(e, (cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis)):
            return None
        if isinstance(e, cst.Lambda):
            return self.vx(e.body)
        if isinstance(e, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            # comprehension variables are scoped to the comprehension (Python 3): give them
            # names of their own so `s` here is not the function's other `s`
            f = e.for_in
            parts = []
            scope: dict[str, str] = {}
            self._renames.append(scope)
            while f is not None:  # bind the comprehension targets like a for loop would
                iv = self.vx(f.iter)
                for n in _target_names(f.target):
                    scope[n] = f"{n}@{id(e)}"
                self._pending.append(("assign", self.tx(f.target), iv, self._line))
                parts += [iv] + [self.vx(c.test) for c in f.ifs]
                f = f.inner_for_in
            parts += [self.vx(e.key), self.vx(e.value)] if isinstance(e, cst.DictComp) else [self.vx(e.elt)]
            self._renames.pop()
            parts = [p for p in parts if p is not None]
            return ("u", tuple(parts)) if parts else None
        if isinstance(e, cst.NamedExpr):
            self.tx(e.target)
            return ("walrus", e.target.value if isinstance(e.target, cst.Name) else None, self.vx(e.value))
        kids = []
        for c in _expr_children(e):
            v = self.vx(c)
            if v is not None:
                kids.append(v)
        if not kids:
            return None
        return kids[0] if len(kids) == 1 else ("u", tuple(kids))

    def call(self, e: cst.Call):
        func = e.func
        qual = qualify(func, self.aliases)
        attr = func.attr.value if isinstance(func, cst.Attribute) else None
        recv = self.vx(func.value) if isinstance(func, cst.Attribute) else (None if isinstance(func, cst.Name) else self.vx(func))
        args, kwargs, names, lits = [], {}, [], {}
        for a in e.args:
            v = self.vx(a.value)
            if a.keyword is not None:
                kwargs[a.keyword.value] = v
                lit = _lit(a.value)
                if lit is None and isinstance(a.value, cst.Name):
                    lit = self.literals.get(a.value.value)
                lits[a.keyword.value] = lit
            else:
                args.append(v)
                names.append(a.value.value if isinstance(a.value, cst.Name) else None)
        out = ("c", Call(qual, attr, recv, args, kwargs, names, e, lits))
        first = e.args[0].value if e.args else None
        if (attr == "arange" or (qual or "").endswith("arange")) and isinstance(first, cst.BinaryOperation) \
                and isinstance(first.operator, cst.Add) and isinstance(first.right, cst.Integer) and first.right.value == "1":
            return ("shift", out)  # positions one ahead: indexing tokens with them selects the targets
        return out


def _target_names(t) -> list[str]:
    if isinstance(t, cst.Name):
        return [t.value]
    if isinstance(t, (cst.Tuple, cst.List)):
        return [n for el in t.elements for n in _target_names(el.value)]
    if isinstance(t, cst.StarredElement):
        return _target_names(t.value)
    return []


def _expr_children(e) -> list:
    if isinstance(e, (cst.UnaryOperation,)):
        return [e.expression]
    if isinstance(e, (cst.BooleanOperation,)):
        return [e.left, e.right]
    if isinstance(e, cst.Comparison):
        return [e.left, *[c.comparator for c in e.comparisons]]
    if isinstance(e, cst.IfExp):
        return [e.test, e.body, e.orelse]
    if isinstance(e, (cst.Tuple, cst.List, cst.Set)):
        return [el.value for el in e.elements]
    if isinstance(e, cst.Dict):
        out = []
        for el in e.elements:
            if isinstance(el, cst.DictElement):
                out += [el.key, el.value]
            else:
                out.append(el.value)
        return out
    if isinstance(e, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
        out = [e.key, e.value] if isinstance(e, cst.DictComp) else [e.elt]
        f = e.for_in
        while f is not None:
            out.append(f.iter)
            out += [c.test for c in f.ifs]
            f = f.inner_for_in
        return out
    if isinstance(e, (cst.Await, cst.StarredElement)):
        return [e.expression if isinstance(e, cst.Await) else e.value]
    if isinstance(e, cst.Yield):
        v = e.value
        return [v.item if isinstance(v, cst.From) else v] if v is not None else []
    return []


def build_module(module: cst.Module, path: str, positions, aliases) -> ModuleIR:
    return Builder(module, path, positions, aliases).build()


def value_nodes(v):
    """Every node of a value tree, outermost first: a call's receiver, arguments and keyword
    values, the parts of unions, the bases and indices of attributes, subscripts and operators.
    The one walk the analyses share (slice keys, call sites, count tables, selections)."""
    stack = [v]
    while stack:
        x = stack.pop()
        if not isinstance(x, tuple) or not x:
            continue
        yield x
        tag = x[0]
        if tag == "c":
            c = x[1]
            stack.extend(c.args)
            stack.extend(c.kwargs.values())
            stack.append(c.recv)
        elif tag in ("a", "t", "shift"):
            stack.append(x[1])
        elif tag == "i":
            stack.extend((x[1], x[2]))
        elif tag == "b":
            stack.extend((x[2], x[3]))
        elif tag == "u":
            stack.extend(x[1])
        elif tag == "walrus":
            stack.append(x[2])


def sub_bodies(s) -> tuple:
    """The nested statement lists of one IR statement (loop/if bodies, with, try blocks)."""
    tag = s[0]
    if tag in ("for", "if"):
        return (s[3], s[4])
    if tag == "while":
        return (s[2],)
    if tag == "with":
        return (s[3],)
    if tag == "block":
        return (s[1],)
    return ()
