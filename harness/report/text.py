"""The text renderer: what a reviewer reads in a terminal or a CI log. Generic over any `Report`.

Every field from the report is printed through `harness.escape.terminal` (escape sequences
removed, control characters and newlines shown as `\\xNN` / `\\n`), and table cells are rich
`Text` objects, so a `[/]` or `[link=…]` in a phase or file name is printed, never interpreted.
Gate reports have their own layout (harness.report.gate_view).
"""
from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from harness.escape import rich_text, terminal
from harness.findings import Finding
from harness.report import Report, renderer
from harness.report.tables import cell, free_text, grouped, plural, tables, verdict_line


def _finding_lines(f: Finding, indent: str = "  ") -> list[str]:
    where = f" {terminal(f.location)}" if f.location is not None else ""
    lines = [f"{indent}{terminal(f.rule_id)}{where}: {terminal(f.message)}"]
    for step in f.evidence:
        at = f" ({terminal(step.location)})" if step.location is not None else ""
        lines.append(f"{indent}    - {terminal(step.message)}{at}")
    return lines


def rich_table(columns: list[str], rows: list[list[str]], title: str | None = None, width: int = 200) -> str:
    """A plain-box table as text (rich, no colour), for terminals and saved files alike. Cells
    are escaped for the terminal and never parsed as rich markup."""
    t = Table(box=box.SIMPLE_HEAD, title=rich_text(title) if title else None, title_justify="left",
              show_edge=False, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(rich_text(c), overflow="fold", no_wrap=i == 0)
    for r in rows:
        t.add_row(*(rich_text(x) for x in r))
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False, markup=False,
            emoji=False, highlight=False).print(t)
    return buf.getvalue()


def _body(report: Report, out: list[str], indent: str = "") -> None:
    for sev, fs in grouped(report.findings):
        out.append(f"{indent}{plural(sev, len(fs))}")
        for f in fs:
            out.extend(_finding_lines(f, indent + "  "))
    for name, cols, rows in tables(report.data):
        out.append("")
        out.append(rich_table(cols, [[cell(r.get(c), c) for c in cols] for r in rows], title=name).rstrip("\n"))
        for key, label, text in free_text(rows, cols[0]):
            out.append(f"{indent}  {key} [{terminal(label)}]: {terminal(text)}")


@renderer("text")
def render_text(report: Report) -> str:
    if report.kind == "gate":
        from harness.report.gate_view import gate_text

        return gate_text(report)
    out = [f"pgolf {terminal(report.kind)}: {terminal(report.subject)}", terminal(verdict_line(report))]
    if not report.findings and not report.children:
        out.append("no findings")
    _body(report, out)
    for child in report.children:
        out.append("")
        out.append(f"== {terminal(child.kind)} {terminal(child.subject)}: {child.verdict.value}")
        _body(child, out, "  ")
    return "\n".join(out) + "\n"
