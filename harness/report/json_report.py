"""The JSON renderer: the documented contract (see `harness.report`)."""
from __future__ import annotations

import json

from harness.report import Report, renderer


@renderer("json")
def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str) + "\n"
