"""Escaping submitted text for the place it is printed: one module that knows every destination.

Everything in a report can come from a stranger's pull request: file and folder names, log
lines, phase names, README and submission.json values, code excerpts. The same string lands in a
terminal, a rich table, a markdown PR comment, a GitHub Actions log, a SARIF file and a JSON
report, and each destination has its own way to be abused:

| destination | attack | defence here |
|---|---|---|
| terminal (`text`) | ANSI colour/cursor codes, OSC 8 links and OSC 52 clipboard writes, a newline that forges a report line | `terminal()`: escape sequences removed, every other control character shown as `\\xNN`, newlines as `\\n` |
| rich markup | `[/]` raises MarkupError, `[link=…]` forges a link | `rich_text()`: a `Text` object (markup never parsed) of the terminal form |
| markdown (PR comment) | backticks closing a code span, `<img src=…>` and other HTML, `@org/team` pings, a newline starting `## Verdict: PASS` | `md_text()` (HTML escaped, markdown punctuation backslash-escaped, `@` followed by a zero-width space), `md_code()` (a backtick fence longer than any run inside) |
| GitHub Actions log | a line starting `::error file=…::` or `::add-mask::`, or `##[` anywhere (the runner's legacy command form) | `guard_output()` on every rendered report: such lines are defused; `gha_data()` / `gha_property()` for the annotations the Action writes on purpose |
| SARIF | a path that is not a URI | `sarif_uri()`: percent-encoded, relative |
| JSON | bare `NaN` (invalid JSON), `##[` in a value | `finite()` turns non-finite numbers into `null` and says where; `guard_output("json")` writes `[` after `##` as `\\u005b` |

Renderers escape each field where it lands (so a field cannot break the structure around it)
and `harness.report.render` runs `guard_output` over the whole result as a last line of defence.
"""
from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import quote

# ESC-based sequences: CSI (`ESC [ … final`), OSC/DCS/SOS/PM/APC strings (terminated by BEL or
# ST, or running to the end when unterminated), two-byte escapes; and their 8-bit C1 forms.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)
# Characters that are never printed raw: C0 and C1 controls (tab and newline included: in a
# one-line field they would forge layout), DEL, the Unicode line and paragraph separators, and
# the bidirectional overrides that make text read differently from what it is ("Trojan source"),
# and lone surrogates (undecodable bytes of a file name), which no encoder would print.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(m: re.Match) -> str:
    c = m.group(0)
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def terminal(value: Any, multiline: bool = False) -> str:
    """`value` as text safe to print on a terminal or into a CI log, on one line.

    Escape sequences (colour, cursor movement, OSC links, clipboard writes) are removed; any other
    control character is shown as a visible escape (`\\x07`, `\\n`), so a name with a newline
    reads as one line. With `multiline`, newlines (and tabs) are kept as they are.
    """
    s = value if isinstance(value, str) else str(value)
    s = _ESCAPE_SEQUENCES.sub("", s)
    if multiline:
        return "\n".join(_UNPRINTABLE.sub(_visible, line.replace("\t", "    ")) for line in s.split("\n"))
    return _UNPRINTABLE.sub(_visible, s)


def rich_text(value: Any, style: str = "", multiline: bool = False):
    """A rich `Text` of the terminal form: rich never parses markup in it (`[/]` is just text)."""
    from rich.text import Text

    return Text(terminal(value, multiline), style=style)


def rich_markup(value: Any) -> str:
    """The terminal form with rich markup escaped, for the places rich only takes markup strings."""
    from rich.markup import escape

    return escape(terminal(value))


# -- markdown --------------------------------------------------------------------------------
# Characters that open inline markdown anywhere in a line (code spans, emphasis, links and
# images, tables, strikethrough, math). `_` only at a word edge: intraword `_` cannot open
# emphasis in CommonMark, so `final_int6_sliding_window` stays readable in the raw comment.
_MD_INLINE = re.compile(r"([\\`*\[\]|~$])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What opens a block when it starts the text (a heading, quote, list item, setext underline).
_MD_LEADING = re.compile(r"^(\s*)(?:([#+=\-])(?=\s|$|[#=\-])|(\d{1,9})([.)])(?=\s|$))")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)(://)|\b(www)(\.)")
_ZWSP_ENTITY = "&#8203;"


def md_text(value: Any) -> str:
    """Submitted text as inert markdown inline text (GitHub flavour), on one line.

    Characters that open markdown constructs are backslash-escaped (no emphasis, links, images,
    code spans, tables, headings or list items), HTML special characters become entities (no
    tags, no comments hiding the rest of the comment), URLs are not auto-linked, and `@` is
    followed by a zero-width space so `@user` and `@org/team` notify no one.
    """
    s = terminal(value)
    s = _MD_INLINE.sub(lambda m: "\\" + m.group(0), s)
    s = _MD_LEADING.sub(lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)), s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _AUTOLINK.sub(lambda m: (m.group(1) or m.group(3)) + _ZWSP_ENTITY + (m.group(2) or m.group(4)), s)
    return s.replace("@", "@" + _ZWSP_ENTITY)


