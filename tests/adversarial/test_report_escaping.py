"""One hostile record through every format of check, gate and audit: nothing submitted escapes
where it lands (terminal, markdown PR comment, GitHub Actions log, JSON, SARIF).

The record (tests/adversarial/input_hostile.py) has file and folder names with newlines and
`::error file=x::PWNED`, backticks, HTML, @mentions, ANSI and OSC escapes and `[/]` in names,
log lines, phase names, README, submission.json and code. Each command runs as its own process
under a 512 MB address-space limit; each output must be complete, valid for its format, and
free of workflow commands, raw control characters, live HTML, links and mentions.
"""
from __future__ import annotations

import json
import os

import pytest

from gate_support import TRACK, base_repo, commit, git, run_cli
from input_hostile import (CHECK_ALL_NAME, HOSTILE_NAME, LOG_NAME, PAYLOAD, hostile_record, markdown_problems,
                           output_problems)
from harness import escape


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return hostile_record(root / "records" / "track_10min_16mb" / HOSTILE_NAME)


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory):
    repo = base_repo(tmp_path_factory.mktemp("hostile_repo"))
    hostile_record(repo / TRACK / HOSTILE_NAME)
    (repo / f"{LOG_NAME}.md").write_text("outside the record, with a hostile name\n")
    commit(repo, "hostile PR")
    return repo


def _check_output(done, fmt: str, expect_rc: tuple[int, ...]) -> str:
    out = done.stdout.decode("utf-8")
    err = done.stderr.decode("utf-8")
    assert done.returncode in expect_rc, (done.returncode, err[-2000:])
    assert "Traceback" not in err and "MarkupError" not in err
    assert out.endswith("\n"), "output is complete"
    assert output_problems(out, fmt) == [], output_problems(out, fmt)
    assert output_problems(err, "text") == []
    return out


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_check_every_format(hostile, fmt):
    out = _check_output(run_cli("check", str(hostile), "--format", fmt), fmt, (0, 1))
    if fmt == "json":
        doc = json.loads(out)
        logs = [r["log"] for r in doc["data"]["seeds"]]
        assert any(LOG_NAME in str(x) for x in logs)  # JSON carries the name exactly, escaped by JSON
    elif fmt == "text":
        assert "train_seed7\\n::error file=x::PWNED" in out  # shown, on one line
        assert "verdict:" in out


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_check_all_every_format(hostile, tmp_path, fmt):
    import shutil

    tree = hostile.parent.parent
    shutil.copytree(hostile.parent / HOSTILE_NAME, hostile.parent / CHECK_ALL_NAME, dirs_exist_ok=True)
    out = _check_output(run_cli("check", "--all", str(tree), "--format", fmt), fmt, (0, 1))
    if fmt == "text":
        assert "\\::error file=x::PWNED" in out  # a row that would start with the command, defused


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "sarif"])
def test_gate_folder_every_format(hostile, fmt):
    _check_output(run_cli("gate", str(hostile), "--format", fmt), fmt, (1,))


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "sarif"])
def test_gate_repo_every_format(hostile_repo, fmt):
    out = _check_output(run_cli("gate", "--repo", str(hostile_repo), "--base", "main", "--head", "pr",
                                "--format", fmt), fmt, (1,))
    if fmt == "json":
        doc = json.loads(out)
        assert doc["data"]["records"] == [f"{TRACK}/{HOSTILE_NAME}"]
        assert any(f["id"] == "PG-GATE-004" and LOG_NAME in f["message"] for f in doc["findings"])
    if fmt == "markdown":
        assert out.startswith("## pgolf gate: `")


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "sarif"])
def test_audit_every_format(hostile, fmt):
    _check_output(run_cli("audit", str(hostile), "--format", fmt), fmt, (1,))


def test_action_annotations_are_escaped(hostile_repo, tmp_path):
    from test_gate import run_action

    git(hostile_repo, "checkout", "-q", "pr")
    done, outputs = run_action(hostile_repo, tmp_path, PGOLF_HEAD="pr")
    assert done.returncode == 1 and outputs["verdict"] == "FAIL"
    commands = [ln for ln in done.stdout.splitlines() if ln.lstrip().startswith("::")]
    assert commands and all(ln.startswith(("::error file=", "::warning file=", "::error title=", "::warning title="))
                            for ln in commands)
    for ln in commands:  # one command per line, properties escaped: no forged property or second command
        props, _, data = ln[2:].partition("::")
        keys = [kv.split("=", 1)[0] for kv in props.split(" ", 1)[1].split(",")]
        assert len(keys) == len(set(keys)) and set(keys) <= {"file", "line", "title"}, ln
    assert "file=train_seed7\\n%3A%3Aerror file=x%3A%3APWNED" in done.stdout  # the name, one property
    summary = next(tmp_path.glob("runner_temp*/summary.md")).read_text()
    assert markdown_problems(summary) == []


