"""The byte denominator of a score: how many validation bytes a log's own figures imply.

A log prints `val_loss` (mean nats per token over the validation tokens), `val_bpb` (bits per
byte over the same text) and the number of validation tokens. Since
    val_bpb = (val_loss · val_tokens) / (val_bytes · ln 2),
the log's own figures imply
    val_bytes = val_loss · val_tokens / (val_bpb · ln 2).
The validation text is fixed (the first 50,000 FineWeb documents), so whatever the tokenizer
this must come out as the same byte total. A score computed with a wrong byte count (a tokenizer
whose byte table counts too many bytes per token, a subset of the text, a `val_loss` that is not
the loss the bpb was computed from) implies another total: the score's denominator is wrong.

The figures are printed rounded; `rounding_slack` is the relative error the printed decimals
alone allow (|d bytes / bytes| <= 0.5·10^-d_loss / val_loss + 0.5·10^-d_bpb / val_bpb).

The total and its tolerance are numbers of the rule set (PG-SCORE-001); how they were derived
from the merged records is in harness/rulesets/README.md and `benchmarks/byte_denominator.py`.
"""
from __future__ import annotations

import math

from harness.logs import EvalPhase

# The FineWeb validation text in bytes as the merged records measure it (README "Byte denominator").
FINEWEB_VAL_BYTES = 151_080_000
UNKNOWN_DECIMALS_SLACK = 1e-4  # a figure printed in exponent notation: assume 4 significant decimals


def implied_val_bytes(val_loss: float, val_tokens: int, val_bpb: float) -> float | None:
    """val_loss · val_tokens / (val_bpb · ln 2); None when a figure is missing or not positive."""
    if not (val_loss and val_bpb and val_tokens) or val_loss <= 0 or val_bpb <= 0 or val_tokens <= 0:
        return None
    return val_loss * val_tokens / (val_bpb * math.log(2))


def rounding_slack(phase: EvalPhase) -> float:
    """The relative error of the implied byte count that the printed decimals alone allow."""
    def rel(value: float | None, decimals: int | None) -> float:
        if not value:
            return 0.0
        return UNKNOWN_DECIMALS_SLACK if decimals is None else 0.5 * 10.0 ** (-decimals) / abs(value)

    return rel(phase.val_loss, phase.loss_decimals) + rel(phase.val_bpb, phase.bpb_decimals)
