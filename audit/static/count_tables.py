"""Count tables are learned state (capability G).

An n-gram or cache table filled from validation tokens learns from them as surely as a gradient
step does. Writes are recognised by shape, whatever the table is called, also inside helpers that
receive the table as a parameter (the tracer inlines them with the caller's labels):

    t[k] += 1            t[k] = t.get(k, 0) + 1       counter[k] += 1
    t += np.bincount(k)  np.add.at(t, k, 1)           t.scatter_add_(0, k, ones)   t.index_add_(0, k, v)

A write is about validation data when its key (the index written) is. Reads are index reads of
a table that some write fills (`t[k]`, `t.get(k)`). What makes a table illegal is order: a read
for position t from a table that already holds token t or later is lookahead (C1). Tables built
from all of validation before scoring ("two-pass"), or updated with a chunk's targets before that
chunk is scored, are that. A table read first and written after, in each iteration (a score-first
cache, hints precomputed causally: read position t, then add token t), is legal.
"""
from __future__ import annotations

import libcst as cst

from audit.static.ir import Call, value_nodes
from audit.static.names import dotted

_STATEMENTS = frozenset({"assign", "aug", "expr", "ret", "for", "while", "if", "with", "block", "def", "class"})
_VIEWS = frozenset({"view", "reshape", "flatten", "ravel", "view_as", "contiguous"})
COUNT_CALLS = frozenset({"bincount", "ones", "ones_like", "full", "full_like", "histc", "unique_consecutive"})
SCATTER = frozenset({"scatter_add_", "index_add_", "index_put_", "put_", "scatter_reduce_"})


def _root(v):
    """The table a subscript or method call writes to: ("n", name) or ("a", attr)."""
    while v is not None and (v[0] in ("i", "t", "sub") or (v[0] == "c" and v[1].attr in _VIEWS and v[1].recv is not None)):
        v = v[1].recv if v[0] == "c" else v[1]
    if v is None:
        return None
    if v[0] == "n":
        return ("n", v[1])
    if v[0] == "a":
        return ("a", v[2] if len(v) > 2 and isinstance(v[2], str) else v[1])
    return None


def _calls(v):
    return (x[1] for x in value_nodes(v) if x[0] == "c")


def _last(c: Call) -> str:
    return c.last


def _counts(value, assigns: dict) -> bool:
    """The value is a histogram: `np.bincount(k)`, or a local assigned from one (`counts[:n]`)."""
    if any(_last(c) == "bincount" for c in _calls(value)):
        return True
    for name in _names(value):
        for node in assigns.get(name, ()):
            if isinstance(node, cst.Call) and (dotted(node.func) or "").endswith("bincount"):
                return True
    return False


def _names(v) -> set:
    return {x[1] for x in value_nodes(v) if x[0] == "n"}


def table_write(s, assigns: dict | None = None) -> tuple | None:
    """(table root, the value tree whose labels say what was counted) when IR statement `s`
    adds counts to a table, else None. `assigns`: the function's name -> assigned expressions."""
    assigns = assigns or {}
    tag = s[0]
    if tag == "aug" and s[2] == "AddAssign":
        target, value = s[1], s[3]
        if target[0] == "sub" and (value is None or any(_last(c) in COUNT_CALLS for c in _calls(value))):
            return _target_root(target), ("u", (_index_of(target), value))
        if target[0] in ("n", "a") and _counts(value, assigns):
            return _target_root(target), ("u", (value, *[("n", n) for n in _names(value)]))
    if tag == "assign" and s[1][0] == "sub" and s[2] is not None and s[2][0] == "b" and s[2][1] == "Add":
        if any(_last(c) == "get" for c in _calls(s[2])):  # d[k] = d.get(k, 0) + 1
            return _target_root(s[1]), _index_of(s[1])
    if tag == "expr" and s[1] is not None and s[1][0] == "c":
        c = s[1][1]
        if c.attr in SCATTER and c.recv is not None and len(c.args) >= 2:
            return _root(c.recv), c.args[1]
        if (c.qual or "").endswith("add.at") and len(c.args) >= 2:
            return _root(c.args[0]), c.args[1]
    return None


def _target_root(t):
    while t[0] == "sub":
        t = t[1]
    if t[0] == "n":
        return ("n", t[1])
    if t[0] == "a":
        return ("a", t[1])
    return None


def _index_of(t):
    """The index a subscript target writes at (`k` in `t[k] += 1`)."""
    return t[2] if t[0] == "sub" and len(t) > 2 else None


def table_roots(functions) -> set:
    """Every table some statement of the program adds counts to."""
    out = set()
    for fn in functions:
        stack = list(fn.body)
        while stack:
            s = stack.pop()
            got = table_write(s, fn.all_assigns)
            if got is not None and got[0] is not None:
                out.add(got[0])
            for x in s[1:]:
                if isinstance(x, list):  # nested statement lists (loop, branch and block bodies)
                    stack.extend(y for y in x if isinstance(y, tuple) and y and isinstance(y[0], str) and y[0] in _STATEMENTS)
    return out


def table_root_of(v):
    """The table an index read `t[k]` (value tree ("i", t, k, ...)) reads from."""
    return _root(v[1]) if v is not None and v[0] == "i" else None
