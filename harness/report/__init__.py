"""Reports: one schema for checks, audit and probes, and renderers registered by name.

A `Report` is what every command produces: a subject, a verdict rolled up from findings, the
findings, command-specific figures (`data`), and a stamp saying which pgolf, ruleset and
libraries made it and when. Renderers (text, json, markdown, sarif) register themselves with
`@renderer("name")`; the registry refuses duplicate names.

Everything in a report may come from a submission, so every renderer escapes each field for its
destination (`harness.escape`), and `render` runs `harness.escape.guard_output` over the result:
no output line of any format can start a GitHub Actions workflow command, and JSON is always
valid JSON (non-finite numbers become `null` with a finding saying where).

The JSON form is the documented contract read by CI and other tools:
    {"schema": "pgolf.report/1", "kind": ..., "subject": ..., "verdict": "PASS|FAIL|REVIEW",
     "findings": [{"id", "severity", "message", "location": {"path", "line"}, ...}],
     "data": {...}, "stamp": {...}}
"""
from __future__ import annotations

import datetime as _dt
import platform
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from harness import __version__
from harness.findings import Finding, Verdict, roll_up

SCHEMA = "pgolf.report/1"


def make_stamp(**extra: Any) -> dict[str, Any]:
    """Who made a report: pgolf and library versions, python, host, command line, UTC time."""
    libs: dict[str, str] = {}
    for name in ("torch", "libcst", "sentencepiece", "zstandard", "scipy", "numpy"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            libs[name] = str(mod.__version__)
    stamp = {
        "pgolf": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "libraries": libs,
    }
    stamp.update(extra)
    return stamp


@dataclass
class Report:
    kind: str  # "check", "audit", "reproduce", "gate", ...
    subject: str  # the record folder or file the report is about
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    stamp: dict[str, Any] = field(default_factory=make_stamp)
    children: list["Report"] = field(default_factory=list)  # e.g. per-file audit reports

    @property
    def verdict(self) -> Verdict:
        all_findings = list(self.findings)
        for child in self.children:
            all_findings.extend(child.all_findings())
        return roll_up(all_findings)

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for child in self.children:
            out.extend(child.all_findings())
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "kind": self.kind,
            "subject": self.subject,
            "verdict": self.verdict.value,
            "findings": [f.to_dict() for f in self.findings],
            "data": self.data,
            "stamp": self.stamp,
        }
        if self.children:
            d["children"] = [c.to_dict() for c in self.children]
        return d


Renderer = Callable[[Report], str]
_RENDERERS: dict[str, Renderer] = {}


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    """Register a renderer under `name`; a second registration of the same name is a bug."""

    def deco(fn: Renderer) -> Renderer:
        if name in _RENDERERS:
            raise ValueError(f"renderer {name!r} registered twice")
        _RENDERERS[name] = fn
        return fn

    return deco


def _load_builtin_renderers() -> None:
    import importlib

    for mod in ("text", "json_report", "markdown", "sarif"):
        try:
            importlib.import_module(f"harness.report.{mod}")
        except ModuleNotFoundError as e:  # a renderer module not written yet
            if e.name != f"harness.report.{mod}":
                raise


def render(name: str, report: Report) -> str:
    """`report` in format `name`, escaped for where it is printed (see the module docstring)."""
    from harness.escape import guard_output

    if name not in _RENDERERS:
        _load_builtin_renderers()
    try:
        fn = _RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(sorted(_RENDERERS))}") from None
    return guard_output(fn(report), name)


def formats() -> list[str]:
    _load_builtin_renderers()
    return sorted(_RENDERERS)
