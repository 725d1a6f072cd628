"""Measure `pgolf audit` against labelled real submissions (benchmarks/legality_cases.yaml).

    python benchmarks/audit_accuracy.py GIT_DIR [--cases FILE] [--jobs N] [--json OUT] [--only PATTERN]

GIT_DIR is a fetched upstream repository (bare or not) that holds every case's commit, e.g. the
mirror of openai/parameter-golf with each pull request at refs/pull/N/head. For each case the
script extracts the case's record folder at its commit into a temporary directory the way `pgolf
gate` snapshots a pull request (harness.gate.snapshot_from_git: regular files only, each under its
cap; links and submodules are listed, never created; nothing from it is imported or run), runs the
audit on the case's file through the CLI in a subprocess,

    python -m harness.cli audit <file> --format json

and sorts the verdict into an outcome. The audit that runs is whatever `harness`/`audit` the
subprocess imports: the installed pgolf (an editable install's import hook takes precedence over
PYTHONPATH, so measure another checkout by installing it, `pip install -e CHECKOUT`).

Outcomes. An illegal case is FAIL-right (an error-severity finding whose condition is one of the
case's conditions), FAIL-other (errors, none of the right condition), REVIEW, PASS or ERROR (the
tool crashed, timed out or printed no report). A legal case is PASS, REVIEW, FAIL or ERROR.

Output: progress on stderr; on stdout one table per pattern, per family and overall, with the
issue's targets (illegal FAIL-right >= 90 %, illegal PASS <= 3 %, legal FAIL <= 2 %, legal
REVIEW <= 10 %), then the misses (case, expected, got, the finding ids, conditions and lines).
`--cases` takes another labelled file, e.g. benchmarks/legality_heldout.yaml (cases labelled after
the audit was built, which may name its vocabulary by reference: `vocabulary_from: legality_cases.yaml`):

    python benchmarks/audit_accuracy.py GIT_DIR --cases benchmarks/legality_heldout.yaml --json /tmp/heldout.json

`--json OUT` writes the same as machine-readable JSON. `--only` keeps the cases whose id, pattern
or family matches a shell-style pattern (`--only 'noncausal_slot'`, `--only 'pr13*'`).

Exit codes: 0 whatever the audit said; 2 when the call is unusable (GIT_DIR is not a git
directory, the cases file is malformed, a case's commit or file is missing from GIT_DIR).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from harness.gate import snapshot_from_git

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = HERE / "legality_cases.yaml"

FIELDS = ("id", "pr", "commit", "record", "path", "label", "conditions", "pattern", "family", "where", "evidence")
OPTIONAL = ("notes",)
SHA = re.compile(r"^[0-9a-f]{40}$")

AUDIT_TIMEOUT_S = 600

ILLEGAL_OUTCOMES = ("FAIL-right", "FAIL-other", "REVIEW", "PASS", "ERROR")
LEGAL_OUTCOMES = ("PASS", "REVIEW", "FAIL", "ERROR")
# (label, outcome, target share, "min" or "max"): the done-when figures.
TARGETS = (
    ("illegal", "FAIL-right", 0.90, "min"),
    ("illegal", "PASS", 0.03, "max"),
    ("legal", "FAIL", 0.02, "max"),
    ("legal", "REVIEW", 0.10, "max"),
)


class UsageError(Exception):
    """The call cannot be served: the message says what and where."""


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    id: str
    pr: int
    commit: str
    record: str
    path: str
    label: str
    conditions: list
    pattern: str
    family: str
    where: str
    evidence: str
    notes: str = ""
    line: int = 0  # line of the case in the cases file, for messages


def _node_lines(path: Path, text: str) -> list[int]:
    """The 1-based line of each item of the top-level `cases` sequence."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:1: expected a mapping with `vocabulary` and `cases`")
    for key, value in root.value:
        if key.value == "cases" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _shared_vocabulary(path: Path, ref) -> dict:
    """The `vocabulary` of the cases file that `vocabulary_from` names (a file beside `path`), so a
    second set of cases (the held-out file) labels with exactly the same words as the first."""
    if not isinstance(ref, str) or not ref or "/" in ref or "\\" in ref or ref in (".", ".."):
        raise UsageError(f"{path}:1: `vocabulary_from` must name a cases file beside this one")
    other = path.parent / ref
    try:
        data = yaml.safe_load(other.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"{path}:1: `vocabulary_from` {ref!r}: cannot read {other}: {e.strerror}") from None
    except yaml.YAMLError:
        raise UsageError(f"{path}:1: `vocabulary_from` {ref!r}: {other} is not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("vocabulary"), dict):
        raise UsageError(f"{path}:1: `vocabulary_from` {ref!r}: {other} has no `vocabulary` block")
    return data["vocabulary"]


def load_cases(path: Path) -> tuple[dict, list[Case]]:
    """Parse and validate the cases file. Raises UsageError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the cases file: {e.strerror}") from None
    lines = _node_lines(path, text)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "cases" not in data or ("vocabulary" in data) == ("vocabulary_from" in data):
        raise UsageError(f"{path}:1: expected top-level keys `cases` and one of `vocabulary` or `vocabulary_from`")
    vocab = data["vocabulary"] if "vocabulary" in data else _shared_vocabulary(path, data["vocabulary_from"])
    try:
        labels = set(vocab["labels"])
        conditions = set(vocab["conditions"])
        patterns = {lab: set(vocab["patterns"][lab]) for lab in ("legal", "illegal")}
    except (KeyError, TypeError):
        raise UsageError(f"{path}:1: `vocabulary` needs labels, conditions and patterns.legal/illegal") from None
    raw = data["cases"]
    if not isinstance(raw, list):
        raise UsageError(f"{path}:1: `cases` must be a list")
    cases, seen_ids, seen_files = [], {}, {}
    for i, item in enumerate(raw):
        line = lines[i] if i < len(lines) else 0
        where = f"{path}:{line}"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: a case must be a mapping")
        missing = [k for k in FIELDS if k not in item or item[k] in (None, "")]
        if "conditions" in missing and isinstance(item.get("conditions"), list):
            missing.remove("conditions")
        if missing:
            raise UsageError(f"{where}: case {item.get('id', '?')!r} lacks {', '.join(missing)}")
        unknown = set(item) - set(FIELDS) - set(OPTIONAL)
        if unknown:
            raise UsageError(f"{where}: case {item['id']!r} has unknown field(s) {', '.join(sorted(unknown))}")
        c = Case(**{k: item[k] for k in FIELDS}, notes=item.get("notes") or "", line=line)
        if not isinstance(c.pr, int) or c.pr <= 0:
            raise UsageError(f"{where}: case {c.id!r}: pr must be a positive integer")
        if not isinstance(c.commit, str) or not SHA.match(c.commit):
            raise UsageError(f"{where}: case {c.id!r}: commit must be 40 lowercase hex digits")
        if c.label not in labels:
            raise UsageError(f"{where}: case {c.id!r}: label {c.label!r} not in {sorted(labels)}")
        if not isinstance(c.conditions, list) or not set(c.conditions) <= conditions:
            raise UsageError(f"{where}: case {c.id!r}: conditions {c.conditions!r} not a list drawn from {sorted(conditions)}")
        if c.label == "illegal" and not c.conditions:
            raise UsageError(f"{where}: case {c.id!r}: an illegal case names the condition(s) it violates")
        if c.label == "legal" and c.conditions:
            raise UsageError(f"{where}: case {c.id!r}: a legal case violates no condition")
        if c.pattern not in patterns.get(c.label, ()):
            raise UsageError(f"{where}: case {c.id!r}: pattern {c.pattern!r} is not a {c.label} pattern of the vocabulary")
        rec, p = PurePosixPath(c.record), PurePosixPath(c.path)
        if rec.is_absolute() or ".." in rec.parts or p.is_absolute() or ".." in p.parts:
            raise UsageError(f"{where}: case {c.id!r}: record and path must be relative, without '..'")
        if rec not in p.parents:
            raise UsageError(f"{where}: case {c.id!r}: path {c.path!r} is not inside record {c.record!r}")
        if c.id in seen_ids:
            raise UsageError(f"{where}: duplicate id {c.id!r} (first at line {seen_ids[c.id]})")
        if (c.commit, c.path) in seen_files:
            raise UsageError(f"{where}: case {c.id!r} repeats commit and path of {seen_files[(c.commit, c.path)]!r}")
        seen_ids[c.id] = line
        seen_files[(c.commit, c.path)] = c.id
        cases.append(c)
    return vocab, cases


# ----------------------------------------------------------------------------- git


def git_dir_of(arg: str) -> str:
    """The git directory for GIT_DIR (a bare repository or a work tree)."""
    p = Path(arg)
    if not p.is_dir():
        raise UsageError(f"{arg}: no such directory")
    for candidate in (p, p / ".git"):
        r = subprocess.run(["git", "--git-dir", str(candidate), "rev-parse", "--git-dir"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return str(candidate)
    raise UsageError(f"{arg}: not a git directory (try the mirror's .../repo folder)")


def missing_objects(git_dir: str, cases: list[Case]) -> list[str]:
    """Every case whose commit, or whose file at that commit, GIT_DIR lacks."""
    specs = []
    for c in cases:
        specs.append((c, f"{c.commit}^{{commit}}", "commit"))
        specs.append((c, f"{c.commit}:{c.path}", "file"))
    query = "".join(s + "\n" for _, s, _ in specs)
    r = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "--batch-check"],
                       input=query, capture_output=True, text=True)
    out = r.stdout.splitlines()
    problems, seen = [], set()
    for (c, spec, what), line in zip(specs, out):
        if line.endswith(" missing") and c.id not in seen:
            seen.add(c.id)
            problems.append(f"case {c.id!r} (line {c.line}): {what} {spec} not in {git_dir}")
    return problems


def extract_record(git_dir: str, case: Case, dest: Path) -> tuple[Path, list[str]]:
    """The record folder at the case's commit, extracted under `dest` the way `pgolf gate` does
    (harness.gate.snapshot_from_git: regular blobs only, each under its cap, links and
    submodules listed but never created, blobs a mirror lists without holding skipped).
    Returns the folder's path and what was not extracted."""
    snap = snapshot_from_git(Path(git_dir), case.commit, case.record, dest)
    written = {str(p.relative_to(snap.folder)) for p in snap.folder.rglob("*") if p.is_file()}

    def why(e) -> str:
        if e.kind != "file":
            return f"{e.rel} (not a regular file: {e.kind})"
        # a blob the repository lists without holding is listed with no size (0)
        return f"{e.rel} (object absent from GIT_DIR)" if e.size == 0 else f"{e.rel} ({e.size} bytes over the cap)"

    return snap.folder, sorted(why(e) for e in snap.listing if e.kind != "dir" and e.rel not in written)


# ----------------------------------------------------------------------------- audit


@dataclass
class Result:
    id: str
    pr: int
    pattern: str
    family: str
    label: str
    conditions: list
    outcome: str
    verdict: str = ""
    findings: list = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    skipped: list = field(default_factory=list)


def run_audit(file: Path, timeout: float) -> tuple[dict | None, str]:
    """The CLI's JSON report for one file, or (None, why not)."""
    try:
        r = subprocess.run([sys.executable, "-m", "harness.cli", "audit", str(file), "--format", "json"],
                           capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if r.returncode not in (0, 1):
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return None, f"exit {r.returncode}: " + " | ".join(tail)[:400]
    try:
        return json.loads(r.stdout), ""
    except json.JSONDecodeError:
        return None, "no JSON report on stdout: " + (r.stderr.strip().splitlines() or ["(empty)"])[-1][:300]


def file_report(report: dict, file: Path) -> dict:
    """The child report for `file` (the audit may be handed a folder or a file)."""
    children = report.get("children") or []
    for child in children:
        if Path(child.get("subject", "")).resolve() == file.resolve():
            return child
    return children[0] if len(children) == 1 else report


def classify(case: Case, verdict: str, findings: list[dict]) -> str:
    errors = [f for f in findings if f.get("severity") == "error"]
    if case.label == "illegal":
        if verdict == "FAIL" or errors:
            return "FAIL-right" if any(f.get("condition") in case.conditions for f in errors) else "FAIL-other"
        return "REVIEW" if verdict == "REVIEW" else "PASS" if verdict == "PASS" else "ERROR"
    if verdict == "FAIL" or errors:
        return "FAIL"
    return verdict if verdict in ("PASS", "REVIEW") else "ERROR"


def brief(f: dict) -> dict:
    loc = f.get("location") or {}
    return {"id": f.get("id"), "condition": f.get("condition"), "severity": f.get("severity"),
            "line": loc.get("line"), "undecided": bool(f.get("undecided")), "message": (f.get("message") or "")[:160]}


def measure(git_dir: str, case: Case, timeout: float) -> Result:
    res = Result(case.id, case.pr, case.pattern, case.family, case.label, list(case.conditions), "ERROR")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pgolf-acc-") as tmp:
        try:
            folder, res.skipped = extract_record(git_dir, case, Path(tmp))
        except Exception as e:  # a case we cannot extract is a tool error for that case, not a crash
            res.error = f"extract: {e}"
            res.seconds = time.perf_counter() - t0
            return res
        file = folder / case.path[len(case.record) + 1:]
        if not file.is_file():
            res.error = f"{case.path} was not extracted ({'; '.join(res.skipped) or 'absent'})"
        else:
            report, why = run_audit(file, timeout)
            if report is None:
                res.error = why
            else:
                child = file_report(report, file)
                res.verdict = child.get("verdict", "")
                res.findings = [brief(f) for f in child.get("findings", [])]
                res.outcome = classify(case, res.verdict, child.get("findings", []))
    res.seconds = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- report


def tally(results: list[Result]) -> dict:
    """Counts per outcome for each label in `results`."""
    out = {}
    for label, outcomes in (("illegal", ILLEGAL_OUTCOMES), ("legal", LEGAL_OUTCOMES)):
        rs = [r for r in results if r.label == label]
        out[label] = {"n": len(rs), **{o: sum(r.outcome == o for r in rs) for o in outcomes}}
    return out


def pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:5.1f}%" if n else "   - "


def group_rows(results: list[Result], key: str) -> list[str]:
    """Two tables, illegal then legal cases, one row per value of `key` (pattern or family)."""
    rows = []
    for label, outcomes, good in (("illegal", ILLEGAL_OUTCOMES, "FAIL-right"), ("legal", LEGAL_OUTCOMES, "PASS")):
        groups: dict[str, list[Result]] = {}
        for r in results:
            if r.label == label:
                groups.setdefault(getattr(r, key), []).append(r)
        if not groups:
            continue
        rows.append(f"  {label + ' ' + key:<36} {'n':>3}  " + "  ".join(f"{o:>10}" for o in outcomes) + f"  {good + ' %':>12}")
        for name, rs in sorted(groups.items()):
            counts = [sum(r.outcome == o for r in rs) for o in outcomes]
            rows.append(f"  {name[:36]:<36} {len(rs):>3}  " + "  ".join(f"{k:>10}" for k in counts)
                        + f"  {pct(sum(r.outcome == good for r in rs), len(rs)):>12}")
        rows.append("")
    return rows


def summary_lines(results: list[Result]) -> list[str]:
    t = tally(results)
    lines = []
    for label, outcomes in (("illegal", ILLEGAL_OUTCOMES), ("legal", LEGAL_OUTCOMES)):
        n = t[label]["n"]
        parts = [f"{o} {t[label][o]} ({pct(t[label][o], n).strip()})" for o in outcomes]
        lines.append(f"{label:<8} n={n:<4} " + "  ".join(parts))
    lines.append("")
    lines.append("targets (issue 9):")
    for label, outcome, share, kind in TARGETS:
        n = t[label]["n"]
        k = t[label][outcome]
        if not n:
            mark = "n/a"
        else:
            ok = k / n >= share if kind == "min" else k / n <= share
            mark = "met" if ok else "MISSED"
        sign = ">=" if kind == "min" else "<="
        lines.append(f"  {label:<8} {outcome:<11} {pct(k, n)} ({k}/{n})  target {sign} {share * 100:.0f}%  {mark}")
    return lines


def misses(results: list[Result]) -> list[Result]:
    ideal = {"illegal": "FAIL-right", "legal": "PASS"}
    return [r for r in results if r.outcome != ideal[r.label]]


def miss_lines(cases: dict[str, Case], results: list[Result]) -> list[str]:
    out = []
    for r in misses(results):
        c = cases[r.id]
        expected = "legal" if r.label == "legal" else f"illegal {'/'.join(r.conditions)}"
        out.append(f"- {r.id} (PR {r.pr}, {r.pattern}): expected {expected}, got {r.outcome}"
                   + (f" [{r.error}]" if r.error else ""))
        shown = [f for f in r.findings if f["severity"] == "error" or f["undecided"]] or r.findings
        for f in shown[:6]:
            tag = " undecided" if f["undecided"] else ""
            out.append(f"    {f['id']} {f['condition']} {f['severity']}{tag} line {f['line']}: {f['message']}")
        if len(shown) > 6:
            out.append(f"    ... {len(shown) - 6} more")
        out.append(f"    where: {c.path}")
    return out


def render(cases: dict[str, Case], results: list[Result], elapsed: float) -> str:
    lines = [f"audit accuracy on {len(results)} labelled case(s) ({elapsed:.0f} s)", ""]
    lines += ["per pattern:"] + group_rows(results, "pattern")
    lines += ["per family:"] + group_rows(results, "family")
    lines += ["overall:"] + summary_lines(results) + [""]
    ms = miss_lines(cases, results)
    lines += [f"misses ({len(misses(results))}):"] + (ms or ["  none"])
    return "\n".join(lines) + "\n"


def to_json(results: list[Result], elapsed: float) -> dict:
    t = tally(results)
    targets = []
    for label, outcome, share, kind in TARGETS:
        n, k = t[label]["n"], t[label][outcome]
        targets.append({"label": label, "outcome": outcome, "share": (k / n) if n else None,
                        "target": share, "kind": kind,
                        "met": (None if not n else (k / n >= share if kind == "min" else k / n <= share))})

    def grouped(key):
        g: dict[str, dict] = {}
        for r in results:
            e = g.setdefault(f"{getattr(r, key)}|{r.label}", {key: getattr(r, key), "label": r.label, "n": 0, "outcomes": {}})
            e["n"] += 1
            e["outcomes"][r.outcome] = e["outcomes"].get(r.outcome, 0) + 1
        return list(g.values())

    return {"schema": "pgolf.audit_accuracy/1", "seconds": round(elapsed, 1), "overall": t, "targets": targets,
            "per_pattern": grouped("pattern"), "per_family": grouped("family"),
            "cases": [asdict(r) for r in results], "misses": [r.id for r in misses(results)]}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("git_dir", metavar="GIT_DIR", help="upstream git directory holding the cases' commits")
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES, help=f"cases file (default {DEFAULT_CASES.name} beside this script)")
    ap.add_argument("--jobs", type=int, default=2, help="cases audited at once (default 2)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    ap.add_argument("--only", metavar="PATTERN", help="keep cases whose id, pattern or family matches this shell pattern")
    ap.add_argument("--timeout", type=float, default=AUDIT_TIMEOUT_S, help=f"seconds per audit before it counts as ERROR (default {AUDIT_TIMEOUT_S})")
    args = ap.parse_args(argv)
    try:
        git_dir = git_dir_of(args.git_dir)
        _, cases = load_cases(args.cases)
        if args.only:
            cases = [c for c in cases if any(fnmatch.fnmatchcase(v, args.only) for v in (c.id, c.pattern, c.family))]
            if not cases:
                raise UsageError(f"--only {args.only!r} matches no case in {args.cases}")
        problems = missing_objects(git_dir, cases)
        if problems:
            raise UsageError("GIT_DIR lacks what some cases need:\n  " + "\n  ".join(problems))
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
    except UsageError as e:
        print(f"audit_accuracy: {e}", file=sys.stderr)
        return 2

    by_id = {c.id: c for c in cases}
    t0 = time.perf_counter()
    results: list[Result | None] = [None] * len(cases)
    done = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        r = measure(git_dir, cases[i], args.timeout)
        with lock:
            results[i] = r
            done[0] += 1
            n_done = done[0]
        extra = f" ({r.error})" if r.error else ""
        print(f"[{n_done}/{len(cases)}] {r.id}: {r.label} -> {r.outcome} {r.seconds:.1f}s{extra}", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, range(len(cases))))
    elapsed = time.perf_counter() - t0
    final = [r for r in results if r is not None]
    sys.stdout.write(render(by_id, final, elapsed))
    if args.json:
        args.json.write_text(json.dumps(to_json(final, elapsed), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
