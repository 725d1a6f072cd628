"""What a function body assigns, mutates and backpropagates, read statically from the IR: the
names a loop iteration hands to the next one, the losses `.backward()` is called on, how a
parameter is used. The tracer (audit.static.trace) asks these questions at loop heads and calls.
"""
from __future__ import annotations

from audit.static.flow import MUTATORS
from audit.static.ir import sub_bodies, value_nodes


def bound_names(t) -> tuple:
    if t[0] == "n":
        return (t[1],)
    if t[0] == "tuple":
        return tuple(n for e in t[1] for n in bound_names(e))
    return ()


def root_is_name(t) -> bool:
    while t[0] == "sub":
        t = t[1]
    return t[0] == "n"


def target_name(t) -> str | None:
    while t[0] == "sub":
        t = t[1]
    return t[1] if t[0] in ("n", "a") else None


def reads_name(v, name) -> bool:
    if v is None:
        return False
    if v[0] == "n":
        return v[1] == name
    if v[0] == "b":
        return reads_name(v[2], name) or reads_name(v[3], name)
    return False


def names_read(v) -> set:
    return {x[1] for x in value_nodes(v) if x[0] == "n"}


def collect_backward(body, out: set) -> None:
    """Names whose value is backpropagated somewhere in this function (`loss` in loss.backward()),
    and the names computed from them (`batch_loss_sum = loss.detach() * n`)."""
    direct_backward(body, out)
    assigns: list = []
    assignments(body, assigns)
    changed = True
    while changed:
        changed = False
        for target, v in assigns:
            if target not in out and names_read(v) & out:
                out.add(target)
                changed = True


def assignments_list(body) -> list:
    out: list = []
    assignments(body, out)
    return out


def mutated(body) -> list:
    """(name, value) for each in-place change in a body: `buf.append(x)`, `buf[i] = x`."""
    out: list = []
    for s in body:
        tag = s[0]
        if tag == "expr" and s[1] is not None and s[1][0] == "c":
            c = s[1][1]
            if c.attr in MUTATORS and c.recv is not None:
                v = c.recv
                while v is not None and v[0] in ("i", "t"):
                    v = v[1]
                if v is not None and v[0] == "n":
                    out += [(v[1], a) for a in c.args] or [(v[1], None)]
        elif tag == "assign" and s[1][0] == "sub":
            n = target_name(s[1])
            if n:
                out.append((n, s[2]))
        for sub in sub_bodies(s):
            out += mutated(sub)
    return out


def tuple_writes(body) -> list:
    """(name, value) for `a, b = value` anywhere in a body (`x, y = chunk[:-1], chunk[1:]` is
    split by the IR into plain assignments already)."""
    out: list = []
    for s in body:
        if s[0] == "assign" and s[1][0] == "tuple":
            out += [(n, s[2]) for n in bound_names(s[1])]
        for sub in sub_bodies(s):
            out += tuple_writes(sub)
    return out


SAME_DATA = frozenset({"clone", "detach", "to", "cpu", "cuda", "contiguous", "long", "int"})


def this_iteration_value(v, here: set) -> bool:
    """A value the loop body hands to the next iteration as "already scored": a name the body
    itself binds (`prev = chunk`, `scored.append(chunk)`), maybe copied (`chunk.clone()`).
    Anything computed afresh (`val_tokens[(k + 1) * n:...]`, a prefetched next chunk) is not."""
    while v is not None and v[0] == "c" and v[1].attr in SAME_DATA and v[1].recv is not None:
        v = v[1].recv
    return v is None or (v[0] == "n" and v[1] in here)


def assignments(body, out: list) -> None:
    for s in body:
        tag = s[0]
        if tag == "assign" and s[1][0] == "n":
            out.append((s[1][1], s[2]))
        elif tag == "aug" and s[1][0] == "n":
            out.append((s[1][1], s[3]))
        for sub in sub_bodies(s):
            assignments(sub, out)


def direct_backward(body, out: set) -> None:
    for s in body:
        tag = s[0]
        vals = []
        if tag in ("expr", "ret"):
            vals = [s[1]]
        elif tag == "assign":
            vals = [s[2]]
        for v in vals:
            for c in calls_in(v, through_attrs=False):
                if c.attr == "backward" and c.recv is not None:
                    out |= names_read(c.recv)
        for sub in sub_bodies(s):
            direct_backward(sub, out)


def param_uses(body, name: str) -> list:
    """How a function body reads `name`: the attribute read off it, or None for a direct use."""
    uses: list = []

    def walk(v, parent_attr=None):
        if v is None:
            return
        tag = v[0]
        if tag == "n":
            if v[1] == name:
                uses.append(parent_attr)
        elif tag == "a":
            if v[1] is not None and v[1][0] == "n" and v[1][1] == name:
                uses.append(v[2])
            else:
                walk(v[1])
        elif tag == "c":
            c = v[1]
            walk(c.recv)
            for a in c.args:
                walk(a)
            for a in c.kwargs.values():
                walk(a)
        elif tag in ("t", "shift"):
            walk(v[1])
        elif tag == "i":
            walk(v[1])
            walk(v[2])
        elif tag == "b":
            walk(v[2])
            walk(v[3])
        elif tag == "u":
            for p in v[1]:
                walk(p)
        elif tag == "walrus":
            walk(v[2])

    def stmts(ss):
        for s in ss:
            tag = s[0]
            if tag == "assign":
                walk(s[2])
            elif tag == "aug":
                walk(s[3])
            elif tag in ("expr", "ret"):
                walk(s[1])
            elif tag == "for":
                walk(s[2]); stmts(s[3]); stmts(s[4])  # noqa: E702
            elif tag == "while":
                walk(s[1]); stmts(s[2])  # noqa: E702
            elif tag == "if":
                walk(s[2]); stmts(s[3]); stmts(s[4])  # noqa: E702
            elif tag == "with":
                for v, _ in s[2]:
                    walk(v)
                stmts(s[3])
            elif tag == "block":
                stmts(s[1])

    stmts(body)
    return uses


def loop_targets(body) -> list[str]:
    out: list[str] = []
    for s in body:
        tag = s[0]
        if tag == "for":
            out += list(bound_names(s[1]))
        if tag == "assign" and s[1][0] == "tuple":
            out += list(bound_names(s[1]))
        for sub in sub_bodies(s):
            out += loop_targets(sub)
    return out

def calls_in(v, through_attrs: bool = True):
    """Every call in a value tree: its arguments, its receiver, the parts of unions, and (with
    `through_attrs`) the bases of attribute, subscript and shift values."""
    stack = [v]
    while stack:
        x = stack.pop()
        if x is None:
            continue
        if x[0] == "c":
            c = x[1]
            yield c
            stack.extend(c.args)
            stack.append(c.recv)
        elif through_attrs and x[0] in ("a", "t", "shift"):
            stack.append(x[1])
        elif x[0] == "u":
            stack.extend(x[1])

def has_call(v, names) -> bool:
    return any(c.last in names for c in calls_in(v))
