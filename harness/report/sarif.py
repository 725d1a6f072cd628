"""SARIF 2.1.0 renderer, for GitHub code scanning and other SARIF consumers.

One run, tool `pgolf`, one `rules` entry per rule id that appears (id, message, rationale,
condition), one `result` per finding with level error/warning/note, its location and the
evidence chain as `relatedLocations`. Undecided findings (REVIEW) carry `kind: "review"`.
Validated against the official schema in tests/test_audit_cli.py.

Submitted text is made safe for SARIF consumers (harness.escape): paths become percent-encoded
relative URIs, messages plain text without control characters, and no number is non-finite.
"""
from __future__ import annotations

from harness import __version__
from harness.escape import finite, sarif_text, sarif_uri
from harness.findings import Finding
from harness.report import Report, renderer
from harness.report.json_report import dumps

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"


def _rule_meta(rule_id: str) -> dict:
    try:
        from audit.static.rules import RULES
    except Exception:  # the audit package is optional for other reports
        RULES = {}
    cls = RULES.get(rule_id)
    meta = {"id": rule_id}
    if cls is not None:
        meta["shortDescription"] = {"text": cls.message}
        meta["fullDescription"] = {"text": cls.rationale() or cls.message}
        meta["properties"] = {"condition": cls.condition, "confidence": cls.confidence}
    else:  # a check, gate or input rule: its one-line summary and fix
        from harness.report.hints import why

        if (summary := why(rule_id)):
            meta["shortDescription"] = {"text": summary}
    from harness.report.hints import rule_fix

    if (help_text := rule_fix(rule_id)):
        meta["help"] = {"text": help_text}
    return meta


def _location(loc) -> dict:
    phys = {"artifactLocation": {"uri": sarif_uri(loc.path)}}
    if loc.line is not None:
        region = {"startLine": loc.line}
        if loc.column is not None:
            region["startColumn"] = loc.column
        if loc.end_line is not None:
            region["endLine"] = loc.end_line
        phys["region"] = region
    return {"physicalLocation": phys}


def _result(f: Finding, rule_index: dict[str, int]) -> dict:
    res = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index[f.rule_id],
        "level": f.severity.value,
        "kind": "review" if f.undecided else "fail",
        "message": {"text": sarif_text(f.message)},
        "properties": {"condition": f.condition, "confidence": f.confidence},
    }
    if f.location is not None:
        res["locations"] = [_location(f.location)]
    related = []
    for i, step in enumerate(f.evidence):
        rl = {"id": i, "message": {"text": sarif_text(step.message)}}
        if step.location is not None:
            rl.update(_location(step.location))
        related.append(rl)
    if related:
        res["relatedLocations"] = related
    return res


@renderer("sarif")
def render_sarif(report: Report) -> str:
    findings = report.all_findings()
    ids = sorted({f.rule_id for f in findings})
    rule_index = {rid: i for i, rid in enumerate(ids)}
    doc = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "pgolf", "version": __version__, "informationUri": "https://github.com/openai/parameter-golf",
                                "rules": [_rule_meta(r) for r in ids]}},
            "results": [_result(f, rule_index) for f in findings],
            "properties": {"verdict": report.verdict.value, "subject": sarif_text(report.subject)},
        }],
    }
    return dumps(finite(doc)[0])
