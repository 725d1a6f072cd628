"""Target-dependent selection (capability E): using the answer to choose the score.

Keeping, per token, whichever of two scores is lower needs the target: the lower NLL is the one
that put more probability on the token that actually came. Shapes:
  - compare-and-overwrite: `if new_nll < old_nll: nll[t] = new_nll`, `best = torch.where(nll < best,
    nll, best)`, `mask = new < old; cur[mask] = new[mask]`;
  - a minimum over passes or models (`torch.minimum(a, b)`, `min(...)` over stacked losses: the
    tracer's "oracle" events);
each is C1 (the distribution is chosen after seeing x_t) and, over passes, C4. A comparison of
two scores that only decides what to *log* never writes into the reported score and is not
reported (the tracer marks selections whose written value is not reported).
"""
from __future__ import annotations

import re

import libcst as cst

from audit.static.ir import value_nodes

ORDERING = (cst.LessThan, cst.GreaterThan, cst.LessThanEqual, cst.GreaterThanEqual)
NLLISH = re.compile(r"nll|logp|log_prob|loss|lp\b|_lp|bpb|surpris", re.I)


def _names(node) -> set[str]:
    out = set()
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, cst.Name):
            out.add(x.value)
        elif isinstance(x, cst.CSTNode):
            stack.extend(x.children)
    return out


def score_comparison(test, labels_of) -> tuple[set, set] | None:
    """(names on the left, names on the right) when `test` orders two likelihood values
    (`a < b` where both read a target probability or are named like one), else None."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1
            and isinstance(test.comparisons[0].operator, ORDERING)):
        return None
    sides = [_names(test.left), _names(test.comparisons[0].comparator)]
    for names in sides:
        if not names:
            return None
        if not any("tprob" in labels_of(n) or NLLISH.search(n) for n in names):
            return None
    return sides[0], sides[1]


def overwrites_with(body, names: set) -> bool:
    """The branch body assigns a value read from one of `names` (the winner of the comparison)."""
    for s in body:
        if s[0] in ("assign", "aug"):
            if _reads_any(s[2] if s[0] == "assign" else s[3], names):
                return True
    return False


def _reads_any(v, names: set) -> bool:
    return any(x[0] == "n" and x[1] in names for x in value_nodes(v))


def where_select(call_node, labels_of) -> bool:
    """`torch.where(a < b, a, b)`: the condition orders two likelihoods and picks one of them."""
    if len(call_node.args) != 3:
        return False
    sides = score_comparison(call_node.args[0].value, labels_of)
    if sides is None:
        return False
    picked = _names(call_node.args[1].value) | _names(call_node.args[2].value)
    return bool(picked & (sides[0] | sides[1]))
