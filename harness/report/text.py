"""The text renderer: what a reviewer reads in a terminal. Generic over any `Report`."""
from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from harness.findings import Finding
from harness.report import Report, renderer
from harness.report.tables import cell, free_text, grouped, plural, tables, verdict_line


def _finding_lines(f: Finding, indent: str = "  ") -> list[str]:
    where = f" {f.location}" if f.location is not None else ""
    lines = [f"{indent}{f.rule_id}{where}: {f.message}"]
    for step in f.evidence:
        at = f" ({step.location})" if step.location is not None else ""
        lines.append(f"{indent}    - {step.message}{at}")
    return lines


def rich_table(columns: list[str], rows: list[list[str]], title: str | None = None, width: int = 200) -> str:
    """A plain-box table as text (rich, no colour), for terminals and saved files alike."""
    t = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, overflow="fold", no_wrap=i == 0)
    for r in rows:
        t.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(t)
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
            out.append(f"{indent}  {key} [{label}]: {text}")


@renderer("text")
def render_text(report: Report) -> str:
    out = [f"pgolf {report.kind}: {report.subject}", verdict_line(report)]
    if not report.findings and not report.children:
        out.append("no findings")
    _body(report, out)
    for child in report.children:
        out.append("")
        out.append(f"== {child.kind} {child.subject}: {child.verdict.value}")
        _body(child, out, "  ")
    return "\n".join(out) + "\n"
