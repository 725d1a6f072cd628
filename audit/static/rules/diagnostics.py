"""Notes on validation-time computations that are not the reported score (issue 9 H)."""
from __future__ import annotations

from audit.findings import Severity
from audit.static.program import Program, trains_local_module
from audit.static.rules.base import Rule

_HEAD = 'import torch\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'


class DiagnosticProbe(Rule):
    """C3 note: a model built inside an evaluation function (a linear probe on frozen hidden
    states) is trained on validation activations, and only that probe's own number is logged.
    The reported score comes from the main model, which the probe's optimizer never touches, so
    nothing scored learned from the tokens: a note for the reviewer, not a C3 violation."""

    id = "PG-C3-005"
    condition = "C3"
    severity = Severity.NOTE
    confidence = "high"
    message = "a diagnostic probe is trained on validation activations (not the reported score)"
    VALID = [_HEAD + """
def main(model):
    with torch.no_grad():
        loss_sum = torch.nn.functional.cross_entropy(model(val_tokens[:-1]), val_tokens[1:])
    print(f"final val_loss:{loss_sum}")
main(m)
"""]
    INVALID = [(_HEAD + """
def evaluate(model):
    with torch.no_grad():
        hidden = model.hidden(val_tokens[:-1])
    probe = torch.nn.Linear(512, 1024)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    for _ in range(100):
        torch.nn.functional.cross_entropy(probe(hidden), val_tokens[1:]).backward()
        opt.step()
    with torch.no_grad():
        loss_sum = torch.nn.functional.cross_entropy(model(val_tokens[:-1]), val_tokens[1:])
    return loss_sum
def main(model):
    val_loss = evaluate(model)
    print(f"final val_loss:{val_loss}")
main(m)
""", 10)]

    def check(self, prog: Program) -> None:
        for _, u in prog.val_updates():
            if trains_local_module(prog, u):
                prog.emit(self, u)
