"""Rules about repeated passes over the same tokens (loop-carried order, C3/C4)."""
from __future__ import annotations

import textwrap

from audit.findings import EvidenceStep, Location
from audit.static.loop_order import first_iteration_only, pass_loops, runs_once
from audit.static.program import Program
from audit.static.rules.base import Rule
from audit.static.rules.examples import VAL_HEAD, marked

_EPOCH_LOOP = """
    for epoch in range(epochs):
        for ci in range(10):
            chunk = val_tokens[ci * 100:(ci + 1) * 100]
            if {guard}:
                with torch.no_grad():
                    loss_sum += model(chunk)  # <-
            model(chunk).backward()
            opt.step()
    """


def _epochs(body: str) -> str:
    """A TTT program whose `main(model, opt, epochs)` runs `body` and prints its `loss_sum`."""
    return (VAL_HEAD + "def main(model, opt, epochs):\n    loss_sum = 0.0\n" + textwrap.dedent(body).strip("\n")
            .replace("\n", "\n    ").join(("    ", "\n")) + '    print(f"final val_loss:{loss_sum}")\nmain(m, o, 3)\n')


class RescoredAcrossPasses(Rule):
    """C4 (and C3): a validation score and an update of the same tokens sit in one outer loop
    whose variable does not select the tokens (epochs, passes). Even when each iteration scores a
    chunk before training on it, every iteration after the first scores tokens the model already
    learned from in an earlier one, and scores them again; zeroing the accumulators each epoch or
    scoring only in the last epoch merely picks which of those passes is reported. Legal: the
    epoch loop nested after the chunk's score, epochs over documents all scored before, a score
    confined to the first pass, or a pass loop the run configures to one iteration."""

    id = "PG-C4-002"
    condition = "C4"
    confidence = "high"
    message = "rescoring across passes: the same tokens are scored again in a later pass of a loop that adapts on them"
    VALID = [_epochs("""
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        for epoch in range(epochs):
            model(chunk).backward()
            opt.step()
    """), _epochs(_EPOCH_LOOP.format(guard="epoch == 0"))]
    INVALID = [marked(_epochs(_EPOCH_LOOP.format(guard="epoch == epochs - 1"))), marked(_epochs("""
    for epoch in range(epochs):
        doc_loss = 0.0
        for ci in range(10):
            chunk = val_tokens[ci * 100:(ci + 1) * 100]
            with torch.no_grad():
                doc_loss += model(chunk)  # <-
            model(chunk).backward()
            opt.step()
    loss_sum += doc_loss
    """))]

    def check(self, prog: Program) -> None:
        from audit.static.rules.ordering import _train_loop_updates

        updates = [(i, u) for i, u in prog.val_updates() if not _train_loop_updates(prog, u)]
        reported: set = set()  # one finding per pass loop
        for _, s in prog.val_scores():
            for _, u in updates:
                loops = [lp for lp in pass_loops(u, s) if not first_iteration_only(s, lp) and not runs_once(prog, lp)]
                if not loops:
                    continue
                lp = loops[0]
                if id(lp) in reported:
                    break
                reported.add(id(lp))
                prog.emit(self, s, related=[u], evidence=[
                    EvidenceStep(f"pass loop over the same tokens (its variable {', '.join(lp.targets)} selects none of them)",
                                 Location(lp.path, lp.line)),
                    EvidenceStep("the model adapts on those tokens here, in every pass", Location(u.path, u.line))])
                break
