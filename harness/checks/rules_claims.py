"""Seeds and claims: enough seeds, and submission.json saying what its own logs say.

rules.md: a record shows its result over (usually) 3 seeds; `val_bpb` in submission.json is the
mean of the per-seed scores, `bytes_total` the largest artifact. Claims are compared "to the
precision they were written with": a claim of 1.0728 agrees with any mean in [1.07275, 1.07285].

Severity (harness/rulesets/README.md): a misreported score (`val_bpb`, `val_loss`) is an error
(`score`); a misreported byte total or step count is a warning while the logs' figure meets every
limit (`figure`), and an error only when the claim fits the cap and the logs do not
(`hidden-limit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from harness.checks.context import CheckContext, claimed_seed_list, finite_number
from harness.checks.registry import Finding, Rule, UndecidedParams, rule
from harness.checks.scored import agrees, decimals, precision
from harness.findings import EvidenceStep, Location, Severity
from harness.stats import mean


@dataclass(frozen=True)
class SeedsParams:
    min_seeds: int = 3


@rule("PG-SEEDS-001", "too-few-seeds", "SEEDS", "error",
      "Fewer distinct seeds with scored logs than the track requires.", SeedsParams, policy="limit", scope="record",
      fix='add the train logs of at least 3 seeds')
def too_few_seeds(r: Rule, ctx: CheckContext, p: SeedsParams) -> Iterator[Finding]:
    """The upstream README: a record "must provide enough run logs to show at p < 0.01" that it
    beats the current one; the track's rule set sets that number (3). Too few scored seeds is a
    requirement of the track not met by the record's own files (policy `limit`). The README
    waives it for systems-only speed-ups; that is a reviewer's decision the files cannot show."""
    seeds = sorted({s.seed for s in ctx.counted if s.seed is not None})
    if len(seeds) < p.min_seeds:
        yield r.finding(
            f"{len(seeds)} distinct seed(s) with a scored log ({', '.join(map(str, seeds)) or 'none'}); "
            f"the track requires {p.min_seeds}", Location(str(ctx.record.path)),
            data={"seeds": seeds, "min_seeds": p.min_seeds})


@rule("PG-SEEDS-002", "seed-name-mismatch", "SEEDS", "warning",
      "A log's file name names a different seed from the one the log printed.", policy="figure",
      fix='name each log after the seed it printed')
def seed_name_mismatch(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """A file name that names another seed than the log printed is a misreported label (policy
    `figure`): the seed the log printed (or the claimed one, for forks that print a default)
    is the one counted, so no limit hides behind it."""
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
      "submission.json val_bpb is not the mean of the per-seed scored val_bpb.", ToleranceParams,
      policy="score", scope="record",
      fix='set val_bpb in submission.json to the mean of the scored per-seed val_bpb')
def val_bpb_not_mean(r: Rule, ctx: CheckContext, p: ToleranceParams) -> Iterator[Finding]:
    """`val_bpb` is the record's score: the leaderboard ranks it. A claim that is not the mean of
    the scored logs — the best seed, one seed of several, a figure no log prints — misreports
    the score itself (policy `score`), an error in either direction."""
    claimed = finite_number(ctx.record.submission.get("val_bpb"))
    if claimed is None:  # absent or not a number (PG-CLAIMS-006)
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


def figure_severity(claimed: float, logged: float, cap: int) -> tuple[Severity, str]:
    """A misreported byte figure: an error only when the claim fits the cap and the logs' figure
    does not (it hides a broken limit); a warning otherwise (harness/rulesets/README.md)."""
    if claimed <= cap < logged:
        return Severity.ERROR, f"; the logs' figure is over the {cap:,}-byte cap the claim fits under"
    if logged <= cap:
        return Severity.WARNING, f"; the logs' figure fits the {cap:,}-byte cap"
    return Severity.WARNING, "; the cap breach itself is PG-BYTES-001"


@rule("PG-CLAIMS-002", "bytes-total-not-max", "CLAIMS", "warning",
      "submission.json bytes_total is not the largest per-seed artifact total.",
      policy=("figure", "hidden-limit"), scope="record",
      fix='set bytes_total in submission.json to the largest per-seed total')