# -- the escaping module, by example -------------------------------------------------------------
@pytest.mark.parametrize("value, expect", [
    ("a\nb", "a\\nb"), ("\x1b[31mred\x1b[0m", "red"), ("\x1b]8;;http://e\x07x\x1b]8;;\x07", "x"),
    ("\x1b]52;c;cGF5bG9hZA==\x07", ""), ("bell\x07", "bell\\x07"), ("rtl\u202eevil", "rtl\\u202eevil"),
    ("\x9b31m8-bit", "8-bit"), ("tab\there", "tab\\there"),
])
def test_terminal(value, expect):
    assert escape.terminal(value) == expect


@pytest.mark.parametrize("value", ["a`b", "``", "`", "a ``` b", " x ", "pipe|x"])
def test_md_code_cannot_be_closed_from_inside(value):
    from markdown_it import MarkdownIt

    span = escape.md_code(value)
    tokens = MarkdownIt("commonmark").parseInline(f"before {span} after")[0].children
    codes = [t for t in tokens if t.type == "code_inline"]
    assert len(codes) == 1 and codes[0].content.strip() == value.strip()


@pytest.mark.parametrize("value", [PAYLOAD, "# heading", "1. list", "- item", "<!-- hide the rest",
                                   "[x](javascript:alert(1))", "![i](http://e/x.png)", "@org/team ping", "~~s~~ $x$"])
def test_md_text_is_inert(value):
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("table").enable("strikethrough").render("- " + escape.md_text(value))
    assert markdown_problems("- " + escape.md_text(value)) == []
    assert "<h1>" not in rendered and "<ol>" not in rendered.replace("<ul>", "") and "<s>" not in rendered


def test_workflow_command_escapes():
    assert escape.gha_property("a,b:c\nd%") == "a%2Cb%3Ac\\nd%25"
    assert escape.gha_data("x\r\ny%") == "x\\r\\ny%25"
    guarded = escape.guard_output("ok\n  ::error file=x::PWNED\nsee ##[error]y\n", "text")
    assert guarded == "ok\n  \\::error file=x::PWNED\nsee ##\\[error]y\n"
    doc = {"m": "##[error]y"}
    assert json.loads(escape.guard_output(json.dumps(doc), "json")) == doc


def test_non_finite_numbers_become_null_with_a_finding():
    from harness.findings import Finding, Severity
    from harness.report import Report, render

    r = Report("check", "x", [Finding("PG-X-001", Severity.NOTE, "n", data={"v": float("nan")})],
               {"seeds": [{"seed": 1, "val_bpb": float("inf")}]})
    doc = json.loads(render("json", r), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert doc["data"]["seeds"][0]["val_bpb"] is None
    bad = [f for f in doc["findings"] if f["id"] == "PG-REPORT-001"]
    assert bad and "$.data.seeds[0].val_bpb" in bad[0]["message"]
    assert json.loads(render("sarif", r))["runs"][0]["results"][0]["ruleId"] == "PG-X-001"


def test_rich_markup_in_a_phase_name_is_text():
    from harness.report.text import rich_table

    out = rich_table(["phase"], [["evil[/]x[bold]y[link=http://e]z"]])
    assert "evil[/]x[bold]y[link=http://e]z" in out


def test_markup_in_a_phase_name_through_the_text_report_and_progress():
    import io

    from harness.progress import Progress, RichProgress
    from harness.report import Report, render

    r = Report("check", "rec", [], {"seeds": [{"seed": 1, "scored_phase": "final[/]evil[bold]x", "val_bpb": 1.1}]})
    assert "final[/]evil[bold]x" in render("text", r)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for cls in (Progress, RichProgress):
        buf = Tty()
        p = cls(buf)
        p.seed_started(1, 1, 1, 600.0)
        p.seed_finished(1, "ok", "phase final[/]evil \x1b]52;c;cGF5\x07 done")
        p.close()
        assert "final[/]evil" in buf.getvalue() and "]52;" not in buf.getvalue()
