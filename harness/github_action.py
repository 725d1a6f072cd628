"""The gate as a GitHub check: what the composite action (`action.yml`) runs.

    python -I -m harness.github_action          # in a pull_request job, after actions/checkout
    python -I -m harness.github_action --requirements   # what the gate needs besides pgolf (the `gate` extra)

It reads the GitHub Actions environment, gates the PR like `pgolf gate --repo --base --head`,
and reports it the ways GitHub shows a check:
- the markdown report appended to `$GITHUB_STEP_SUMMARY` (the job's summary page);
- one `::error file=…,line=…,title=…::message` (and `::warning`) annotation per error and
  warning that has a location, escaped by GitHub's rules (harness.escape.gha_property /
  gha_data), so no submitted name or message can end the command or start another;
- the SARIF report written to `PGOLF_SARIF` (default `$RUNNER_TEMP/pgolf-gate.sarif`) for the
  upload step, the JSON beside it;
- `verdict`, `exit-code`, `sarif` and `json` in `$GITHUB_OUTPUT`;
- the text report in the log (every line guarded against workflow commands).
Exit status: 0 PASS/REVIEW or nothing to gate, 1 FAIL, 2 unusable input (a bad ref: the
message is an `::error` annotation too).

Safety: the PR's files are data. This module never runs, imports or sources anything from the
checkout (run it with `python -I`, which keeps the working directory off `sys.path`, from a
folder outside the checkout); it reads the PR from git objects, never follows links, caps every
read; the job needs no secret and only a read-only token.

Environment: GITHUB_WORKSPACE (the checkout; or PGOLF_REPO), GITHUB_BASE_REF (the target
branch; the base is `origin/<it>` unless PGOLF_BASE is set), PGOLF_HEAD (default HEAD),
PGOLF_ALLOW_FROM_BASE (an allow-list path read from the base commit), GITHUB_STEP_SUMMARY,
GITHUB_OUTPUT, RUNNER_TEMP.
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import TextIO

from harness.errors import InputError
from harness.escape import gha_data, gha_property
from harness.findings import Finding, Severity

MAX_ANNOTATIONS = 50  # GitHub shows at most 10 per kind per step; the rest are in the summary


def settings(env: dict[str, str]) -> argparse.Namespace:
    """The gate's arguments from the Actions environment."""
    repo = env.get("PGOLF_REPO") or env.get("GITHUB_WORKSPACE") or "."
    base = env.get("PGOLF_BASE") or (f"origin/{env['GITHUB_BASE_REF']}" if env.get("GITHUB_BASE_REF") else None)
    if not base:
        raise InputError("no base: set PGOLF_BASE, or run on a pull_request event (GITHUB_BASE_REF)")
    temp = Path(env.get("RUNNER_TEMP") or "/tmp")
    return argparse.Namespace(record=None, repo=Path(repo), base=base, head=env.get("PGOLF_HEAD") or "HEAD",
                              allow=None, allow_from_base=env.get("PGOLF_ALLOW_FROM_BASE") or None, against=None,
                              sarif=Path(env.get("PGOLF_SARIF") or temp / "pgolf-gate.sarif"),
                              json=Path(env.get("PGOLF_JSON") or temp / "pgolf-gate.json"))


def annotation(f: Finding) -> str | None:
    """The workflow command for an error or warning with a location, else None."""
    if f.severity is Severity.NOTE:
        return None
    kind = "error" if f.severity is Severity.ERROR else "warning"
    props = []
    if f.location is not None:
        props.append(f"file={gha_property(f.location.path)}")
        if f.location.line is not None:
            props.append(f"line={int(f.location.line)}")
    props.append(f"title={gha_property(f.rule_id)}")
    return f"::{kind} {','.join(props)}::{gha_data(f.message)}"


def set_outputs(path: str | None, values: dict[str, str]) -> None:
    """Append `name<<DELIM … DELIM` blocks to $GITHUB_OUTPUT (a random delimiter, so no value
    can end its block early)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for k, v in values.items():
            delim = f"pgolf_{uuid.uuid4().hex}"
            fh.write(f"{k}<<{delim}\n{v}\n{delim}\n")


def requirements(requires: list[str] | None = None, extra: str = "gate") -> list[str]:
    """The packages the gate needs besides pgolf: the `gate` extra of pyproject.toml, read from
    the installed package's metadata (`requires`: its Requires-Dist lines). The action installs
    pgolf with --no-deps (the gate needs no torch), then these:
    `python -I -m harness.github_action --requirements` prints them, one per line."""
    if requires is None:
        from importlib.metadata import requires as dist_requires

        requires = dist_requires("pgolf") or []
    out = []
    for req in requires:
        spec, _, marker = req.partition(";")
        if marker.replace(" ", "").replace("'", '"') == f'extra=="{extra}"':
            out.append(spec.strip())
    return out


def main(env: dict[str, str] | None = None, out: TextIO | None = None) -> int:
    from harness.atomic import write_text
    from harness.commands.gate import build
    from harness.findings import exit_code
    from harness.report import render

    env = dict(os.environ if env is None else env)
    out = out or sys.stdout
    try:
        args = settings(env)
        report = build(args)
    except Exception as e:  # noqa: BLE001 - an InputError, or a defect: either way the job says so and fails
        said = str(e) if isinstance(e, InputError) else f"the gate failed ({type(e).__name__}): report it to the pgolf maintainers"
        print(f"::error title=pgolf gate::{gha_data(said)}", file=out)
        set_outputs(env.get("GITHUB_OUTPUT"), {"verdict": "unusable", "exit-code": "2"})
        return 2
    rc = exit_code(report.verdict)
    print(render("text", report), file=out, end="")
    shown = 0
    for f in report.all_findings():
        line = annotation(f)
        if line is not None and shown < MAX_ANNOTATIONS:
            print(line, file=out)
            shown += 1
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(render("markdown", report) + "\n")
    write_text(args.sarif, render("sarif", report))
    write_text(args.json, render("json", report))
    verdict = "nothing-to-gate" if report.data.get("nothing_to_gate") else report.verdict.value
    set_outputs(env.get("GITHUB_OUTPUT"), {"verdict": verdict, "exit-code": str(rc),
                                           "sarif": str(args.sarif), "json": str(args.json)})
    out.flush()
    return rc


if __name__ == "__main__":
    if sys.argv[1:] == ["--requirements"]:
        print("\n".join(requirements()))
        sys.exit(0)
    sys.exit(main())
