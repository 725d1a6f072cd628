"""The verdict's proof (capability I): every PASS names the legal shape it matched; an unproven
reported score is REVIEW naming the one fact the audit could not establish."""
from __future__ import annotations

from audit.findings import EvidenceStep, Finding, Location, Severity
from audit.static.program import Program
from audit.static.rules.base import Rule
from audit.static.rules.examples import marked, scored_chunks
from audit.static.shapes import legal_shape

_PLAIN = scored_chunks("""
    nll_sum += F.cross_entropy(model(x), y, reduction="sum")  # <-
""")


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
    VALID = [scored_chunks("""
        model(x, y).backward()
        opt.step()
        nll_sum += F.cross_entropy(model(x), y, reduction="sum")
    """, "model, opt", "main(m, o)", no_grad=False)]
    INVALID = [marked(_PLAIN)]

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
    INVALID = [marked(scored_chunks("""
        nll_sum += F.cross_entropy(model(x), y, reduction="sum")
    """, setup='lib = ctypes.CDLL("./hints.so")  # <-'))]

    def check(self, prog: Program) -> None:
        shape = getattr(prog, "shape", None)
        if shape is None or shape.proven:
            return
        at = shape.at
        loc = Location(at.path, at.line) if at is not None else Location(prog.path)
        steps = tuple(EvidenceStep(m, Location(p, ln)) for p, ln, m in at.chain) if at is not None else ()
        prog.findings.append(Finding(self.id, Severity.NOTE, f"not proven: {shape.text}", self.condition, loc, steps,
                                     self.confidence, True, {"unproven": shape.text}))
