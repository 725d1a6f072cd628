"""Shared pieces of the text and markdown renderers: grouping findings, picking table columns.

Renderers stay generic over any `Report`: findings grouped by severity with `path:line`, and
any list of flat rows found in `report.data` (e.g. the per-seed figures of `pgolf check`,
`data["seeds"]`) shown as a table. Long free-text columns are listed under the table instead.
"""
from __future__ import annotations

from typing import Any

from harness.findings import Finding, Severity

SEVERITIES = (Severity.ERROR, Severity.WARNING, Severity.NOTE)
TABLE_KEYS = ("seeds", "table", "rows", "logs")  # "logs": every file of a checked record and its role
# Preferred column order for the per-seed table; unknown columns follow in row order.
PREFERRED = ("seed", "log", "scored_phase", "val_bpb", "val_loss", "bytes_total", "train_s",
             "scored_eval_s", "all_eval_s", "steps", "world_size")
FREE_TEXT = ("why_scored",)  # shown as "key: seed -> text" lines under the table
_SKIP = ("scored_line", "bytes_label", "other_logs", "bytes_log", "train_log")


def grouped(findings: list[Finding]) -> list[tuple[Severity, list[Finding]]]:
    out = []
    for sev in SEVERITIES:
        fs = [f for f in findings if f.severity is sev]
        if fs:
            out.append((sev, fs))
    return out


def plural(sev: Severity, n: int) -> str:
    return f"{sev.value}{'s' if n != 1 else ''} ({n})"


def tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[dict[str, Any]]]]:
    """(name, columns, rows) for every list of flat dict rows in `data` under a table key."""
    out = []
    for key in TABLE_KEYS:
        rows = data.get(key)
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            continue
        seen: list[str] = []
        for r in rows:
            for k, v in r.items():
                if k not in seen and k not in _SKIP and k not in FREE_TEXT and not isinstance(v, (list, dict)):
                    seen.append(k)
        cols = [c for c in PREFERRED if c in seen] + [c for c in seen if c not in PREFERRED] if key == "seeds" else seen
        out.append((key, cols, rows))
    return out


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and not isinstance(value, bool) and "bytes" in column:
        return f"{value:,}"
    if column == "log" and isinstance(value, str):
        return value.rsplit("/", 1)[-1]
    return str(value)


def free_text(rows: list[dict[str, Any]], first_col: str) -> list[tuple[str, str, str]]:
    """(column, row label, text) for free-text columns, e.g. why each seed's phase was chosen."""
    out = []
    for key in FREE_TEXT:
        for r in rows:
            if r.get(key):
                out.append((key, cell(r.get(first_col)), str(r[key])))
    return out


def verdict_line(report) -> str:
    stamp = report.stamp or {}
    extra = ", ".join(f"{k} {stamp[k]}" for k in ("ruleset", "pgolf") if stamp.get(k))
    return f"verdict: {report.verdict.value}" + (f"   ({extra})" if extra else "")
