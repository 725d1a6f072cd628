"""Why a rule exists and how to fix a finding, in one line each: what a PR author reads first.

`why(rule_id)` is the rule's own one-line summary wherever it is registered (the check
registry, the audit rule classes, the file and gate rules). `fix(finding)` is the finding's own
hint (`data["hint"]`, set where the fix depends on the case: "drop the README.md change") or the
rule's general fix from `FIXES`. Both return None when there is nothing useful to say.
"""
from __future__ import annotations

from harness.findings import Finding

FIXES = {
    "PG-BYTES-001": "shrink the artifact (code + compressed model) to at most 16,000,000 bytes",
    "PG-BYTES-002": "print the total as code + compressed model, measured in the same run",
    "PG-BYTES-003": "print `Total submission size …: N bytes` in each train log",
    "PG-BYTES-004": "count the code uncompressed, or shrink the artifact",
    "PG-TIME-001": "stop training at 600 s of train_time (the wallclock cap)",
    "PG-TIME-002": "make the scored evaluation finish within 600 s",
    "PG-TIME-003": "drop or shorten the diagnostic evaluation phases",
    "PG-TIME-004": "print train_time at the stop and eval_time for the scored phase",
    "PG-SEEDS-001": "add the train logs of at least 3 seeds",
    "PG-SEEDS-002": "name each log after the seed it printed",
    "PG-CLAIMS-001": "set val_bpb in submission.json to the mean of the scored per-seed val_bpb",
    "PG-CLAIMS-002": "set bytes_total in submission.json to the largest per-seed total",
    "PG-CLAIMS-003": "copy each seed's figures in submission.json from that seed's log",
    "PG-CLAIMS-004": "add the seed's train log, or drop the seed from submission.json",
    "PG-CLAIMS-005": "add a submission.json",
    "PG-PARSE-001": "ship the log of a finished run, with its final val_bpb line",
    "PG-PARSE-002": "save the log as UTF-8",
    "PG-PARSE-003": "make submission.json claim the scored phase's val_bpb",
    "PG-STATS-001": "run more seeds or show a larger gain: at least 0.005 nats at p < 0.01",
    "PG-CLAIMS-006": "write each figure of submission.json as a plain finite number",
    "PG-SCORE-001": "divide by the FineWeb validation text's bytes (151,080,000), counted from the tokenizer's pieces",
    "PG-SEEDS-003": "drop the extra run's log, or say in the README why it is there and that it is not scored",
    "PG-TIME-005": "collect calibration data inside the 600 s training budget, before the clock stops",
}
FIX_BY_AREA = {
    "PG-C1-": "make each position's distribution depend only on the artifact and the strict prefix (rules.md, C1)",
    "PG-C2-": "score from a normalized distribution over the whole vocabulary (rules.md, C2)",
    "PG-C3-": "score every validation token before any update that learned from it (rules.md, C3)",
    "PG-C4-": "score each validation token once, and never rescore after adapting (rules.md, C4)",
    "PG-NET-": "remove network access from training and evaluation",
    "PG-DATA-": "train only on the training shards; never calibrate on validation data",
}


def why(rule_id: str) -> str | None:
    """The rule's one-line summary from whichever registry holds it."""
    from harness.gate import GATE_RULES
    from harness.records import INPUT_RULES

    for r in (*GATE_RULES, *INPUT_RULES):
        if r.rule_id == rule_id:
            return r.message
    try:
        from harness.checks.registry import RULES as CHECKS

        if rule_id in CHECKS:
            return CHECKS[rule_id].summary
    except Exception:  # noqa: BLE001 - a hint is never worth a crash
        pass
    try:
        from audit.static.rules import RULES as AUDIT

        if rule_id in AUDIT:
            return AUDIT[rule_id].message
    except Exception:  # noqa: BLE001
        pass
    return None


def fix(f: Finding) -> str | None:
    """The fix to show under a finding: its own hint, else the rule's, else its area's."""
    hint = f.data.get("hint") if isinstance(f.data, dict) else None
    if isinstance(hint, str) and hint:
        return hint
    if f.rule_id in FIXES:
        return FIXES[f.rule_id]
    for prefix, text in FIX_BY_AREA.items():
        if f.rule_id.startswith(prefix):
            return text
    from harness.gate import GATE_RULES
    from harness.records import INPUT_RULES

    for r in (*GATE_RULES, *INPUT_RULES):
        if r.rule_id == f.rule_id and r.hint:
            return r.hint
    return None
