"""Reachability through higher-order calls (capability F).

Evaluation code is often run through a helper: `timed_eval("final", eval_val, model, val_data)`
calls `fn(*args)`; `functools.partial(eval_val, args)` builds a callable; `threading.Thread(
target=score_shard, args=(…))` runs one; a method is handed over as a callback
(`run_chunks(self.score_chunk)`). A tracer that follows only direct calls never reaches the
scoring (or the illegal adaptation) behind them.

Two views of the same facts:
- for the data flow (audit.static.flow, audit.static.slice): a call of a parameter (`fn(...)`)
  resolves to every function some call site passes for that parameter;
- for the order of events (audit.static.trace): at the call site that hands a function over,
  the function is inlined right there with the arguments that follow it (`timed(fn, *args)`,
  `partial(fn, *args)`, `Thread(target=fn, args=(...))`), so its events keep their place in the
  program's order (the helper's body is not traced once per callback).
"""
from __future__ import annotations

from audit.static.ir import Call, Function

PARTIAL = ("functools.partial", "partial")


def function_values(v, fn: Function, flow) -> list[Function]:
    """The program's own functions the value tree `v` denotes: a def's name, `self.method`,
    `obj.method` of a known class, `functools.partial(f, ...)`."""
    if v is None:
        return []
    if v[0] == "n":
        name = v[1]
        if name in fn.params:  # a parameter: whatever the callers pass (resolved separately)
            return []
        direct = [f for f in flow.scoped(name, fn)]
        if direct or name not in fn.assigns:
            return direct
        return [f for f, _, _ in _cst_functions(fn.assigns.get(name), fn, flow)]  # `run = partial(evaluate, m)`
    if v[0] == "a" and v[1] is not None and v[1][0] == "n":
        recv, attr = v[1][1], v[2]
        cls = fn.cls if recv == "self" and fn.is_method else flow.types.get(flow.key(fn, recv))
        if cls is not None:
            m = flow.methods.get((cls, attr))
            return [m] if m is not None else []
        return []
    if v[0] == "c" and (v[1].qual or "") in PARTIAL and v[1].args:
        return function_values(v[1].args[0], fn, flow)
    return []


def chosen_functions(c: Call, fn: Function, flow) -> list[tuple[Function, object, bool]]:
    """A call of a local bound once to functions: `eval_fn = eval_ttt if args.ttt else eval_sw;
    eval_fn(...)`, `score = functools.partial(eval_val, args); score(model)`. Each comes with the
    conditional test that chose it (None) and the branch (for the tracer's guards)."""
    q = c.qual
    if q is None or c.attr is not None or "." in q or q in fn.params:
        return []
    return _cst_functions(fn.assigns.get(q), fn, flow)


def _cst_functions(node, fn: Function, flow) -> list[tuple[Function, object, bool]]:
    """The functions a libcst expression denotes (a def's name, `a if c else b`, a partial,
    `self.method`), each with the conditional test that chose it and the branch."""
    import libcst as cst

    if node is None:
        return []
    out: list = []

    def walk(n, test, pol):
        if isinstance(n, cst.Name):
            out.extend((f, test, pol) for f in flow.scoped(n.value, fn) if f is not fn)
        elif isinstance(n, cst.IfExp):
            walk(n.body, n.test, True)
            walk(n.orelse, n.test, False)
        elif isinstance(n, cst.Call) and n.args and (_dotted(n.func) in PARTIAL):
            walk(n.args[0].value, test, pol)
        elif isinstance(n, cst.Attribute) and isinstance(n.value, cst.Name) and n.value.value == "self" and fn.cls:
            m = flow.methods.get((fn.cls, n.attr.value))
            if m is not None:
                out.append((m, test, pol))

    walk(node, None, True)
    return out


def _dotted(node) -> str:
    from audit.static.names import dotted

    return dotted(node) or ""


