"""The verdict's proof (capability I): every PASS names the legal shape it matched; an unproven
reported score is REVIEW naming the one fact the audit could not establish."""
from __future__ import annotations

from audit.findings import EvidenceStep, Finding, Location, Severity
from audit.static.program import Program
from audit.static.rules.base import Rule
from audit.static.shapes import legal_shape

_HEAD = 'import torch\nimport torch.nn.functional as F\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'
_PLAIN = _HEAD + """
def main(model):
    loss_sum = torch.zeros(())
    with torch.no_grad():
        for i in range(0, 1000, 100):
            chunk = val_tokens[i:i + 101]
            x, y = chunk[:-1], chunk[1:]
            loss_sum += F.cross_entropy(model(x), y, reduction="sum")
    print(f"final val_loss:{loss_sum}")
main(m)
"""


def _no_errors(prog: Program) -> bool:
    return not any(f.severity is Severity.ERROR for f in prog.findings)


class LegalShape(Rule):
    """The reported score matched a legal shape (rules.md): plain or sliding-window cross-entropy
    of the model's full softmax; score-first TTT; a causal cache or mixture updated after scoring.
    The note says which, in one line, so a reviewer can check the claim."""

    id = "PG-EVAL-001"
    condition = "EVAL"
    severity = Severity.NOTE
    confidence = "high"
    message = "legal shape"
    VALID = [_HEAD + """
def main(model, opt):
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        model(chunk).backward()
        opt.step()
        with torch.no_grad():
            loss_sum = F.cross_entropy(model(chunk[:-1]), chunk[1:])
        print(f"val_loss:{loss_sum}")
main(m, o)
"""]
    INVALID = [(_PLAIN, 11)]

    def check(self, prog: Program) -> None:
        if not _no_errors(prog):
            return
        shape = legal_shape(prog)
        prog.shape = shape
        if shape.proven:
            at = shape.at
            prog.findings.append(Finding(self.id, Severity.NOTE, f"legal shape: {shape.text}", self.condition,
                                         Location(at.path, at.line) if at is not None else Location(prog.path), (),
                                         self.confidence, False, {"shape": shape.text}))


class UnprovenShape(Rule):
    """REVIEW: no rule found a violation, but the reported score does not match a legal shape the
    audit can prove (rules.md), so PASS would claim more than was established. The finding names
    the one fact left open: how the printed number is computed, native code on the scoring path,
    or whether training on the previous window trains on tokens scored again."""

    id = "PG-EVAL-002"
    condition = "EVAL"
    severity = Severity.NOTE
    confidence = "medium"
    message = "the reported score matches no legal shape the audit could prove"
    VALID = [_PLAIN]
    INVALID = [(_HEAD + """
import ctypes
def main(model):
    lib = ctypes.CDLL("./hints.so")
    loss_sum = torch.zeros(())
    with torch.no_grad():
        for i in range(0, 1000, 100):
            chunk = val_tokens[i:i + 101]
            x, y = chunk[:-1], chunk[1:]
            loss_sum += F.cross_entropy(model(x), y, reduction="sum")
    print(f"final val_loss:{loss_sum}")
main(m)
""", 7)]

    def check(self, prog: Program) -> None:
        shape = getattr(prog, "shape", None)
        if shape is None or shape.proven:
            return
        at = shape.at
        loc = Location(at.path, at.line) if at is not None else Location(prog.path)
        steps = tuple(EvidenceStep(m, Location(p, ln)) for p, ln, m in at.chain) if at is not None else ()
        prog.findings.append(Finding(self.id, Severity.NOTE, f"not proven: {shape.text}", self.condition, loc, steps,
                                     self.confidence, True, {"unproven": shape.text}))
