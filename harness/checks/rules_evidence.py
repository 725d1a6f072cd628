"""Rules about the evidence itself: unreadable logs, how the score was found, significance.

Significance (rules.md "Statistics"): a new record beats the current one by at least 0.005 nats
at p < 0.01, by a one-sided Welch t-test between the two seed sets: per token (`val_loss`)
between records that share a tokenizer, per byte (`val_bpb` · ln 2) otherwise
(harness.checks.compare); every message and the data say which unit. Without a baseline
(`--against` / `--against-losses`) the test is skipped, and the output says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from harness.checks.compare import Scores, choose_comparison
from harness.checks.context import CheckContext
from harness.checks.registry import Finding, Rule, rule
from harness.escape import finite
from harness.findings import Location, Severity
from harness.stats import welch_one_sided


@dataclass(frozen=True)
class NoScoreParams:
    severity_error: bool = True


@rule("PG-PARSE-001", "no-score-in-log", "PARSE", "error",
      "A train log prints no evaluation result (truncated, garbage, or not a train log).", NoScoreParams,
      policy=("score", "not-scored"),
      fix='ship the log of a finished run, with its final val_bpb line')
def no_score(r: Rule, ctx: CheckContext, p: NoScoreParams) -> Iterator[Finding]:
    """A log that trained (step or stop lines) but printed no result is truncated or failed.
    When it is the only evidence of its seed (or no log of the record has a score) the score
    has no evidence (policy `score`): an error on the record track. When another log of the same
    seed carries the score it is an extra run (`not-scored`): a warning. A `.log` with no
    training lines at all is a stray file (e.g. a run summary) unless nothing is scored."""
    def scored(lf) -> bool:
        return any(not ph.diagnostic for ph in lf.run.phases)

    any_scored = any(scored(lf) for lf in ctx.record.logs)
    seeds_scored = {lf.seed for lf in ctx.record.logs if scored(lf) and lf.seed is not None}
    for lf in ctx.record.logs:
        if scored(lf):
            continue
        trained = lf.run.is_train_log()
        what = "no evaluation result" if trained else "nothing the parser recognises as a train log"
        extra = lf.seed is not None and lf.seed in seeds_scored
        if extra:
            what += f" (another log of seed {lf.seed} carries its score)"
        error = p.severity_error and not extra and (trained or not any_scored)
        yield r.finding(
            f"{lf.path.name}: {what} in {lf.run.line_count} line(s) ({len(lf.run.unknown)} unrecognised)",
            Location(lf.rel, lf.run.line_count or None),
            severity=None if error else Severity.WARNING, undecided=not error and trained,
            data={"seed": lf.seed, "lines": lf.run.line_count})


@rule("PG-PARSE-002", "undecodable-bytes", "PARSE", "note",
      "A log holds bytes that are not UTF-8 (replaced while reading).", policy="context",
      fix='save the log as UTF-8')
def undecodable(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """Replaced bytes change no figure the parser reads (policy `context`)."""
    for lf in ctx.record.logs:
        if lf.run.decode_errors:
            yield r.finding(f"{lf.run.decode_errors} undecodable byte sequence(s), replaced", Location(lf.rel))


@rule("PG-PARSE-003", "scored-phase-fallback", "PARSE", "note",
      "No evaluation phase matched the seed's claimed val_bpb; the score was chosen by fallback.", policy="context",
      fix="make submission.json claim the scored phase's val_bpb")
def scored_fallback(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """How the score was found, so a reviewer can disagree (policy `context`); a claim that
    matches no phase is judged by PG-CLAIMS-001/003."""
    for s in ctx.seeds:
        if s.scored is not None and not s.choice.by_claim:
            yield r.finding(f"seed {s.seed}: scored phase {s.scored.name} ({s.scored.val_bpb}): {s.choice.reason}",
                            s.loc(s.scored.line), data={"seed": s.seed, "phase": s.scored.name})


@dataclass(frozen=True)
class SignificanceParams:
    min_improvement_nats: float = 0.005  # per token on the baseline's tokenizer; put per byte across tokenizers
    alpha: float = 0.01


def candidate_scores(ctx: CheckContext) -> Scores:
    """The record's per-seed scores (seeds that print both val_loss and val_bpb)."""
    seeds = [s for s in ctx.counted if s.scored.val_loss is not None]
    return Scores([s.scored.val_loss for s in seeds], [s.scored.val_bpb for s in seeds], ctx.tokenizer)


def val_bytes(ctx: CheckContext) -> int:
    return int(ctx.ruleset.setting("PG-SCORE-001", "val_bytes"))


@rule("PG-STATS-001", "not-significant", "STATS", "error",
      "The record does not beat the baseline by the required margin at the required p (per token on a "
      "shared tokenizer, per byte across tokenizers).", SignificanceParams, policy=("score", "unestablished"),
      scope="record",
      fix='run more seeds or show a larger gain: at least 0.005 nats at p < 0.01')
def not_significant(r: Rule, ctx: CheckContext, p: SignificanceParams) -> Iterator[Finding]:
    """The significance bar decides whether the score is a record (policy `score`): an
    improvement below 0.005 nats or at p >= 0.01 is an error. The unit follows
    harness.checks.compare: per token only when both records are shown to share a tokenizer,
    else per byte with the margin put per byte; a comparison that cannot be made soundly (too
    few seeds, no per-byte figures, no token count to put the margin per byte) is undecided
    (policy `unestablished`). Every message names the unit."""
    where = Location(str(ctx.record.path))
    if ctx.against is None:
        yield r.finding("significance not tested: no baseline given (use --against RECORD_DIR or "
                        "--against-losses a,b,c)", where, severity=Severity.NOTE, data={"skipped": True})
        return
    cmp = choose_comparison(candidate_scores(ctx), ctx.against, p.min_improvement_nats, val_bytes(ctx))
    comparison = finite(cmp.to_dict())[0]
    data = {"baseline": ctx.against.source, "comparison": comparison, "unit": cmp.unit,
            "baseline_losses": ctx.against.val_losses}
    if cmp.refused:
        yield r.finding(f"significance not tested: {cmp.refused} ({cmp.why})", where, undecided=True,
                        severity=Severity.WARNING, data=data)
        return
    res = welch_one_sided(cmp.baseline, cmp.candidate, cmp.margin, p.alpha)
    data.update(finite(res.to_dict())[0])
    head = (f"improvement {res.improvement:.5f} {cmp.unit} over {ctx.against.source} "
            f"(need > {cmp.margin:.5f} {cmp.unit} at p < {p.alpha}; {cmp.why})")
    if not res.decided:
        yield r.finding(f"{head}: not tested, {res.reason}", where, undecided=True,
                        severity=Severity.WARNING, data=data)
    elif res.significant:
        yield r.finding(f"{head}: t = {res.t:.3f}, df = {res.df:.2f}, p = {res.p:.2e}: significant",
                        where, severity=Severity.NOTE, data=data)
    else:
        pv = "nan" if math.isnan(res.p) else f"{res.p:.3g}"
        yield r.finding(f"{head}: t = {res.t:.3f}, df = {res.df:.2f}, p = {pv}: not significant", where, data=data)
