"""Seeds and claims: enough seeds, and submission.json saying what its own logs say.

rules.md: a record shows its result over (usually) 3 seeds; `val_bpb` in submission.json is the
mean of the per-seed scores, `bytes_total` the largest artifact. Claims are compared "to the
precision they were written with": a claim of 1.0728 agrees with any mean in [1.07275, 1.07285].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from harness.checks.context import CheckContext, claimed_seed_list
from harness.checks.registry import Finding, Rule, UndecidedParams, rule
from harness.checks.scored import agrees, decimals, precision
from harness.findings import EvidenceStep, Location
from harness.stats import mean


@dataclass(frozen=True)
class SeedsParams:
    min_seeds: int = 3


@rule("PG-SEEDS-001", "too-few-seeds", "SEEDS", "error",
      "Fewer distinct seeds with scored logs than the track requires.", SeedsParams)
def too_few_seeds(r: Rule, ctx: CheckContext, p: SeedsParams) -> Iterator[Finding]:
    seeds = sorted({s.seed for s in ctx.counted if s.seed is not None})
    if len(seeds) < p.min_seeds:
        yield r.finding(
            f"{len(seeds)} distinct seed(s) with a scored log ({', '.join(map(str, seeds)) or 'none'}); "
            f"the track requires {p.min_seeds}", Location(str(ctx.record.path)),
            data={"seeds": seeds, "min_seeds": p.min_seeds})


@rule("PG-SEEDS-002", "seed-name-mismatch", "SEEDS", "warning",
      "A log's file name names a different seed from the one the log printed.")
def seed_name_mismatch(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    for lf in ctx.record.logs:
        printed = lf.run.seed.value if lf.run.seed else None
        if printed is not None and lf.filename_seed is not None and lf.filename_seed != printed:
            used = f"; counted as seed {lf.seed}, the claimed one" if lf.seed != printed else ""
            yield r.finding(
                f"file name says seed {lf.filename_seed} but the log printed seed {printed}{used}",
                Location(lf.rel, lf.run.seed.line if lf.run.seed else None),
                data={"filename_seed": lf.filename_seed, "log_seed": printed, "counted_as": lf.seed})


@dataclass(frozen=True)
class ToleranceParams:
    abs_tolerance: float = 1e-9


@rule("PG-CLAIMS-001", "val-bpb-not-mean", "CLAIMS", "error",
      "submission.json val_bpb is not the mean of the per-seed scored val_bpb.", ToleranceParams)
def val_bpb_not_mean(r: Rule, ctx: CheckContext, p: ToleranceParams) -> Iterator[Finding]:
    claimed = ctx.record.submission.get("val_bpb")
    if not isinstance(claimed, (int, float)) or isinstance(claimed, bool):
        return
    listed = set(claimed_seed_list(ctx.record, ctx.claims))
    seeds = [s for s in ctx.counted if not listed or s.seed in listed]
    if not seeds:
        return
    values = [s.scored.val_bpb for s in seeds]
    m = mean(values)
    if agrees(m, float(claimed), min(precision(s.scored) for s in seeds), p.abs_tolerance):
        return
    # Per-seed claims written with fewer decimals (1.08554) carry their own rounding: a headline
    # equal to the mean of those claims, each matching its log, is consistent with the logs.
    per_seed = [ctx.claims[s.seed].number("val_bpb") if s.seed in ctx.claims else None for s in seeds]
    if None not in per_seed and all(agrees(s.scored.val_bpb, c, precision(s.scored), p.abs_tolerance)
                                    for s, c in zip(seeds, per_seed)):
        if agrees(mean(per_seed), float(claimed), None, p.abs_tolerance):  # type: ignore[arg-type]
            return
    best = min(values)
    why = ""
    best_seed = min(seeds, key=lambda s: s.scored.val_bpb)
    if len(values) > 1 and agrees(best, float(claimed), precision(best_seed.scored), p.abs_tolerance):
        why = " — it is the best seed's score, not the mean"
    per_seed = ", ".join(f"{s.seed}: {s.scored.val_bpb}" for s in seeds)
    yield r.finding(
        f"val_bpb {claimed} does not match the mean {m:.8f} of {len(values)} seed(s) ({per_seed}){why}",
        ctx.submission_loc("val_bpb"),
        evidence=[EvidenceStep(f"seed {s.seed}: {s.scored.name} val_bpb {s.scored.val_bpb}", s.loc(s.scored.line))
                  for s in seeds],
        data={"claimed": claimed, "mean": m, "per_seed": {str(s.seed): s.scored.val_bpb for s in seeds}})


@rule("PG-CLAIMS-002", "bytes-total-not-max", "CLAIMS", "error",
      "submission.json bytes_total is not the largest per-seed artifact total.")
def bytes_total_not_max(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    claimed = ctx.record.submission.get("bytes_total")
    if not isinstance(claimed, int) or isinstance(claimed, bool):
        return
    totals = [(s, s.bytes_log.run.bytes_total) for s in ctx.counted]
    if not totals or any(t is None or t.label == "MB-rounded" for _, t in totals):
        return
    largest = max(t.bytes for _, t in totals)  # type: ignore[union-attr]
    if claimed == largest:
        return
    which = [str(s.seed) for s, t in totals if t.bytes == claimed]  # type: ignore[union-attr]
    avg = mean([float(t.bytes) for _, t in totals])  # type: ignore[union-attr]
    note = f" (it is seed {', '.join(which)}'s total)" if which else ""
    if not which and abs(claimed - avg) <= 1.0:
        note = " (it is the mean of the per-seed totals)"
    yield r.finding(
        f"bytes_total {claimed:,} is not the largest per-seed total {largest:,}{note}",
        ctx.submission_loc("bytes_total"),
        evidence=[EvidenceStep(f"seed {s.seed}: total {t.bytes:,}", Location(s.bytes_log.rel, t.line))  # type: ignore[union-attr]
                  for s, t in totals],
        data={"claimed": claimed, "max": largest})


@rule("PG-CLAIMS-003", "seed-result-mismatch", "CLAIMS", "error",
      "A per-seed entry of submission.json disagrees with that seed's log.", ToleranceParams)
def seed_result_mismatch(r: Rule, ctx: CheckContext, p: ToleranceParams) -> Iterator[Finding]:
    for s in ctx.seeds:
        c = s.claim
        if c is None or s.scored is None:
            continue
        checks: list[tuple[str, float | None, float | None, Location, bool]] = [
            ("val_bpb", c.number("val_bpb"), s.scored.val_bpb, s.loc(s.scored.line), False),
            ("val_loss", c.number("val_loss"), s.scored.val_loss, s.loc(s.scored.line), False),
        ]
        total = s.bytes_log.run.bytes_total
        if total is not None and total.label != "MB-rounded":
            checks.append(("bytes", c.number("artifact_bytes", "bytes_total", "bytes", "total_bytes"),
                           float(total.bytes), Location(s.bytes_log.rel, total.line), True))
        steps = c.number("steps")
        run = s.train_log.run
        if steps is not None and run.last_step is not None:
            line = run.stop.line if run.stop else (run.steps[-1].line if run.steps else None)
            checks.append(("steps", steps, float(run.last_step), Location(s.train_log.rel, line), True))
        for key, claimed, logged, where, exact in checks:
            if claimed is None or logged is None:
                continue
            digits = precision(s.scored) if key == "val_bpb" else decimals(logged)
            ok = claimed == logged if exact else agrees(logged, claimed, digits, p.abs_tolerance)
            if ok:
                continue
            yield r.finding(
                f"{c.source} {key} {_fmt(claimed)} but seed {s.seed}'s log says {_fmt(logged)}"
                + (f" ({s.scored.name})" if key.startswith("val_") else ""),
                Location(str(ctx.record.submission_path), c.line) if ctx.record.submission_path else None,
                evidence=[EvidenceStep(f"log: {key} {logged:g}", where)],
                data={"seed": s.seed, "field": key, "claimed": claimed, "logged": logged})


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1000 else repr(x)


@rule("PG-CLAIMS-004", "claimed-seed-without-log", "CLAIMS", "warning",
      "submission.json lists a seed that has no train log in the folder.")
def claimed_seed_without_log(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    logged = {s.seed for s in ctx.seeds}
    for seed in claimed_seed_list(ctx.record, ctx.claims):
        if seed not in logged:
            yield r.finding(f"seed {seed} is claimed but no log in the folder printed it",
                            ctx.submission_loc(str(seed)) or ctx.submission_loc("seeds"), data={"seed": seed})


@rule("PG-CLAIMS-005", "no-submission-json", "CLAIMS", "warning",
      "The folder has no submission.json: the claims cannot be checked.", UndecidedParams)
def no_submission_json(r: Rule, ctx: CheckContext, p: UndecidedParams) -> Iterator[Finding]:
    if ctx.record.submission_path is None:
        yield r.finding("no submission.json: claims not checked", Location(str(ctx.record.path)),
                        undecided=p.undecided)