def md_code(value: Any, in_table: bool = False) -> str:
    """Submitted text as a markdown code span that nothing inside can close.

    The fence is one backtick longer than the longest run of backticks inside, and padded with a
    space when the text starts or ends with a backtick; HTML and mentions are inert in a code
    span. In a table cell `|` is written `\\|` (GFM splits cells before it parses code spans).
    """
    s = terminal(value)
    s = s.replace("##[", "##\u200b[")
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    if not s or s[0] in "` " or s[-1] in "` ":
        s = f" {s} "
    if in_table:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}"


# -- GitHub Actions --------------------------------------------------------------------------
# The runner treats a line as a workflow command when, after leading whitespace, it starts with
# `::`; its legacy parser also acts on `##[` anywhere in a line.
_WORKFLOW_LINE = re.compile(r"(?m)^([^\S\n]*)::")
_LEGACY_COMMAND = "##["


def guard_output(text: str, fmt: str = "text") -> str:
    """The whole rendered output with every would-be workflow command defused.

    Fields are escaped where they land already; this pass guarantees that no line of any format
    can start a GitHub Actions workflow command, whatever a renderer missed: in text and markdown
    a line starting with `::` gets a backslash before it, `##[` becomes `##\\[` (text) or
    `##&#91;` (markdown); in JSON and SARIF, `##[` (only ever inside a string there) is written
    `##\\u005b`, which parses back to the same value.
    """
    if fmt in ("json", "sarif"):
        return text.replace(_LEGACY_COMMAND, "##\\u005b")
    if fmt == "markdown":
        text = text.replace(_LEGACY_COMMAND, "##&#91;")
        return _WORKFLOW_LINE.sub(lambda m: m.group(1) + "\\::", text)
    text = text.replace(_LEGACY_COMMAND, "##\\[")
    return _WORKFLOW_LINE.sub(lambda m: m.group(1) + "\\::", text)


def gha_data(value: Any) -> str:
    """The message part of a workflow command (`::error …::DATA`), escaped as the runner
    unescapes it: `%` -> `%25`. It is one line: `terminal` already shows CR and LF (and every
    other control character) as visible escapes, so none reaches the runner to end the command."""
    return terminal(value).replace("%", "%25")


def gha_property(value: Any) -> str:
    """A property value of a workflow command (`file=…,line=…,title=…`): the data escapes plus
    `:` -> `%3A` and `,` -> `%2C`, so a value cannot end the properties or start the data."""
    return gha_data(value).replace(":", "%3A").replace(",", "%2C")


# -- SARIF and JSON --------------------------------------------------------------------------
def sarif_uri(path: str) -> str:
    """A relative path as a SARIF `artifactLocation.uri`: a URI reference, percent-encoded
    (spaces, `%`, `#`, `?`, non-ASCII and controls), `/` kept as the separator."""
    s = path[2:] if path.startswith("./") else path
    return quote(s, safe="/-._~")


def sarif_text(value: Any) -> str:
    """A SARIF `message.text`: plain text, escape sequences removed, controls shown."""
    return terminal(value)


def finite(value: Any, where: str = "$") -> tuple[Any, list[str]]:
    """`value` with every NaN or infinity replaced by None, and the JSON paths where that
    happened (e.g. `$.data.claimed_val_bpb`), so a report can say so in a finding."""
    bad: list[str] = []

    def walk(v: Any, at: str) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(at)
            return None
        if isinstance(v, dict):
            return {k: walk(x, f"{at}.{k}") for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{at}[{i}]") for i, x in enumerate(v)]
        return v

    return walk(value, where), bad
