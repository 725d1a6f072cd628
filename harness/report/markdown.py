"""The markdown renderer: for PR comments and issue notes. Generic over any `Report`.

A PR comment is rendered by GitHub, so every field from the report goes through
`harness.escape`: `md_text` for prose (HTML escaped, markdown punctuation escaped, `@` mentions
neutralised, one line), `md_code` for paths and names (a code span nothing inside can close).
Gate reports have their own layout (harness.report.gate_view).
"""
from __future__ import annotations

from typing import Callable

from harness.escape import md_code, md_text
from harness.findings import Finding, Location
from harness.report import Report, renderer
from harness.report.tables import cell, free_text, grouped, plural, tables, verdict_line


def finding_lines(f: Finding, locate: Callable[[Location], str] = str) -> list[str]:
    """A finding as a list item: **id** `where` — message, then its evidence chain indented;
    `locate` writes a location (the gate view writes it relative to the record folder)."""
    shown = locate(f.location) if f.location is not None else ""
    at = f" {md_code(shown)}" if shown else ""
    lines = [f"- **{md_text(f.rule_id)}**{at} — {md_text(f.message)}"]
    for step in f.evidence:
        loc = f" ({md_code(locate(step.location))})" if step.location is not None else ""
        lines.append(f"  - {md_text(step.message)}{loc}")
    return lines


def table_lines(cols: list[str], rows: list[dict]) -> list[str]:
    out = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(md_text(cell(r.get(c), c)) for c in cols) + " |")
    return out


def data_tables(report: Report, out: list[str], h: str) -> None:
    for name, cols, rows in tables(report.data):
        out.append(f"{h} {md_text(name.capitalize())}")
        out.append("")
        out.extend(table_lines(cols, rows))
        out.append("")
        for key, label, text in free_text(rows, cols[0]):
            out.append(f"- {md_text(key)} \\[{md_text(label)}\\]: {md_text(text)}")
        out.append("")


def _body(report: Report, out: list[str], level: int) -> None:
    h = "#" * level
    for sev, fs in grouped(report.findings):
        out.append(f"{h} {plural(sev, len(fs)).capitalize()}")
        out.append("")
        for f in fs:
            out.extend(finding_lines(f))
        out.append("")
    data_tables(report, out, h)


@renderer("markdown")
def render_markdown(report: Report) -> str:
    if report.kind == "gate":
        from harness.report.gate_view import gate_markdown

        return gate_markdown(report)
    out = [f"## pgolf {md_text(report.kind)}: {md_code(report.subject)}", "", f"**{md_text(verdict_line(report))}**", ""]
    if not report.findings and not report.children:
        out += ["No findings.", ""]
    _body(report, out, 3)
    if report.children:
        out += ["### Parts", "", "| part | subject | verdict | errors | warnings | notes |", "|---|---|---|---|---|---|"]
        for c in report.children:
            counts = [sum(1 for f in c.all_findings() if f.severity.value == s) for s in ("error", "warning", "note")]
            out.append(f"| {md_text(c.kind)} | {md_code(c.subject, in_table=True)} | {c.verdict.value} | "
                       + " | ".join(map(str, counts)) + " |")
        out.append("")
        for c in report.children:
            if c.findings:
                out.append(f"#### {md_text(c.kind)} {md_code(c.subject)}: {c.verdict.value}")
                out.append("")
                _body(c, out, 5)
    return "\n".join(out).rstrip("\n") + "\n"
