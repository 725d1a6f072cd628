"""Limits the record track sets per seed: the byte cap and the train and eval budgets.

rules.md: the artifact (code + compressed model) must fit in 16,000,000 decimal bytes; training
stops itself at 600 s by its own `train_time`, evaluation of the score takes at most 600 s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from harness.checks.context import CheckContext
from harness.checks.registry import Finding, Rule, UndecidedParams, rule
from harness.findings import EvidenceStep, Location, Severity


@dataclass(frozen=True)
class CapParams:
    cap_bytes: int = 16_000_000


@rule("PG-BYTES-001", "artifact-over-cap", "BYTES", "error",
      "The counted artifact (code + compressed model) exceeds the byte cap.", CapParams)
def artifact_over_cap(r: Rule, ctx: CheckContext, p: CapParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        lf = s.bytes_log
        total = lf.run.bytes_total
        if total is None or total.bytes <= p.cap_bytes:
            continue
        approx = " (rounded to 10 kB by the log)" if total.label == "MB-rounded" else ""
        yield r.finding(
            f"seed {s.seed}: total {total.bytes:,} bytes{approx} exceeds the {p.cap_bytes:,}-byte cap "
            f"by {total.bytes - p.cap_bytes:,}",
            Location(lf.rel, total.line), data={"seed": s.seed, "bytes_total": total.bytes, "cap": p.cap_bytes},
        )


@rule("PG-BYTES-002", "total-not-code-plus-model", "BYTES", "error",
      "The printed total is not the printed code bytes plus the compressed model bytes.")
def total_not_sum(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    for s in ctx.seeds:
        lf = s.bytes_log
        art = lf.run.artifact
        total, model = art.total, art.model
        codes = [c for c in (art.code, art.code_compressed) if c is not None]
        if total is None or model is None or not codes or total.label in ("MB-rounded", "budget"):
            continue
        if total.line < model.line:  # the total printed before this model line belongs to another one
            continue
        if any(total.bytes == model.bytes + c.bytes for c in codes):
            continue
        sums = ", ".join(f"{model.bytes:,} + {c.bytes:,} ({c.label or 'code'}) = {model.bytes + c.bytes:,}" for c in codes)
        yield r.finding(
            f"seed {s.seed}: printed total {total.bytes:,} is not model + code: {sums}",
            Location(lf.rel, total.line),
            evidence=[EvidenceStep(f"model {model.label}: {model.bytes:,} bytes", Location(lf.rel, model.line))]
            + [EvidenceStep(f"code ({c.label or 'as printed'}): {c.bytes:,} bytes", Location(lf.rel, c.line)) for c in codes],
            data={"seed": s.seed, "total": total.bytes, "model": model.bytes, "code": [c.bytes for c in codes]},
        )


@rule("PG-BYTES-004", "fits-only-with-compressed-code", "BYTES", "warning",
      "The artifact fits the cap only because the code is counted compressed.", CapParams)
def fits_only_compressed(r: Rule, ctx: CheckContext, p: CapParams) -> Iterator[Finding]:
    """rules.md accepts code counted compressed when the log says so ("Code size (compressed)"),
    as for a self-extracting script; a reviewer should still see when the uncompressed code
    would not fit, and check that the folder ships the compressed form."""
    for s in ctx.seeds:
        lf = s.bytes_log
        art = lf.run.artifact
        total, model, raw, packed = art.total, art.model, art.code, art.code_compressed
        if None in (total, model, raw, packed) or total.bytes > p.cap_bytes:  # type: ignore[union-attr]
            continue
        with_raw = model.bytes + raw.bytes  # type: ignore[union-attr]
        if with_raw > p.cap_bytes:
            yield r.finding(
                f"seed {s.seed}: fits only with the code counted compressed ({packed.bytes:,} bytes); with the "  # type: ignore[union-attr]
                f"uncompressed code ({raw.bytes:,}) the total is {with_raw:,}, over the cap by {with_raw - p.cap_bytes:,}",  # type: ignore[union-attr]
                Location(lf.rel, packed.line), data={"seed": s.seed, "with_uncompressed_code": with_raw})  # type: ignore[union-attr]


@rule("PG-BYTES-003", "bytes-not-printed", "BYTES", "warning",
      "A log prints no artifact total, so the byte cap cannot be verified from it.", UndecidedParams)
def bytes_not_printed(r: Rule, ctx: CheckContext, p: UndecidedParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        if s.bytes_log.run.bytes_total is None and s.scored is not None:
            yield r.finding(f"seed {s.seed}: the log prints no artifact total; the byte cap is unverified",
                            s.loc(None), undecided=p.undecided, severity=None if p.undecided else Severity.NOTE)


@dataclass(frozen=True)
class TrainParams:
    limit_seconds: float = 600.0
    grace_steps: float = 1.0  # overrun up to this many step_avg: a note
    warn_steps: float = 2.0  # up to this many: a warning; beyond: an error
    grace_max_seconds: float = 1.0  # neither allowance ever exceeds this


@rule("PG-TIME-001", "train-over-budget", "TIME", "error",
      "Training ran past the budget by more than one step (the loop checks the clock after each step).",
      TrainParams)
def train_over_budget(r: Rule, ctx: CheckContext, p: TrainParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        lf = s.train_log
        run = lf.run
        tt = run.train_time_ms
        if tt is None:
            continue
        secs = tt.value / 1000.0
        if secs <= p.limit_seconds:
            continue
        step_s = (run.step_avg_ms or 0.0) / 1000.0
        grace = min(step_s * p.grace_steps, p.grace_max_seconds)
        tolerated = min(step_s * p.warn_steps, p.grace_max_seconds)
        over = secs - p.limit_seconds
        data = {"seed": s.seed, "train_s": secs, "limit_s": p.limit_seconds, "grace_s": grace,
                "step_avg_ms": step_s * 1000.0}
        head = f"seed {s.seed}: train_time {secs:.3f} s is {over:.3f} s past {p.limit_seconds:g} s"
        if over <= grace:
            yield r.finding(f"{head}, within one step ({step_s * 1000:.1f} ms): the grace allows it",
                            Location(lf.rel, tt.line), severity=Severity.NOTE, data=data)
        elif over <= tolerated:
            yield r.finding(f"{head}: more than one step_avg ({step_s * 1000:.1f} ms) but at most {p.warn_steps:g}; "
                            "the unsynchronised step clock lets the last step run long, and such overruns were accepted",
                            Location(lf.rel, tt.line), severity=Severity.WARNING, data=data)
        else:
            yield r.finding(f"{head}: over the one-step grace ({grace:.3f} s; step_avg {step_s * 1000:.1f} ms)",
                            Location(lf.rel, tt.line), data=data)


@dataclass(frozen=True)
class EvalParams:
    limit_seconds: float = 600.0


@rule("PG-TIME-002", "eval-over-budget", "TIME", "error",
      "The scored evaluation phase took longer than the eval budget.", EvalParams)
def eval_over_budget(r: Rule, ctx: CheckContext, p: EvalParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        se = s.scored_eval_ms
        if se is None or se.value / 1000.0 <= p.limit_seconds:
            continue
        yield r.finding(
            f"seed {s.seed}: scored phase {s.scored.name} took {se.value / 1000:.1f} s, over the "
            f"{p.limit_seconds:g} s eval budget", s.loc(se.line),
            data={"seed": s.seed, "eval_s": se.value / 1000.0, "limit_s": p.limit_seconds})


@rule("PG-TIME-003", "all-eval-over-budget", "TIME", "warning",
      "All evaluation phases together took longer than the eval budget (diagnostics included).", EvalParams)
def all_eval_over_budget(r: Rule, ctx: CheckContext, p: EvalParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        ae = s.all_eval_ms
        if ae is None or ae.value / 1000.0 <= p.limit_seconds:
            continue
        yield r.finding(
            f"seed {s.seed}: evaluation phases together took {ae.value / 1000:.1f} s, over {p.limit_seconds:g} s "
            f"(the scored phase alone is what the budget counts; diagnostics add to wall time)",
            s.loc(ae.line), data={"seed": s.seed, "all_eval_s": ae.value / 1000.0})


@rule("PG-TIME-004", "time-not-printed", "TIME", "warning",
      "A log prints no train time or no eval time for its scored phase: that budget is unverified.",
      UndecidedParams)
def time_not_printed(r: Rule, ctx: CheckContext, p: UndecidedParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        if s.scored is None:
            continue
        missing = []
        if s.train_log.run.train_time_ms is None:
            missing.append("train time")
        if s.scored_eval_ms is None:
            missing.append(f"eval time of {s.scored.name}")
        if missing:
            yield r.finding(f"seed {s.seed}: the log prints no {' and no '.join(missing)}; unverified",
                            s.loc(s.scored.line if "train time" not in missing else None),
                            undecided=p.undecided, severity=None if p.undecided else Severity.NOTE)
