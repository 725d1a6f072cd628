"""Checks: a record's limits and claims, judged by rules selected in a versioned rule set.

Public API (other parts of pgolf build on these names):
    run_checks(record, ruleset, against=None) -> list[Finding]
    check_record(record, ruleset=None, against=None, subset=None, not_evaluated=None) -> Report
                                  (findings + per-seed table + the role of every log)
    seed_table(record, ruleset, against=None) -> list[dict]      (the per-seed figures)
    baseline_from_record(path) / baseline_from_losses("a,b,c") -> Baseline

Severities follow the policy in harness/rulesets/README.md; each rule names its clause.
`subset` (a reproduction of only some seeds) and `not_evaluated` ({rule id: why}) turn rules
into one note each saying why they were not evaluated, instead of running them.

`record` may be any folder `harness.records.load_record` reads, including a plain folder of
reproduced logs and a submission.json: `pgolf reproduce` checks its own logs with the same
rules, so nothing here assumes an upstream record layout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.checks import rules_claims, rules_evidence, rules_limits, rules_logs, rules_score  # noqa: F401  (register rules)
from harness.checks.context import Baseline, CheckContext, SeedFigures, build_context, finite_number
from harness.checks.registry import RULES, Rule, rule
from harness.checks.rules_logs import log_inventory
from harness.errors import InputError
from harness.findings import Finding, Location, Severity
from harness.records import Record, load_record

__all__ = [
    "RULES", "Rule", "rule", "Baseline", "CheckContext", "SeedFigures", "build_context",
    "run_checks", "check_record", "seed_table", "baseline_from_record", "baseline_from_losses",
]

_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}


def _ruleset(record: Record, ruleset: Any):
    from harness.rulesets import Ruleset, load_ruleset, ruleset_for_track

    if isinstance(ruleset, Ruleset):
        return ruleset
    return load_ruleset(ruleset or ruleset_for_track(record.track))


def _not_evaluated(r: Rule, ctx: CheckContext, why: str) -> Finding:
    return r.finding(f"not evaluated: {why}", Location(str(ctx.record.path)), severity=Severity.NOTE,
                     data={"not_evaluated": why})


def _run(ctx: CheckContext, not_evaluated: dict[str, str] | None = None) -> list[Finding]:
    out: list[Finding] = []
    for rule_id, params in ctx.ruleset.checks.items():
        r = RULES[rule_id]
        if not_evaluated and rule_id in not_evaluated:
            out.append(_not_evaluated(r, ctx, not_evaluated[rule_id]))
        elif ctx.subset and r.scope == "record":
            out.append(_not_evaluated(r, ctx, f"subset of seeds ({ctx.subset})"))
        else:
            out.extend(r.fn(r, ctx, params))
    out.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule_id))
    return out


def run_checks(record: Record, ruleset: Any = None, against: Baseline | None = None) -> list[Finding]:
    """Every finding of the rule set's checks on `record`, errors first. `ruleset` is a `Ruleset`,
    a built-in name or a path; None picks the set for the record's track."""
    return _run(build_context(record, _ruleset(record, ruleset), against))


def seed_table(record: Record, ruleset: Any = None, against: Baseline | None = None) -> list[dict[str, Any]]:
    """The per-seed figures: scored phase (and why), val_bpb, val_loss, bytes, train and eval times."""
    return [s.row() for s in build_context(record, _ruleset(record, ruleset), against).seeds]


def check_record(record: Record, ruleset: Any = None, against: Baseline | None = None,
                 subset: str | None = None, not_evaluated: dict[str, str] | None = None):
    """Run the checks and wrap them in a `Report` (kind "check") with the per-seed table in
    `data["seeds"]`, every file's role in `data["logs"]`, the tokenizer the logs print, and the
    rule set stamped into `stamp["ruleset"]`. `subset` and `not_evaluated`: see the module
    docstring."""
    from harness.report import Report, make_stamp

    rs = _ruleset(record, ruleset)
    ctx = build_context(record, rs, against)
    ctx.subset = subset
    findings = _run(ctx, not_evaluated)
    # what reading the files found (links not followed, files over their read cap), errors first
    findings = sorted(getattr(record, "findings", []) + findings, key=lambda f: _SEVERITY_ORDER[f.severity])
    rows = [s.row() for s in ctx.seeds]
    scored = [r["val_bpb"] for r in rows if r["val_bpb"] is not None and r["seed"] is not None]
    data = {
        "record": record.name,
        "track": record.track,
        "track_source": record.track_source,
        "ruleset": rs.to_dict(),
        "claimed_val_bpb": finite_number(record.submission.get("val_bpb")),
        "mean_val_bpb": sum(scored) / len(scored) if scored else None,
        "seeds": rows,
        "logs": log_inventory(ctx),
        "tokenizer": ctx.tokenizer.to_dict(),
        "scored_phase_rule": "the phase whose val_bpb matches the seed's claim; else the phase the "
                             "other seeds matched; else the last _exact phase; else the last phase",
    }
    if subset:
        data["subset"] = subset
    if against is not None:
        data["baseline"] = {"source": against.source, "val_losses": against.val_losses, "val_bpbs": against.val_bpbs,
                            "tokenizer": against.tokenizer.to_dict() if against.tokenizer else None}
        stats = next((f for f in findings if f.rule_id == "PG-STATS-001"), None)
        if stats is not None and "unit" in stats.data:
            data["significance_unit"] = stats.data["unit"]
    return Report("check", str(record.path), findings, data, make_stamp(ruleset=rs.label))


def baseline_from_record(path: str | Path, ruleset: Any = None) -> Baseline:
    """The per-seed scored `val_loss` of another record folder (the one to beat)."""
    rec = load_record(path)
    ctx = build_context(rec, _ruleset(rec, ruleset))
    seeds = [s for s in ctx.counted if s.scored.val_loss is not None]
    if not seeds:
        raise InputError("baseline record has no scored val_loss in its logs", str(path))
    return Baseline([s.scored.val_loss for s in seeds], str(path), [s.scored.val_bpb for s in seeds], ctx.tokenizer)


def baseline_from_losses(text: str) -> Baseline:
    """`"2.81,2.80,2.82"` -> Baseline; a non-number is an input error."""
    try:
        losses = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--against-losses: expected comma-separated numbers, got {text!r}") from None
    if not losses:
        raise InputError("--against-losses: no values")
    return Baseline(losses, f"losses {','.join(map(str, losses))}")
