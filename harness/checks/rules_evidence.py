"""Rules about the evidence itself: unreadable logs, how the score was found, significance.

Significance (rules.md "Statistics"): a new record beats the current one by at least 0.005 nats
of `val_loss` at p < 0.01, by a one-sided Welch t-test between the two seed sets. Without a
baseline (`--against` / `--against-losses`) the test is skipped, and the output says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from harness.checks.context import CheckContext
from harness.checks.registry import Finding, Rule, rule
from harness.findings import Location, Severity
from harness.stats import welch_one_sided


@dataclass(frozen=True)
class NoScoreParams:
    severity_error: bool = True


@rule("PG-PARSE-001", "no-score-in-log", "PARSE", "error",
      "A train log prints no evaluation result (truncated, garbage, or not a train log).", NoScoreParams)
def no_score(r: Rule, ctx: CheckContext, p: NoScoreParams) -> Iterator[Finding]:
    """A log that trained (step or stop lines) but printed no result is truncated or failed: an
    error on the record track. A `.log` with no training lines at all is an error only when no
    log of the record has a score (otherwise it is a stray file, e.g. a run summary: a warning)."""
    def scored(lf) -> bool:
        return any(not ph.diagnostic for ph in lf.run.phases)

    any_scored = any(scored(lf) for lf in ctx.record.logs)
    for lf in ctx.record.logs:
        if scored(lf):
            continue
        trained = lf.run.is_train_log()
        what = "no evaluation result" if trained else "nothing the parser recognises as a train log"
        error = p.severity_error and (trained or not any_scored)
        yield r.finding(
            f"{lf.path.name}: {what} in {lf.run.line_count} line(s) ({len(lf.run.unknown)} unrecognised)",
            Location(lf.rel, lf.run.line_count or None),
            severity=None if error else Severity.WARNING, undecided=not error and trained,
            data={"seed": lf.seed, "lines": lf.run.line_count})


@rule("PG-PARSE-002", "undecodable-bytes", "PARSE", "note",
      "A log holds bytes that are not UTF-8 (replaced while reading).")
def undecodable(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    for lf in ctx.record.logs:
        if lf.run.decode_errors:
            yield r.finding(f"{lf.run.decode_errors} undecodable byte sequence(s), replaced", Location(lf.rel))


@rule("PG-PARSE-003", "scored-phase-fallback", "PARSE", "note",
      "No evaluation phase matched the seed's claimed val_bpb; the score was chosen by fallback.")
def scored_fallback(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    for s in ctx.seeds:
        if s.scored is not None and not s.choice.by_claim:
            yield r.finding(f"seed {s.seed}: scored phase {s.scored.name} ({s.scored.val_bpb}): {s.choice.reason}",
                            s.loc(s.scored.line), data={"seed": s.seed, "phase": s.scored.name})


@dataclass(frozen=True)
class SignificanceParams:
    min_improvement_nats: float = 0.005
    alpha: float = 0.01


@rule("PG-STATS-001", "not-significant", "STATS", "error",
      "The per-seed val_loss does not beat the baseline by the required margin at the required p.",
      SignificanceParams)
def not_significant(r: Rule, ctx: CheckContext, p: SignificanceParams) -> Iterator[Finding]:
    where = Location(str(ctx.record.path))
    if ctx.against is None:
        yield r.finding("significance not tested: no baseline given (use --against RECORD_DIR or "
                        "--against-losses a,b,c)", where, severity=Severity.NOTE, data={"skipped": True})
        return
    losses = [s.scored.val_loss for s in ctx.counted if s.scored.val_loss is not None]
    res = welch_one_sided(ctx.against.val_losses, losses, p.min_improvement_nats, p.alpha)
    data = {**res.to_dict(), "baseline": ctx.against.source, "baseline_losses": ctx.against.val_losses,
            "candidate_losses": losses}
    head = (f"improvement {res.improvement:.5f} nats over {ctx.against.source} "
            f"(need > {p.min_improvement_nats} at p < {p.alpha})")
    if not res.decided:
        yield r.finding(f"{head}: not tested, {res.reason}", where, undecided=True,
                        severity=Severity.WARNING, data=data)
    elif res.significant:
        yield r.finding(f"{head}: t = {res.t:.3f}, df = {res.df:.2f}, p = {res.p:.2e}: significant",
                        where, severity=Severity.NOTE, data=data)
    else:
        pv = "nan" if math.isnan(res.p) else f"{res.p:.3g}"
        yield r.finding(f"{head}: t = {res.t:.3f}, df = {res.df:.2f}, p = {pv}: not significant", where, data=data)