def bytes_total_not_max(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """`bytes_total` should be the largest per-seed total. Given as one seed's figure, the mean,
    or a rounded number while every seed fits the cap, it is a misreported figure (policy
    `figure`, a warning); when the claim fits the cap and the largest logged total does not, it
    hides a broken limit (`hidden-limit`, an error)."""
    claimed = finite_number(ctx.record.submission.get("bytes_total"))
    if claimed is None:
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
    elif not which and claimed % 10_000 == 0:
        note = " (a rounded figure)"
    severity, consequence = figure_severity(claimed, largest, ctx.byte_cap)
    yield r.finding(
        f"bytes_total {claimed:,.0f} is not the largest per-seed total {largest:,}{note}{consequence}",
        ctx.submission_loc("bytes_total"), severity=severity,
        evidence=[EvidenceStep(f"seed {s.seed}: total {t.bytes:,}", Location(s.bytes_log.rel, t.line))  # type: ignore[union-attr]
                  for s, t in totals],
        data={"claimed": claimed, "max": largest, "cap": ctx.byte_cap})


@rule("PG-CLAIMS-003", "seed-result-mismatch", "CLAIMS", "error",
      "A per-seed entry of submission.json disagrees with that seed's log.", ToleranceParams,
      policy=("score", "figure", "hidden-limit"),
      fix="copy each seed's figures in submission.json from that seed's log")
def seed_result_mismatch(r: Rule, ctx: CheckContext, p: ToleranceParams) -> Iterator[Finding]:
    """A seed's claimed `val_bpb` or `val_loss` that its log does not print misreports the score
    (policy `score`, an error). Its byte total or step count differing from the log is a
    misreported figure (`figure`, a warning) while the logged figure fits the cap, and an error
    when the claimed total fits and the logged one does not (`hidden-limit`)."""
    cap = ctx.byte_cap
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
            if key.startswith("val_"):
                severity, consequence = Severity.ERROR, f" ({s.scored.name}): the seed's score is misreported"
            elif key == "bytes":
                severity, consequence = figure_severity(claimed, logged, cap)
            else:
                severity, consequence = Severity.WARNING, ": no limit depends on the step count"
            yield r.finding(
                f"{c.source} {key} {_fmt(claimed)} but seed {s.seed}'s log says {_fmt(logged)}{consequence}",
                Location(str(ctx.record.submission_path), c.line) if ctx.record.submission_path else None,
                severity=severity, evidence=[EvidenceStep(f"log: {key} {logged:g}", where)],
                data={"seed": s.seed, "field": key, "claimed": claimed, "logged": logged})


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1000 else repr(x)


@rule("PG-CLAIMS-004", "claimed-seed-without-log", "CLAIMS", "warning",
      "submission.json lists a seed that has no train log in the folder.", policy="figure", scope="record",
      fix="add the seed's train log, or drop the seed from submission.json")
def claimed_seed_without_log(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """A claimed seed with no log is a listing the files do not back (policy `figure`); when the
    headline score counts it, PG-CLAIMS-001 reports the score itself."""
    logged = {s.seed for s in ctx.seeds}
    for seed in claimed_seed_list(ctx.record, ctx.claims):
        if seed not in logged:
            yield r.finding(f"seed {seed} is claimed but no log in the folder printed it",
                            ctx.submission_loc(str(seed)) or ctx.submission_loc("seeds"), data={"seed": seed})


@rule("PG-CLAIMS-005", "no-submission-json", "CLAIMS", "warning",
      "The folder has no submission.json: the claims cannot be checked.", UndecidedParams,
      policy="unestablished", scope="record",
      fix='add a submission.json')
def no_submission_json(r: Rule, ctx: CheckContext, p: UndecidedParams) -> Iterator[Finding]:
    """Without submission.json there is no claim to check (policy `unestablished`)."""
    if ctx.record.submission_path is None:
        yield r.finding("no submission.json: claims not checked", Location(str(ctx.record.path)),
                        undecided=p.undecided)


# Fields of submission.json that hold numbers: top level, and in each `seed_results` entry.
SCORE_FIELDS = ("val_bpb", "val_loss")
FIGURE_FIELDS = ("bytes_total", "artifact_bytes", "bytes", "total_bytes", "steps")


def _not_numbers(values: dict, prefix: str, at: tuple[str, ...] = ()) -> Iterator[tuple[str, str, object, tuple[str, ...]]]:
    """(field, where it is shown, value, its key path in the file) of each figure that is no number."""
    for key in SCORE_FIELDS + FIGURE_FIELDS:
        if key in values and values[key] is not None and finite_number(values[key]) is None:
            yield key, f"{prefix}{key}", values[key], (*at, key)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@rule("PG-CLAIMS-006", "claim-not-a-number", "CLAIMS", "error",
      "A figure of submission.json that must be a number is not one (a string, list, NaN, infinity, absurd size).",
      policy=("score", "figure"),
      fix='write each figure of submission.json as a plain finite number')
def claim_not_a_number(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """A claim that is not a finite number cannot be compared with the logs. For `val_bpb` and
    `val_loss` that leaves the score itself unclaimed (policy `score`, an error); for a byte total,
    a step count or a seed it is a misreported figure (`figure`, a warning). Either way it is a
    finding with the field and its value, never a crash of the check."""
    sub = ctx.record.submission
    found = list(_not_numbers(sub, ""))
    block = sub.get("seed_results")
    entries = block.items() if isinstance(block, dict) else enumerate(block) if isinstance(block, list) else ()
    for key, entry in entries:
        # a list entry has no key to find it by: its findings point at `seed_results`
        at = ("seed_results",) if isinstance(block, list) else ("seed_results", str(key))
        if isinstance(entry, dict):
            for k, w, v, path in _not_numbers(entry, f'seed_results[{key!r}].', at):
                found.append((k, w, v, path if len(at) > 1 else at))
        elif finite_number(entry) is None and not isinstance(block, list):
            found.append(("val_bpb", f"seed_results[{key!r}]", entry, at))
    seeds = sub.get("seeds")
    for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
        if isinstance(seed, bool) or not isinstance(seed, (int, str)) or not str(seed).strip().lstrip("-").isdigit():
            found.append(("seed", f"seeds[{i}]", seed, ("seeds",)))
    for key, where, value, path in found:
        score = key in SCORE_FIELDS
        yield r.finding(
            f"submission.json {where} is {_shown(value)}, not a number"
            + (": the score is not claimed as a number" if score else ": the figure cannot be checked"),
            ctx.submission_loc(*path),
            severity=Severity.ERROR if score else Severity.WARNING,
            data={"field": where, "value": _shown(value)})
