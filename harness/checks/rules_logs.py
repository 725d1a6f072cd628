"""Every file of a record accounted for: which log is each seed's score, which are extra runs,
which files are not train logs; and an extra run over a limit named as such.

A folder may ship more than one log per seed (reruns, an eval-only rerun next to its training
run, a first attempt that ran 2,400 s) and files that are not logs. The check scores one log per
seed (harness.checks.context); `log_inventory` gives every file its role, shown in every output
format as the `logs` table:

- `scored`: the log that is the seed's score;
- `training run`: another log of the seed that supplies the bytes or train time the scored
  (eval-only) log does not print;
- `extra run`: any other log of a seed — judged against the limits by PG-SEEDS-003;
- `not counted`: a log that prints no seed while other logs do;
- `no result`: a log that prints no evaluation result (PG-PARSE-001 says more);
- `other file`: not a train log (requirements.txt, a summary, a non-log `.txt`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from harness.checks.context import CheckContext
from harness.checks.registry import Finding, Rule, rule
from harness.checks.rules_limits import (DataAfterClockParams, EvalParams, TrainParams, cap_message, over_cap,
                                         train_overrun, training_data_overrun)
from harness.checks.scored import scored_eval_ms
from harness.findings import Location, Severity
from harness.records import LogFile


def _rel(ctx: CheckContext, lf: LogFile) -> str:
    try:
        return lf.path.relative_to(ctx.record.path).as_posix()
    except ValueError:
        return lf.path.name


def log_roles(ctx: CheckContext) -> list[tuple[LogFile, str]]:
    """(log, role) for every log of the record, in file order."""
    counted = {id(s.log) for s in ctx.counted}
    roles: dict[int, str] = {}
    for s in ctx.seeds:
        if s.scored is None:
            continue
        roles[id(s.log)] = "scored" if id(s.log) in counted else "not counted"
        for support in (s.bytes_log, s.train_log):
            if support is not s.log:
                roles.setdefault(id(support), "training run")
        for o in s.others:
            roles.setdefault(id(o), "extra run" if s.seed is not None else "not counted")
    out = []
    for lf in ctx.record.logs:
        phase = ctx.choices.get(lf.rel)
        role = roles.get(id(lf))
        if phase is None or phase.phase is None:
            role = "no result" if role in (None, "extra run", "not counted") else role
        out.append((lf, role or "not counted"))
    return out


def log_inventory(ctx: CheckContext) -> list[dict[str, Any]]:
    """One row per file of the record that is not code: its role, seed and main figures."""
    rows: list[dict[str, Any]] = []
    for lf, role in log_roles(ctx):
        ch = ctx.choices.get(lf.rel)
        run = lf.run
        tt = run.train_time_ms
        total = run.bytes_total
        rows.append({
            "file": _rel(ctx, lf), "role": role + (f" of seed {lf.seed}" if lf.seed is not None and role != "scored" else ""),
            "seed": lf.seed, "val_bpb": ch.phase.val_bpb if ch and ch.phase else None,
            "train_s": round(tt.value / 1000.0, 3) if tt else None,
            "bytes_total": total.bytes if total else None,
        })
    sub = ctx.record.submission_path
    for rel, why in sorted(ctx.record.other_files.items()):
        if sub is not None and rel == sub.name:
            role = "the claims (submission.json)"
        elif rel == "README.md":
            role = "the README"
        else:
            role = f"other file: {why}"
        rows.append({"file": rel, "role": role, "seed": None, "val_bpb": None, "train_s": None, "bytes_total": None})
    return rows


def _limit_breaches(ctx: CheckContext, lf: LogFile) -> Iterator[tuple[str, int | None, dict]]:
    """(what, line, data) for every limit the log breaks as scored evidence would: the checks
    that are selected in the rule set, with their own numbers."""
    rs = ctx.ruleset
    run = lf.run
    cap = rs.params("PG-BYTES-001")
    if cap is not None:
        total = over_cap(run, cap.cap_bytes)
        if total is not None:
            yield cap_message(total, cap.cap_bytes), total.line, {"limit": "bytes", "bytes_total": total.bytes}
    train = rs.params("PG-TIME-001")
    if isinstance(train, TrainParams):
        o = train_overrun(run, train, lf.seed)
        if o is not None and o.severity is Severity.ERROR:
            yield (f"train_time {o.data['train_s']:.3f} s, over the {train.limit_seconds:g} s budget", o.line,
                   {"limit": "train", **o.data})
    data = rs.params("PG-TIME-005")
    if isinstance(data, DataAfterClockParams):
        o = training_data_overrun(run, data, lf.seed)
        if o is not None and o.severity is Severity.ERROR:
            yield (f"training plus calibration on training data {o.data['total_s']:.3f} s, over the "
                   f"{data.limit_seconds:g} s budget", o.line, {"limit": "training data", **o.data})
    ev = rs.params("PG-TIME-002")
    ch = ctx.choices.get(lf.rel)
    if isinstance(ev, EvalParams) and ch is not None and ch.phase is not None:
        t = scored_eval_ms(run, ch.phase)
        if t is not None and t.value / 1000.0 > ev.limit_seconds:
            yield (f"{ch.phase.name} took {t.value / 1000:.1f} s, over the {ev.limit_seconds:g} s eval budget", t.line,
                   {"limit": "eval", "eval_s": t.value / 1000.0})


@rule("PG-SEEDS-003", "extra-run-over-limit", "SEEDS", "warning",
      "A log that is not a seed's scored evidence (an extra run) breaks a limit of the track.", policy="not-scored",
      fix="drop the extra run's log, or say in the README why it is there and that it is not scored")
def extra_run_over_limit(r: Rule, ctx: CheckContext, p) -> Iterator[Finding]:
    """A folder may ship more runs of a seed than the one it scores: reruns, a first attempt.
    Their limits do not decide the record, since the score comes from another log (policy
    `not-scored`), but a run over a limit next to the scored one is worth a reviewer's eye (a
    folder shipping four runs of one seed, one of which trained 2,400 s): a warning naming the
    log. The limits and their numbers are those of the rule set's own checks (PG-BYTES-001,
    PG-TIME-001, PG-TIME-002, PG-TIME-005), judged as they judge scored evidence."""
    for lf, role in log_roles(ctx):
        if role not in ("extra run", "not counted"):
            continue
        for what, line, data in _limit_breaches(ctx, lf):
            seed = f"seed {lf.seed}" if lf.seed is not None else "no seed printed"
            yield r.finding(f"{_rel(ctx, lf)} ({role}, {seed}; not the scored log): {what}",
                            Location(lf.rel, line), data={"log": _rel(ctx, lf), "role": role, "seed": lf.seed, **data})
