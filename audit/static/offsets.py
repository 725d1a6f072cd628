"""Which blocks a subscript selects, relative to a loop variable: `chunks[k - 1]`,
`toks[(k - 1) * n : k * n + 1]`, or `toks[start:end]` with `start = (k - 1) * n` bound in
the same function. Used to tell "train on the previous, already scored chunk" (legal under
C3) from "train on this chunk before scoring it".

Index and slice bounds become small polynomials over names (`k * n - n + 1`); a local bound
once in its function is replaced by its expression. A subscript is *earlier* with respect to
loop variable k when everything it selects lies before the start of block k, plus at most
the one token that is the previous block's last target: a slice's exclusive upper bound is
`k * b + c - j * b` (j >= 0, c <= 1 when the block size b is symbolic, c <= 0 for b = 1), an
index is `k - j` (j >= 1). Anything the polynomial cannot express is not earlier.
"""
from __future__ import annotations

import libcst as cst

from audit.static.ir import fast_number
from audit.static.names import dotted

Poly = dict  # monomial (sorted tuple of names) -> int coefficient
_MAX_DEPTH = 4


def poly(e, assigns: dict, loopvars, depth: int = 0) -> Poly | None:
    if e is None:
        return None
    if isinstance(e, cst.Integer):
        v = fast_number(e)
        return {(): v} if isinstance(v, int) else None
    if isinstance(e, cst.Name):
        name = e.value
        bound = assigns.get(name)
        if name not in loopvars and bound is not None and depth < _MAX_DEPTH:
            return poly(bound, assigns, loopvars, depth + 1)
        return {(name,): 1}
    if isinstance(e, cst.Attribute):
        d = dotted(e)
        return {(d,): 1} if d else None
    if isinstance(e, cst.UnaryOperation) and isinstance(e.operator, cst.Minus):
        p = poly(e.expression, assigns, loopvars, depth)
        return None if p is None else {m: -c for m, c in p.items()}
    if isinstance(e, cst.BinaryOperation):
        a = poly(e.left, assigns, loopvars, depth)
        if a is None:
            return None
        b = poly(e.right, assigns, loopvars, depth)
        if b is None:
            return None
        if isinstance(e.operator, cst.Add):
            return _add(a, b, 1)
        if isinstance(e.operator, cst.Subtract):
            return _add(a, b, -1)
        if isinstance(e.operator, cst.Multiply):
            out: Poly = {}
            for ma, ca in a.items():
                for mb, cb in b.items():
                    m = tuple(sorted(ma + mb))
                    if len(m) > 2:
                        return None
                    out[m] = out.get(m, 0) + ca * cb
            return {m: c for m, c in out.items() if c}
    return None


def _add(a: Poly, b: Poly, sign: int) -> Poly:
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, 0) + sign * c
    return {m: c for m, c in out.items() if c}


def _block(p: Poly, k: str):
    """(block monomial, coefficient, rest) when p = coefficient * k * block + rest, rest free of k."""
    with_k = [(m, c) for m, c in p.items() if k in m]
    if len(with_k) != 1 or with_k[0][1] < 1:
        return None
    m = list(with_k[0][0])
    m.remove(k)
    if k in m:
        return None
    rest = {mm: c for mm, c in p.items() if k not in mm}
    return tuple(m), with_k[0][1], rest


def _upper_earlier(p: Poly | None, k: str) -> bool:
    """An exclusive upper bound at or before the start of block k (+1 token when blocks are
    longer than one: the previous block's last target, already scored)."""
    if p is None:
        return False
    got = _block(p, k)
    if got is None:
        return False
    block, coef, rest = got
    const = rest.pop((), 0)
    if block:  # k * n (+ c): symbolic block size
        steps = rest.pop(block, 0)  # k * n - j * n: j blocks further back
        return not rest and steps <= 0 and const <= 1
    return not rest and const <= (1 if coef > 1 else 0)  # k * 32768 + 1, or `[:k]`


def earlier(elements, assigns: dict, loopvars) -> set:
    """The loop variables k for which the subscript selects only what precedes block k."""
    out = set()
    for k in loopvars:
        hit = False
        ok = True
        for el in elements:
            sl = el.slice
            if isinstance(sl, cst.Index):
                p = poly(sl.value, assigns, loopvars)
                if p is None or not any(k in m for m in p):
                    if p is None and _mentions(sl.value, k):
                        ok = False
                    continue
                got = _block(p, k)
                if got is not None and got[:2] == ((), 1) and set(got[2]) <= {()} and got[2].get((), 0) <= -1:
                    hit = True
                else:
                    ok = False
            elif isinstance(sl, cst.Slice):
                up = poly(sl.upper, assigns, loopvars) if sl.upper is not None else None
                if _upper_earlier(up, k):
                    hit = True
                elif _mentions(sl.lower, k) or _mentions(sl.upper, k) or (up is not None and any(k in m for m in up)):
                    ok = False
        if hit and ok:
            out.add(k)
    return out


def _mentions(e, name: str) -> bool:
    stack = [e]
    while stack:
        x = stack.pop()
        if x is None:
            continue
        if isinstance(x, cst.Name):
            if x.value == name:
                return True
            continue
        stack.extend(x.children)
    return False


def block_slice(node, assigns: dict, k: str) -> bool:
    """`toks[k * n : (k + 1) * n + 1]` (or `[s : s + n + 1]` with `s = k * n`): the slice of
    iteration k is block k of size n, plus at most the one token after it. Consecutive
    iterations' slices then share at most one position, the previous block's last target: what
    a loop carries over from such a slice (`prev = chunk`) was scored by the earlier iteration
    and is not scored again by this one."""
    if not isinstance(node, cst.Subscript) or len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Slice):
        return False
    sl = node.slice[0].slice
    lo = poly(sl.lower, assigns, {k: 1}) if sl.lower is not None else None
    up = poly(sl.upper, assigns, {k: 1}) if sl.upper is not None else None
    if lo is None or up is None:
        return False
    got = _block(lo, k)
    if got is None:
        return False
    block, coef, _ = got
    diff = _add(up, lo, -1)
    if block:  # k * n: blocks of n, the slice spans n plus at most one token
        return coef == 1 and diff.pop(block, 0) == 1 and set(diff) <= {()} and diff.get((), 0) <= 1
    return set(diff) <= {()} and coef <= diff.get((), 0) <= coef + 1  # k * 100: a numeric block
