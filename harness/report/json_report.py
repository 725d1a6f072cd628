"""The JSON renderer: the documented contract (see `harness.report`), always valid JSON.

A non-finite number anywhere in the report (a `NaN` parsed from a log or a claim, an infinite
ratio) would make `json.dumps` print bare `NaN`, which no JSON parser accepts: it is written as
`null` and a `PG-REPORT-001` finding names every place where that happened.
"""
from __future__ import annotations

import json
from typing import Any

from harness.escape import finite
from harness.findings import Finding, Severity
from harness.report import Report, renderer

NON_FINITE = "PG-REPORT-001"


def finite_dict(report: Report) -> dict[str, Any]:
    """`report.to_dict()` with NaN and infinities as None, plus a warning listing where."""
    doc, bad = finite(report.to_dict())
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        doc["findings"].append(Finding(
            NON_FINITE, Severity.WARNING, f"non-finite number(s) in the report written as null: {shown}",
            condition="PARSE", data={"paths": bad[:100]}).to_dict())
    return doc


def dumps(doc: Any) -> str:
    """JSON text of plain data: strict (no NaN), ASCII only (no raw control or bidi characters
    reach a terminal that prints it), anything unknown as its string."""
    return json.dumps(doc, indent=2, sort_keys=False, default=str, allow_nan=False, ensure_ascii=True) + "\n"


@renderer("json")
def render_json(report: Report) -> str:
    return dumps(finite_dict(report))
