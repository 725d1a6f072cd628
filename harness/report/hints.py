"""Why a rule exists and how to fix a finding, in one line each: what a PR author reads first.

`why(rule_id)` is the rule's own one-line summary wherever it is registered (the check
registry, the audit rule classes, the file and gate rules). `rule_fix(rule_id)` is the rule's
general fix: a check rule's `fix`, a file or gate rule's hint, else its area's (`FIX_BY_AREA`,
for the audit's rules); the PR comment and the SARIF `help` both read it. `fix(finding)` is the
finding's own hint (`data["hint"]`, set where the fix depends on the case: "drop the README.md
change"), else `rule_fix`. Both return None when there is nothing useful to say.
"""
from __future__ import annotations

from harness.findings import Finding

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


def rule_fix(rule_id: str) -> str | None:
    """The rule's general fix: the check registry's `fix`, a file or gate rule's hint, else the
    fix of its area (the audit's condition families)."""
    from harness.gate import GATE_RULES
    from harness.records import INPUT_RULES

    try:
        from harness.checks.registry import RULES as CHECKS

        if rule_id in CHECKS and CHECKS[rule_id].fix:
            return CHECKS[rule_id].fix
    except Exception:  # noqa: BLE001 - a hint is never worth a crash
        pass
    for r in (*GATE_RULES, *INPUT_RULES):
        if r.rule_id == rule_id and r.hint:
            return r.hint
    return next((text for prefix, text in FIX_BY_AREA.items() if rule_id.startswith(prefix)), None)


def fix(f: Finding) -> str | None:
    """The fix to show under a finding: its own hint, else the rule's (`rule_fix`)."""
    hint = f.data.get("hint") if isinstance(f.data, dict) else None
    if isinstance(hint, str) and hint:
        return hint
    return rule_fix(f.rule_id)
