"""The markdown renderer: for PR comments and issue notes. Generic over any `Report`."""
from __future__ import annotations

from harness.findings import Finding
from harness.report import Report, renderer
from harness.report.tables import cell, free_text, grouped, plural, tables, verdict_line


def _esc(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _finding(f: Finding) -> list[str]:
    where = f" `{f.location}`" if f.location is not None else ""
    lines = [f"- **{f.rule_id}**{where} — {_esc(f.message)}"]
    for step in f.evidence:
        at = f" (`{step.location}`)" if step.location is not None else ""
        lines.append(f"  - {_esc(step.message)}{at}")
    return lines


def _body(report: Report, out: list[str], level: int) -> None:
    h = "#" * level
    for sev, fs in grouped(report.findings):
        out.append(f"{h} {plural(sev, len(fs)).capitalize()}")
        out.append("")
        for f in fs:
            out.extend(_finding(f))
        out.append("")
    for name, cols, rows in tables(report.data):
        out.append(f"{h} {name.capitalize()}")
        out.append("")
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            out.append("| " + " | ".join(_esc(cell(r.get(c), c)) for c in cols) + " |")
        out.append("")
        for key, label, text in free_text(rows, cols[0]):
            out.append(f"- {key} [{label}]: {_esc(text)}")
        out.append("")


@renderer("markdown")
def render_markdown(report: Report) -> str:
    out = [f"## pgolf {report.kind}: `{report.subject}`", "", f"**{verdict_line(report)}**", ""]
    if not report.findings and not report.children:
        out += ["No findings.", ""]
    _body(report, out, 3)
    if report.children:
        out += ["### Parts", "", "| part | subject | verdict | errors | warnings | notes |", "|---|---|---|---|---|---|"]
        for c in report.children:
            counts = [sum(1 for f in c.all_findings() if f.severity.value == s) for s in ("error", "warning", "note")]
            out.append(f"| {c.kind} | `{_esc(c.subject)}` | {c.verdict.value} | " + " | ".join(map(str, counts)) + " |")
        out.append("")
        for c in report.children:
            if c.findings:
                out.append(f"#### {c.kind} `{_esc(c.subject)}`: {c.verdict.value}")
                out.append("")
                _body(c, out, 5)
    return "\n".join(out).rstrip("\n") + "\n"
