"""How a gate report reads, in a terminal (`gate_text`) and as the PR comment (`gate_markdown`).

A PR author reads this first, so every error and warning is shown in full: where it is
(`path:line`, relative to the record folder; a change outside the folder by its repository
path), what was found, one line of why (the rule's summary, when the message does not already
say it) and how to fix it (harness.report.hints). Notes are folded (`<details>` in markdown).
The title names the record. Every field passes through harness.escape for its destination.
"""
from __future__ import annotations

from typing import Callable, Iterator

from harness.escape import md_code, md_text, terminal
from harness.findings import Finding, Location, Severity, roll_up
from harness.report import Report
from harness.report.hints import fix, why
from harness.report.tables import SEVERITIES, tables


def _name(subject: str) -> str:
    return subject.rstrip("/").rsplit("/", 1)[-1] or subject


def title_name(report: Report) -> str:
    """The record the report is about: its folder name, or the names of several."""
    names = [_name(p.subject) for p in report.children if p.kind == "record"]
    return ", ".join(names) if names else _name(report.subject)


def where(loc: Location | None, folder: str | None) -> str:
    """`path:line` relative to the record folder (the folder itself is `.`)."""
    if loc is None:
        return ""
    path = loc.path
    if folder and path == folder:
        path = _name(folder) + "/"
    elif folder and path.startswith(folder + "/"):
        path = path[len(folder) + 1:]
    return path + (f":{loc.line}" if loc.line is not None else "")


def _kids(part: Report) -> list[Report]:
    """The check and audit reports of a part: a record's children, or the part itself."""
    return part.children if part.kind == "record" else [part]


def sections(report: Report) -> Iterator[tuple[str | None, Report, list[Finding]]]:
    """(record folder or None for the PR, the part, its findings with its children's)."""
    if report.findings:
        yield None, report, list(report.findings)
    for part in report.children:
        if part.kind == "record":
            yield part.subject, part, part.all_findings()
        else:  # a check or audit report directly under the gate
            yield report.subject, part, part.all_findings()


def counts(report: Report) -> dict[Severity, int]:
    fs = report.all_findings()
    return {s: sum(1 for f in fs if f.severity is s) for s in SEVERITIES}


def _count_line(report: Report) -> str:
    c = counts(report)
    words = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}
    return ", ".join(f"{n} {words[s]}{'s' if n != 1 else ''}" for s, n in c.items())


def _why_line(f: Finding) -> str | None:
    text = why(f.rule_id)
    if not text or f.message.startswith(text) or text in f.message:
        return None
    return text


def parts_line(report: Report) -> list[tuple[str, str, str]]:
    """(record, part kind, verdict) for each check and audit under the gate."""
    out = []
    for folder, part, _ in sections(report):
        if folder is None:
            continue
        for kid in _kids(part):
            out.append((_name(folder), kid.kind, kid.verdict.value))
    return out


def provenance(report: Report) -> list[str]:
    """What the verdict rests on: the diff, the rule sets of the checks, the pgolf version."""
    out = []
    ch = report.data.get("changes") or {}
    if ch:
        out.append(f"{report.data.get('base')}...{report.data.get('head')}: " + ", ".join(f"{n} {k}" for k, n in ch.items()))
    rulesets = sorted({k.stamp.get("ruleset") for _, part, _ in sections(report)
                       for k in _kids(part) if k.stamp.get("ruleset")})
    if rulesets:
        out.append("ruleset " + ", ".join(rulesets))
    out.append(f"pgolf {report.stamp.get('pgolf', '?')}")
    return out


