"""PASS means proven (capability I): which legal shape the reported score matched, or the one
fact that could not be established.

When no rule found an error, a PASS still has to be earned: every path that produces the
reported val_loss/val_bpb must match a shape accepted many times (rules.md):

  plain or sliding-window evaluation: the reported number accumulates the model's probability of
      each target (cross-entropy of its full softmax), and nothing learns from validation tokens;
  score-first TTT: every update that learns from validation tokens is preceded, in the same
      iteration of its chunk loop, by the score of those tokens;
  causal cache or mixture: every count table filled from validation tokens is read for a chunk
      before that chunk's tokens are added.

Otherwise the verdict is REVIEW, naming the fact: no score of validation tokens reaches the
printed number; part of the evaluation runs in native code the audit cannot read; or the model
trains on the previous iteration's window, which is "already scored" only if consecutive windows
do not overlap (a sliding window advanced by less than its length scores those tokens again).
"""
from __future__ import annotations

from dataclasses import dataclass

from audit.static.program import Program, trains_local_module
from audit.static.trace import Event


@dataclass
class Shape:
    proven: bool
    text: str  # the legal shape (proven) or the unproven fact
    at: Event | None


def _live(prog: Program, e: Event) -> bool:
    return prog.state(e)[0] != "dormant"


def _warmup(e: Event) -> bool:
    from audit.static.rules.ordering import _in_warmup

    return _in_warmup(e)


def legal_shape(prog: Program) -> Shape:
    scores = [s for _, s in prog.val_scores() if _live(prog, s)]
    if not scores:
        return Shape(False, "no score of validation tokens reaches the printed val_loss/val_bpb: the audit could not "
                            "find how the reported number is computed", None)
    natives = [e for _, e in prog.of("native") if _live(prog, e)]
    if natives:
        return Shape(False, f"part of the evaluation runs in native code the audit cannot read "
                            f"({natives[0].info.get('call')}())", natives[0])
    updates = [(i, u) for i, u in prog.val_updates() if _live(prog, u) and not trains_local_module(prog, u)
               and not _warmup(u)]
    for i, u in updates:
        if "val:now" not in u.labels and any(label.startswith("carried:") for label in u.labels):
            return Shape(False, "the model trains on the previous iteration's window; the audit could not establish "
                                "that consecutive windows do not overlap (tokens trained on would be scored again)", u)
    tables = [(i, w) for i, w in prog.of("twrite", "val") if _live(prog, w)]
    first = scores[0]
    if tables:
        return Shape(True, f"causal cache or mixture: each chunk is scored ({_where(first)}) before its tokens are "
                           f"added to the count tables ({_where(tables[0][1])})", first)
    if updates:
        i, u = updates[0]
        covering = prog.covering_score(i, u) or first
        return Shape(True, f"score-first TTT: each chunk is scored without gradient ({_where(covering)}) before the "
                           f"model trains on it ({_where(u)})", covering)
    return Shape(True, f"cross-entropy of the model's full softmax over validation tokens, accumulated at line "
                       f"{first.line} (plain or sliding-window evaluation); nothing learns from validation tokens", first)


def _where(e: Event) -> str:
    return f"{e.path.rsplit('/', 1)[-1]}:{e.line}"
