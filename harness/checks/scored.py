"""Which evaluation phase is a seed's score, and "equal to the precision it was written with".

A log prints several evaluation phases (roundtrip, sliding window, TTT, `_exact` twins,
diagnostics). The score is the phase whose `val_bpb` matches what the submission claims for
that seed; when nothing matches, the same phase the other seeds matched; otherwise the last
`_exact` phase (the full-precision print of the final metric in upstream scripts); otherwise the
last non-diagnostic phase. The reason is kept and shown, so a reviewer can disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.logs import EvalPhase, Located, RunLog


def decimals(x: float) -> int:
    """Decimal places in the shortest repr of `x` (1.0728 -> 4, 1.06128183 -> 8, 2 -> 0)."""
    s = repr(float(x))
    if "e" in s or "E" in s:
        mant, exp = s.lower().split("e")
        d = len(mant.split(".")[1]) if "." in mant else 0
        return max(0, d - int(exp))
    if "." not in s:
        return 0
    frac = s.split(".")[1]
    return 0 if frac == "0" else len(frac)


def agrees(value: float, claimed: float, value_decimals: int | None = None, tol: float = 1e-9) -> bool:
    """True when `value` equals `claimed` to the coarser of the two precisions:
    |value - claimed| <= 0.5 * 10^-d + tol, d = min(decimals(claimed), value_decimals)."""
    d = decimals(claimed)
    if value_decimals is not None:
        d = min(d, value_decimals)
    return abs(value - claimed) <= 0.5 * 10.0 ** (-d) + tol


def precision(phase: EvalPhase) -> int:
    """Decimals of a phase's val_bpb as the log printed it (trailing zeros count)."""
    return phase.bpb_decimals if phase.bpb_decimals is not None else decimals(phase.val_bpb)


@dataclass(frozen=True)
class ScoredChoice:
    phase: EvalPhase | None
    reason: str
    by_claim: bool  # chosen because it matched the claimed value


def _candidates(run: RunLog) -> list[EvalPhase]:
    return [p for p in run.phases if not p.diagnostic]


def choose_scored_phase(run: RunLog, claimed_bpb: float | None = None, claim_source: str = "",
                        preferred_name: str | None = None) -> ScoredChoice:
    """Pick the scored phase of one log (see the module docstring for the order)."""
    phases = _candidates(run)
    if claimed_bpb is not None:
        matches = [p for p in phases if agrees(p.val_bpb, claimed_bpb, precision(p))]
        if matches:
            exact = [p for p in matches if p.exact]
            best = (exact or matches)[-1]
            return ScoredChoice(best, f"val_bpb {best.val_bpb} matches the claimed {claimed_bpb} ({claim_source})", True)
    if preferred_name:
        base = preferred_name[:-6] if preferred_name.endswith("_exact") else preferred_name
        same = [p for p in phases if p.name in (base, base + "_exact")]
        if same:
            best = ([p for p in same if p.exact] or same)[-1]  # the full-precision twin when printed
            return ScoredChoice(best, f"same phase as the seeds whose claims matched ({base})", False)
    lead = f"no phase matches the claimed {claimed_bpb} ({claim_source}); " if claimed_bpb is not None else "no per-seed claim; "
    exact = [p for p in phases if p.exact]
    if exact:
        return ScoredChoice(exact[-1], lead + "last _exact phase", False)
    if phases:
        return ScoredChoice(phases[-1], lead + "last evaluation phase (no _exact line)", False)
    return ScoredChoice(None, "the log prints no evaluation result", False)


def scored_eval_ms(run: RunLog, phase: EvalPhase) -> Located[float] | None:
    """Eval time of the scored phase. `_exact` lines print no time: it belongs to the phase
    printed just before with the same name minus `_exact`, else to the latest earlier phase
    that printed a time and agrees on val_bpb at 4 decimals (e.g. `final_int8_zlib_roundtrip_exact`
    re-printing the sliding-window score)."""
    if phase.eval_time_ms is not None:
        return Located(phase.eval_time_ms, phase.line)
    earlier = [p for p in run.phases if p.line < phase.line and p.eval_time_ms is not None]
    base = phase.name.replace("_exact", "")
    for p in reversed(earlier):
        if p.name == base:
            return Located(p.eval_time_ms, p.line)  # type: ignore[arg-type]
    for p in reversed(earlier):
        if abs(round(p.val_bpb, 4) - round(phase.val_bpb, 4)) < 1e-9:
            return Located(p.eval_time_ms, p.line)  # type: ignore[arg-type]
    return None


def all_eval_ms(run: RunLog) -> Located[float] | None:
    """All evaluation time of a log: its `total_eval_time` line if printed, else the sum over
    distinct results. One result is often printed twice (a TTT `done ... elapsed=` line, then
    `legal_ttt ... eval_time:`); phases agreeing on val_bpb at 4 decimals count once, at their
    longest time."""
    if run.total_eval is not None:
        return Located(run.total_eval.value * 1000.0, run.total_eval.line)
    groups: dict[float, float] = {}
    last_line = None
    for p in run.phases:
        if p.eval_time_ms is None:
            continue
        key = round(p.val_bpb, 4)
        groups[key] = max(groups.get(key, 0.0), p.eval_time_ms)
        last_line = p.line
    if not groups or last_line is None:
        return None
    return Located(sum(groups.values()), last_line)
