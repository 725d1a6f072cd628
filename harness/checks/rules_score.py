"""The score's own soundness: its byte denominator (harness.checks.denominator).

rules.md "Data format": the validation text is fixed, so the byte count implied by a log's
`val_loss`, `val_bpb` and validation token count must be the FineWeb validation total whatever
the tokenizer; a tokenizer change "must prove its byte denominator equals the raw UTF-8 bytes of
the validation text". A different total means the score is computed over the wrong number of
bytes (policy `score`: an error). The total and the tolerance are this rule's settings in the
rule set; harness/rulesets/README.md says how the merged records give them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from harness.checks.context import CheckContext
from harness.checks.denominator import FINEWEB_VAL_BYTES, implied_val_bytes, rounding_slack
from harness.checks.registry import Finding, Rule, rule
from harness.findings import EvidenceStep, Location, Severity


@dataclass(frozen=True)
class DenominatorParams:
    val_bytes: int = FINEWEB_VAL_BYTES  # the FineWeb validation text, bytes
    rel_tolerance: float = 0.0005  # plus the slack the printed decimals allow


@rule("PG-SCORE-001", "wrong-byte-denominator", "CLAIMS", "error",
      "The validation byte count implied by a log's val_loss, val_bpb and token count is not the FineWeb "
      "validation total.", DenominatorParams, policy=("score", "context"),
      fix="divide by the FineWeb validation text's bytes (151,080,000), counted from the tokenizer's pieces")
def wrong_byte_denominator(r: Rule, ctx: CheckContext, p: DenominatorParams) -> Iterator[Finding]:
    """For each scored seed: val_loss · val_tokens / (val_bpb · ln 2) must equal `val_bytes`
    within `rel_tolerance` plus the rounding of the printed figures. Outside it, the score's
    denominator is wrong — or its val_loss is not the loss its bpb was computed from — and the
    score itself is unsound (policy `score`, an error). Seeds whose log prints no validation
    token count are listed in one note (policy `context`): their denominator is not verified."""
    unverified: list[str] = []
    for s in ctx.seeds:
        ph = s.scored
        if ph is None:
            continue
        run = s.log.run
        tokens = run.val_tokens
        implied = implied_val_bytes(ph.val_loss or 0.0, tokens.value if tokens else 0, ph.val_bpb)
        if implied is None or tokens is None:
            unverified.append(str(s.seed))
            continue
        allowed = p.rel_tolerance + rounding_slack(ph)
        off = implied / p.val_bytes - 1.0
        if abs(off) <= allowed:
            continue
        yield r.finding(
            f"seed {s.seed}: {ph.name} implies {implied:,.0f} validation bytes (val_loss {ph.val_loss} × "
            f"{tokens.value:,} tokens / (val_bpb {ph.val_bpb} × ln 2)), {off:+.2%} from the FineWeb validation "
            f"total {p.val_bytes:,} (tolerance ±{allowed:.3%}): the score's byte denominator is wrong, or its "
            "val_loss is not the loss its val_bpb was computed from",
            s.loc(ph.line),
            evidence=[EvidenceStep(f"validation tokens: {tokens.value:,}", Location(s.log.rel, tokens.line)),
                      EvidenceStep(f"{ph.name}: val_loss {ph.val_loss} val_bpb {ph.val_bpb}", s.loc(ph.line))],
            data={"seed": s.seed, "implied_bytes": round(implied), "val_bytes": p.val_bytes, "relative": off,
                  "tolerance": allowed, "val_tokens": tokens.value})
    if unverified:
        yield r.finding(f"byte denominator not verified for seed(s) {', '.join(unverified)}: the log prints no "
                        "validation token count (or no val_loss for the scored phase)",
                        Location(str(ctx.record.path)), severity=Severity.NOTE, data={"seeds": unverified})