def callback_sites(c: Call, fn: Function, flow) -> list[tuple[Function, list, dict]]:
    """(function, positional args, keyword args) for each function `c` hands over: the
    arguments that follow it in the call (or `args=`/`kwargs=` of a Thread-like call)."""
    out = []
    for i, a in enumerate(c.args):
        for f in function_values(a, fn, flow):
            out.append((f, list(c.args[i + 1:]), {k: v for k, v in c.kwargs.items()}))
    target = c.kwargs.get("target")
    if target is not None:
        packed = c.kwargs.get("args")
        pos = list(packed[1]) if packed is not None and packed[0] == "u" else ([packed] if packed is not None else [])
        for f in function_values(target, fn, flow):
            out.append((f, pos, {}))
    return out


def bind_params(f: Function, args: list, kwargs: dict, labels) -> dict:
    """Parameter -> labels for a callback called with `args`/`kwargs` (self skipped)."""
    params = f.params[1:] if f.is_method and f.params and f.params[0] in ("self", "cls") else f.params
    bound = {}
    for p, a in zip(params, args):
        bound[p] = labels(a)
    for k, a in kwargs.items():
        if k in f.params:
            bound[k] = labels(a)
    return bound


def parameter_bindings(modules, flow) -> dict[tuple[str, str], list[Function]]:
    """(function, parameter) -> the functions call sites pass for it (`timed(eval_val, …)`
    binds timed's `fn` to eval_val): a call of that parameter reaches them. Also fills
    `flow.called` with every function some call site reaches directly."""
    out: dict[tuple[str, str], list[Function]] = {}
    for m in modules:
        for fn in m.functions.values():
            for c, guards in _calls(fn.body):
                targets, skip = flow.resolve(c, fn, higher_order=False)
                flow.called.update(t.qual for t in targets)
                if not targets:
                    continue
                _record_arguments(c, fn, targets, skip, flow, guards)
                for i, a in enumerate(c.args):
                    fs = function_values(a, fn, flow)
                    if not fs:
                        continue
                    for t in targets:
                        params = t.params[skip:] if skip and t.params and t.params[0] in ("self", "cls") else t.params
                        if i < len(params):
                            got = out.setdefault((t.qual, params[i]), [])
                            got += [f for f in fs if f not in got]
                for k, a in c.kwargs.items():
                    fs = function_values(a, fn, flow)
                    for t in targets if fs else ():
                        if k in t.params:
                            got = out.setdefault((t.qual, k), [])
                            got += [f for f in fs if f not in got]
    return out


def _record_arguments(c: Call, fn: Function, targets, skip: int, flow, guards: tuple) -> None:
    """flow.param_args[(callee, param)] += (caller, the argument's libcst expression, or None when
    the site leaves the parameter at its default, the `if` guards around the site): constants a
    flag guard reads through a parameter (`evaluate(model, use_slot=args.slot_enabled)`) come
    from here, and a site under a guard that is off passes nothing."""
    positional = [a.value for a in c.node.args if a.keyword is None and a.star == ""]
    keywords = {a.keyword.value: a.value for a in c.node.args if a.keyword is not None}
    if any(a.star for a in c.node.args):
        return
    for t in targets:
        params = t.params[skip:] if skip and t.params and t.params[0] in ("self", "cls") else t.params
        for i, p in enumerate(params):
            node = positional[i] if i < len(positional) else keywords.get(p)
            flow.param_args.setdefault((t.qual, p), []).append((fn, node, guards))


def _calls(body):
    """Every call in a function body, with the `if` guards around it as (test, polarity) pairs:
    statements and value trees walked as plain data."""
    stack = [(body, ())]
    while stack:
        x, guards = stack.pop()
        if isinstance(x, Call):
            yield x, guards
            stack.extend((a, guards) for a in (*x.args, *x.kwargs.values(), x.recv))
        elif isinstance(x, tuple) and x and x[0] == "if":
            stack += [(x[2], guards), (x[3], guards + ((x[1], True),)), (x[4], guards + ((x[1], False),))]
        elif isinstance(x, (list, tuple)):
            stack.extend((y, guards) for y in x)
