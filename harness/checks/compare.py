"""Comparing two records' scores: per token when they share a tokenizer, per byte otherwise.

rules.md "Statistics": a new record must beat the current one by 0.005 nats of `val_loss` at
p < 0.01. `val_loss` is nats per token, so it only compares records that share a tokenizer: a
record at 1.118 bpb on SP-1024 has a lower `val_loss` (1.89 nats per token) than one at 1.061
bpb on SP-8192 (2.32), and per token would read as "0.43 nats better" while it is 0.04 nats per
byte worse. So:

- both records shown to share a tokenizer (harness.checks.tokenizer): per token, as the rule is
  written and as the organizers quote it — `val_loss`, margin 0.005 nats per token;
- otherwise (different, or not shown to be the same): per byte — nats per byte = `val_bpb` · ln 2
  for every seed, and the margin expressed per byte on the baseline's tokenizer:
      margin_per_byte = 0.005 · (baseline validation tokens) / (validation bytes),
  the same total improvement in nats over the fixed validation text that the rule asks of a
  record on the baseline's tokenizer (0.00205 for SP-1024, 0.00134 for SP-8192);
- a per-token comparison is never made between records shown to use different tokenizers.
  Where the per-byte figures or the baseline's token count are missing the comparison is
  refused, and the reason says which.

A baseline given as bare per-token losses (`--against-losses`) carries no tokenizer: it is
compared per token, and the unit line says that this assumes the candidate's tokenizer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.checks.context import Baseline
from harness.checks.tokenizer import TokenizerId, same_tokenizer

PER_TOKEN = "nats per token"
PER_BYTE = "nats per byte"


@dataclass(frozen=True)
class Scores:
    """One side's per-seed scores: `val_loss` (nats per token) and `val_bpb`, in seed order."""

    val_losses: list[float]
    val_bpbs: list[float] | None
    tokenizer: TokenizerId | None


@dataclass(frozen=True)
class Comparison:
    """What to compare: the unit, both samples in that unit, the margin in that unit, and why.
    `refused` is set (and the samples empty) when no sound comparison exists."""

    unit: str
    baseline: list[float]
    candidate: list[float]
    margin: float
    why: str
    refused: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"unit": self.unit, "why": self.why, "refused": self.refused or None, "margin": self.margin,
                "baseline_values": self.baseline, "candidate_values": self.candidate}


def per_byte(bpbs: list[float]) -> list[float]:
    """bits per byte -> nats per byte."""
    return [b * math.log(2) for b in bpbs]


def choose_comparison(candidate: Scores, baseline: Baseline, margin_per_token: float, val_bytes: int) -> Comparison:
    """The unit and samples for the significance test (see the module docstring)."""
    if baseline.tokenizer is None and baseline.val_bpbs is None:
        name = candidate.tokenizer.describe() if candidate.tokenizer else "unknown"
        return Comparison(PER_TOKEN, list(baseline.val_losses), list(candidate.val_losses), margin_per_token,
                          f"the baseline is given as per-token losses with no tokenizer: compared per token, "
                          f"assuming it used the candidate's tokenizer ({name})")
    same, why = same_tokenizer(candidate.tokenizer, baseline.tokenizer)
    if same:
        return Comparison(PER_TOKEN, list(baseline.val_losses), list(candidate.val_losses), margin_per_token,
                          f"{why}: compared per token (val_loss)")
    head = f"{why}: compared per byte (val_bpb · ln 2), never per token across tokenizers"
    if not candidate.val_bpbs or not baseline.val_bpbs:
        side = "candidate" if not candidate.val_bpbs else "baseline"
        return Comparison(PER_BYTE, [], [], math.nan, head, f"the {side} prints no per-seed val_bpb")
    tokens = baseline.tokenizer.val_tokens if baseline.tokenizer else None
    if not tokens:
        return Comparison(PER_BYTE, [], [], math.nan, head,
                          "the 0.005-nat margin cannot be put per byte: the baseline prints no validation token count")
    margin = margin_per_token * tokens / val_bytes
    return Comparison(PER_BYTE, per_byte(baseline.val_bpbs), per_byte(candidate.val_bpbs), margin,
                      f"{head}; margin {margin_per_token:g} nats per token on the baseline's tokenizer = "
                      f"{margin:.5f} nats per byte ({tokens:,} tokens / {val_bytes:,} bytes)")
