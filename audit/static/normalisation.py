"""Normalisation types of scored values (capability B, condition C2).

What is scored must be -log p(target) under a distribution over the whole vocabulary. Values
carry a type as labels (audit.static.flow):

  dist    a normalised distribution over the vocabulary axis: `softmax` / `log_softmax` output
  tprob   that distribution (or any table) evaluated at the target: `gather(…, y)`,
          `cross_entropy(logits, y)`, `p[…, y]`, `lut[y]`
  tkeyed  a count looked up with a key hashed from the target: an n-gram estimate of the target
          alone, whose values over the vocabulary need not sum to one
  vred    a reduction of a distribution over the vocabulary axis with no target in it
          (`-(p * log p).sum(-1)`, the entropy; `p.max(-1)`): a number per position, not a
          probability of anything

A combination keeps the scored type only when it provably preserves normalisation. What breaks
it, and what this module recognises:
  - a mixture whose components include a non-distribution: `torch.stack([nll_model, nll_bigram,
    entropy])` mixed with logsumexp (the entropy "expert" puts exp(-H) on the target whatever
    the target is) -> `nondist_components`;
  - the target's probability blended with a target-keyed estimate (trace: "mix");
  - a term computed from the target itself added to its score with no log-partition term
    (trace: "tadj", cleared by `has_normaliser`: `log1p(q (e^b - 1))`, `logsumexp`);
  - the target's count in a hashed table divided by a context count (`(pair[h] + b p) /
    (ctx[h'] + b)`): with collisions the pair counts over the vocabulary do not add up to the
    context count, so these "probabilities" do not sum to one (trace: "cratio",
    `count_ratio`); dividing by the table's own sum over the vocabulary clears;
  - the score switched by comparing the target with stored tokens (`nll *= (stored != y)`,
    `where(y == h, …)`): the answer chooses the score (C1, `target_comparison`).
Legal look-alikes clear: add-k smoothing over the vocabulary (a table indexed by the target is
`tprob`), mixture weights computed from the entropy (a weight multiplies, it is not a component).
"""
from __future__ import annotations

import re

import libcst as cst

SOFTMAX = frozenset({"softmax", "log_softmax"})
VOCAB_REDUCTIONS = frozenset({"sum", "mean", "amax", "max", "nansum"})
STACKS = frozenset({"stack", "cat", "concatenate", "hstack", "vstack", "column_stack"})
NORMALIZERS = frozenset({"logsumexp", "log1p", "logaddexp", "log_softmax", "softmax"})
_NORM_NAME = re.compile(r"log_?z|lse|normali[sz]|partition", re.I)


def type_of_call(last: str, out: set, has) -> set:
    """The labels of a library call's result, given the union `out` of its inputs' labels:
    softmax makes a distribution, a reduction of a distribution with no target is not one."""
    if last in SOFTMAX:
        return (out - {"vred", "@vred"}) | {"dist"}
    if last in VOCAB_REDUCTIONS and has(out, "dist") and not has(out, "tprob"):
        return (out - {"dist", "@dist"}) | {"vred"}
    if last in VOCAB_REDUCTIONS and not has(out, "tprob"):
        return out - {"hcount", "@hcount", "tcount", "@tcount"}  # the counts' own total: a normaliser
    return out


def nondist_components(parts: list[set]) -> bool:
    """Some stacked components are probabilities of the target and some are per-position
    numbers that are not (an entropy): mixing them is not a mixture of distributions."""
    at_target = [p for p in parts if "tprob" in p or "tkeyed" in p]
    not_dist = [p for p in parts if "vred" in p and "tprob" not in p and "tkeyed" not in p]
    return bool(at_target) and bool(not_dist)


def count_ratio(num: set, den: set) -> bool:
    """The target's hashed count over another hashed count: `raw[y] / ctx_count`. A division by
    a reduction (`pair.sum(-1)`) drops the count label (a reduction is a new value), so the
    table's own normaliser clears."""
    return "tcount" in num and "hcount" in den


def _bound(name: str, assigns: dict) -> list:
    got = assigns.get(name)
    return got if isinstance(got, list) else ([got] if got is not None else [])


def _tokenish(node, assigns: dict, depth: int = 0) -> bool:
    """A tensor of tokens (a slice of one, maybe moved or cast), not a scalar id or a literal."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "to", "long", "int", "cuda", "cpu", "view", "reshape", "flatten", "contiguous", "unsqueeze", "squeeze"):
        node = node.func.value
    if isinstance(node, cst.Subscript):
        return True
    if isinstance(node, cst.Name) and depth < 2:
        return any(_tokenish(b, assigns, depth + 1) for b in _bound(node.value, assigns))
    return False


def token_comparison(node, assigns: dict, depth: int = 0) -> bool:
    """`a == b` / `a != b` / `a.eq(b)` between two tensors of tokens (a stored sequence and the
    targets), possibly negated or cast; a name bound to one such comparison counts too.
    `assigns`: name -> the expressions assigned to it in the function (ir.Function.all_assigns)."""
    while True:
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.BitInvert, cst.Not)):
            node = node.expression
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "float", "to", "long", "int", "double", "bool", "half", "logical_not"):
            node = node.func.value
        else:
            break
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and isinstance(
            node.comparisons[0].operator, (cst.Equal, cst.NotEqual)):
        return _tokenish(node.left, assigns) and _tokenish(node.comparisons[0].comparator, assigns)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("eq", "ne") and node.args:
        return _tokenish(node.func.value, assigns) and _tokenish(node.args[0].value, assigns)
    if isinstance(node, cst.Name) and depth < 2:
        return any(token_comparison(b, assigns, depth + 1) for b in _bound(node.value, assigns))
    return False


# the partition of a one-token tilt written out: Z = 1 + q (e^b - 1), whose log is the normaliser
# (`Z.log()`, the same term as `log1p(q (e^b - 1))`); a marker `_walk` adds to the calls it saw
TILT_PARTITION = "<1 + q(e^b - 1)>"


def _exp_minus_one(v) -> bool:
    """`exp(b) - 1` (or `b.exp() - 1.0`; constants are None in the IR), or `expm1(b)`."""
    if isinstance(v, tuple) and v and v[0] == "c":
        return v[1].last == "expm1"
    return (isinstance(v, tuple) and len(v) == 4 and v[0] == "b" and v[1] == "Subtract" and v[3] is None
            and isinstance(v[2], tuple) and v[2][0] == "c"
            and v[2][1].last == "exp")


def is_tilt_partition(v) -> bool:
    """`1 + q * (exp(b) - 1)` in either operand order: the exact normaliser of a tilt that
    multiplies one token's probability q by e^b."""
    if not (isinstance(v, tuple) and len(v) == 4 and v[0] == "b" and v[1] == "Add"):
        return False
    for const, prod in ((v[2], v[3]), (v[3], v[2])):
        if const is None and isinstance(prod, tuple) and len(prod) == 4 and prod[:2] == ("b", "Multiply") \
                and (_exp_minus_one(prod[2]) or _exp_minus_one(prod[3])):
            return True
    return False


def has_normaliser(names: set, calls: set) -> bool:
    """Whether a function computes something that reads like a log-partition over the
    vocabulary (`log_z`, `logsumexp`, `log1p((e^b - 1) p_hint)`, or `log` of a written-out
    `1 + q (e^b - 1)`): a tilt renormalised that way is a proper distribution (C2 holds)."""
    if TILT_PARTITION in calls and "log" in calls:
        return True
    return bool(calls & NORMALIZERS) and (any(_NORM_NAME.search(n) for n in names) or "logsumexp" in calls
                                          or "logaddexp" in calls)