# -- text ----------------------------------------------------------------------------------------
def gate_text(report: Report) -> str:
    if report.data.get("nothing_to_gate"):
        return terminal(report.data.get("summary") or "no record added: nothing to gate") + "\n"
    t = terminal
    out = [f"pgolf gate: {t(title_name(report))}   ({t(report.subject)})",
           f"verdict: {report.verdict.value}   {_count_line(report)}",
           t(" · ".join(provenance(report)))]
    for folder, part, fs in sections(report):
        head = "the pull request" if folder is None else f"record {_name(folder)}"
        out.append("")
        out.append(f"== {t(head)}: {roll_up(fs).value}")
        for sev in SEVERITIES:
            these = [f for f in fs if f.severity is sev]
            if not these:
                continue
            out.append(f"{sev.value}s ({len(these)})")
            for f in these:
                loc = where(f.location, folder)
                out.append(f"  {t(loc) + ': ' if loc else ''}{t(f.rule_id)} {t(f.message)}")
                for step in f.evidence:
                    at = f" ({t(where(step.location, folder))})" if step.location is not None else ""
                    out.append(f"      - {t(step.message)}{at}")
                if sev is not Severity.NOTE:
                    if (w := _why_line(f)):
                        out.append(f"      why: {t(w)}")
                    if (h := fix(f)):
                        out.append(f"      fix: {t(h)}")
    from harness.report.text import rich_table
    from harness.report.tables import cell

    parts = parts_line(report)
    if parts:
        out.append("")
        out.append("parts: " + ", ".join(f"{t(r)} {k} {v}" for r, k, v in parts))
    for _, part, _ in sections(report):
        for kid in _kids(part):
            for name, cols, rows in tables(kid.data):
                out.append("")
                out.append(rich_table(cols, [[cell(r.get(c), c) for c in cols] for r in rows],
                                      title=f"{_name(part.subject)}: {name}").rstrip("\n"))
    return "\n".join(out) + "\n"


# -- markdown --------------------------------------------------------------------------------------
def _md_finding(f: Finding, folder: str | None, details: bool) -> list[str]:
    from harness.report.markdown import finding_lines

    lines = finding_lines(f, lambda loc: where(loc, folder))
    if details:
        if (w := _why_line(f)):
            lines.append(f"  - why: {md_text(w)}")
        if (h := fix(f)):
            lines.append(f"  - **fix:** {md_text(h)}")
    return lines


def _md_section(out: list[str], title: str, items: list[tuple[str | None, Finding]], fold: bool,
                line: Callable[[Finding, str | None], list[str]]) -> None:
    if not items:
        return
    if fold:
        out += [f"<details><summary>{md_text(title)}</summary>", ""]
    else:
        out += [f"### {md_text(title)}", ""]
    for folder, f in items:
        out.extend(line(f, folder))
    out.append("")
    if fold:
        out += ["</details>", ""]


def gate_markdown(report: Report) -> str:
    if report.data.get("nothing_to_gate"):
        return f"**pgolf gate:** {md_text(report.data.get('summary') or 'no record added: nothing to gate')}\n"
    verdict = report.verdict.value
    multi = sum(1 for p in report.children if p.kind == "record") > 1
    out = [f"## pgolf gate: {md_code(title_name(report))} — {verdict}", "",
           f"**{verdict}**: {_count_line(report)}  ",
           " · ".join([md_code(report.subject)] + [md_text(x) for x in provenance(report)]), ""]
    items = [(folder, f) for folder, _, fs in sections(report) for f in fs]

    def line(f: Finding, folder: str | None) -> list[str]:
        shown = folder if not multi or folder is None else None
        lines = _md_finding(f, shown, details=f.severity is not Severity.NOTE)
        if multi and folder is not None:
            lines[0] = lines[0].replace("- ", f"- {md_code(_name(folder))} ", 1)
        return lines

    for sev, title in ((Severity.ERROR, "Errors"), (Severity.WARNING, "Warnings")):
        these = [(fo, f) for fo, f in items if f.severity is sev]
        _md_section(out, f"{title} ({len(these)})", these, False, line)
    notes = [(fo, f) for fo, f in items if f.severity is Severity.NOTE]
    _md_section(out, f"{len(notes)} note{'s' if len(notes) != 1 else ''}", notes, True, line)
    if not items:
        out += ["No findings.", ""]
    parts = parts_line(report)
    if parts:
        out.append("Parts: " + " · ".join(f"{md_text(r) + ' ' if multi else ''}{md_text(k)} **{v}**" for r, k, v in parts))
        out.append("")
    from harness.report.markdown import table_lines

    for _, part, _ in sections(report):
        for kid in _kids(part):
            for name, cols, rows in tables(kid.data):
                out += [f"<details><summary>{md_text(_name(part.subject))}: {md_text(name)}</summary>", ""]
                out.extend(table_lines(cols, rows))
                out += ["", "</details>", ""]
    return "\n".join(out).rstrip("\n") + "\n"
