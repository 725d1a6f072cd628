"""Loop-carried order (capability C): an outer loop that repeats the same tokens.

The tracer lays each loop body out once, so inside one iteration "score, then update" looks
score-first. But an outer loop whose variable does not select the tokens (epochs, passes,
`for epoch in range(E): for chunk in chunks: score; update`) runs the body again over the same
tokens: from its second iteration on, every score comes from a model that already learned from
those tokens in an earlier iteration (C3), and the tokens are scored once per iteration (C4).
Zeroing the accumulators at the top of each iteration, or scoring only when `epoch == E - 1`,
only chooses which pass is reported.

The loop variable's influence is a label: the tracer marks values derived from a `for` target
with "lv:<loop id>" (it flows through slices, calls and arithmetic like any label). A shared loop
is a *pass loop* when neither the score nor the update carries its label. Legal shapes clear:
score-first TTT with its epoch loop nested after the chunk's score (the epoch loop does not
enclose the score), global epochs over documents all scored before (no shared loop), one pass,
or a score confined to the pass loop's first iteration (`if epoch == 0:`), or a pass loop the
configuration runs once (`range(args.ttt_epochs)` with ttt_epochs = 1 by the record's evidence).
"""
from __future__ import annotations

import libcst as cst

from audit.static.program import Program, shared_loops
from audit.static.trace import Event, Loop


def pass_loops(u: Event, s: Event) -> list[Loop]:
    """The `for` loops enclosing both update `u` and score `s` whose variable selects neither's
    tokens: each iteration goes over the same data again."""
    out = []
    for lp in shared_loops(u, s):
        if lp.kind != "for" or not lp.targets:
            continue
        mark = f"lv:{lp.node_id}"
        if mark not in s.labels and mark not in u.labels:
            out.append(lp)
    return out


def first_iteration_only(s: Event, lp: Loop) -> bool:
    """The score runs only in the loop's first iteration: a guard `epoch == 0`, `not epoch`,
    `epoch < 1`, `epoch == start` on the loop's own variable."""
    names = set(lp.targets)
    for g in s.guards:
        if g.kind != "if":
            continue
        node, pol = g.test, g.polarity
        while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            node, pol = node.expression, not pol
        if isinstance(node, cst.Name) and node.value in names and pol is False:
            return True  # `if not epoch:`
        if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and isinstance(node.left, cst.Name) \
                and node.left.value in names:
            op = node.comparisons[0].operator
            right = node.comparisons[0].comparator
            zero = isinstance(right, cst.Integer) and right.value == "0"
            one = isinstance(right, cst.Integer) and right.value == "1"
            if pol and ((isinstance(op, cst.Equal) and zero) or (isinstance(op, cst.LessThan) and one)
                        or (isinstance(op, cst.LessThanEqual) and zero)):
                return True
            if not pol and isinstance(op, cst.NotEqual) and zero:
                return True
    return False


def runs_once(prog: Program, lp: Loop) -> bool:
    """The configuration that ran gives the loop one iteration (`range(E)` with E = 1)."""
    it = lp.iter_node
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "range" and it.args):
        return False
    args = [a.value for a in it.args]
    flags = prog.evidence or prog.defaults
    flags._fn = next((f for m in prog.flow.modules for q, f in m.functions.items() if q == lp.fn), None)
    try:
        if len(args) == 1:
            n = flags.value(args[0])
            return isinstance(n, (int, float)) and not isinstance(n, bool) and n <= 1
        lo, hi = flags.value(args[0]), flags.value(args[1])
        return all(isinstance(v, (int, float)) for v in (lo, hi)) and hi - lo <= 1
    except TypeError:
        return False
