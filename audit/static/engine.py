"""Audit entry points: a source text, a file, a record folder, or a tree of records.

Per program: read -> parse (libcst) -> decode a self-extracting payload if there is one -> add
the helper modules it imports from its own folder -> statement positions (ast pairing) -> IR ->
label fixpoint -> ordered events from the entry point -> rules -> verdict. Nothing raises on bad
input: unreadable or unparsable code is a PG-PARSE-001 finding and a REVIEW verdict.
"""
from __future__ import annotations

import ast
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from audit.findings import EvidenceStep, Finding, Location, Severity, Verdict, roll_up
from audit.static.evidence import collect_evidence, program_environment
from audit.static.flags import FlagEval
from audit.static.flow import Flow
from audit.static.ir import build_module
from audit.static.names import import_aliases
from audit.static.positions import statement_positions
from audit.static.program import Program
from audit.static.sinks import ScoreSinks
from audit.static.rules import RULES
from audit.static.discover import collect_targets, entry_files, folder_links, helper_names, helper_path  # noqa: F401
from audit.static.isolate import run_isolated
from audit.static.payload import find_payload
from audit.static.prescreen import prescreen
from audit.static.source import read_sibling, read_source
from audit.static.trace import Tracer

MAX_HELPERS = 12


@dataclass
class FileResult:
    path: str
    findings: list[Finding]
    sha256: str = ""
    lines: int = 0
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return roll_up(self.findings)


def _parse_failure(path: str, problem: str, line: int | None = None) -> Finding:
    return Finding("PG-PARSE-001", Severity.NOTE, f"could not analyse this file: {problem}", "PARSE",
                   Location(path, line), (), "high", True)


def _no_validation(self) -> None:
    return None


def _parse_unvalidated(text: str) -> cst.Module:
    """`cst.parse_module` without the per-node `_validate()` that every libcst node runs in
    `__post_init__` (libcst's own comment there marks it as a cost to avoid when parsing):
    the parser only builds valid nodes, and the checks cost ~10% of the parse on the merged
    records. The hook is restored at once; the tree is identical (`deep_equals`)."""
    saved = cst.CSTNode.__post_init__
    cst.CSTNode.__post_init__ = _no_validation
    try:
        return cst.parse_module(text)
    finally:
        cst.CSTNode.__post_init__ = saved


def _parse(text: str, path: str) -> tuple[cst.Module | None, Finding | None]:
    try:
        return _parse_unvalidated(text), None
    except cst.ParserSyntaxError as e:
        line = e.raw_line
        try:  # the stdlib parser names the line a reader expects; libcst names where it gave up
            ast.parse(text)
        except SyntaxError as se:
            line = se.lineno or line
        except Exception:
            pass
        return None, _parse_failure(path, f"syntax error: {e.message}", line)
    except (RecursionError, MemoryError, ValueError, Exception) as e:  # libcst raises a few kinds
        return None, _parse_failure(path, f"parser failed: {type(e).__name__}: {str(e)[:200]}")


def _link_finding(path: str) -> Finding:
    """A symbolic link in the submission: named, never followed, never read."""
    return Finding("PG-PARSE-004", Severity.WARNING, f"{RULES['PG-PARSE-004'].message}: {Path(path).name}", "PARSE",
                   Location(path), (), "high", True)


def _prescreen_finding(path: str, problem) -> Finding:
    """What the pre-screen refused: code Python itself refuses does not run (not a program);
    anything else only stalls the analysis (REVIEW)."""
    if problem.python_refuses:
        return _not_a_program(path, problem.message, problem.line)
    return _parse_failure(path, problem.message, problem.line)


def _not_a_program(path: str, problem: str, line: int = 1) -> Finding:
    return Finding("PG-PARSE-005", Severity.ERROR, f"{RULES['PG-PARSE-005'].message}: {problem}", "PARSE",
                   Location(path, line), (), "high")


def audit_source(text: str, path: str, folder: Path | None = None, evidence_folder: Path | None = None) -> list[Finding]:
    """Findings for one program given as text (the unit the rule examples and fixtures use)."""
    findings: list[Finding] = []
    module, fail = _parse(text, path)
    if fail is not None:
        return [fail]
    aliases = import_aliases(module)
    positions = statement_positions(module, text)
    decoded_note = None
    payload = find_payload(module, aliases, path, folder, positions)
    if payload is not None and payload.refused:
        findings.append(Finding("PG-PARSE-002", Severity.NOTE, f"self-extracting payload not decoded: {payload.refused}",
                                "PARSE", Location(path, payload.line), (), "high", True))
        payload = None
    if payload is not None:
        findings.append(Finding("PG-PARSE-003", Severity.NOTE, RULES["PG-PARSE-003"].message, "PARSE",
                                Location(path, payload.line), (EvidenceStep(f"payload audited as {payload.origin}"),), "high"))
        problem = prescreen(payload.text)
        if problem is not None:
            return findings + [_prescreen_finding(payload.origin, problem)]
        module, fail = _parse(payload.text, payload.origin)
        if fail is not None:
            return findings + [fail]
        text, path = payload.text, payload.origin
        aliases = import_aliases(module)
        positions = statement_positions(module, text)
        decoded_note = f"location in the decoded payload {path}"
    irs = [build_module(module, path, positions, aliases)]
    seen = {Path(path).name}
    queue = [(n, module) for n in helper_names(module)]
    while queue and folder is not None and len(irs) <= MAX_HELPERS:
        name, _ = queue.pop(0)
        found = helper_path(name, folder)
        if found is None or found[0] in seen:
            continue
        rel, kind = found
        seen.add(rel)
        if kind == "link":
            findings.append(_link_finding(str(folder / rel)))
            continue
        src = read_sibling(folder, rel)
        if src.text is None:
            findings.append(_link_finding(src.path) if src.kind == "link" else _parse_failure(src.path, src.problem or "unreadable"))
            continue
        problem = prescreen(src.text)
        if problem is not None:
            findings.append(_prescreen_finding(src.path, problem))
            continue
        hmod, fail = _parse(src.text, src.path)
        if fail is not None:
            findings.append(fail)
            continue
        ir = build_module(hmod, src.path, statement_positions(hmod, src.text), import_aliases(hmod))
        ir.module_name = name
        irs.append(ir)
        queue.extend((n, hmod) for n in helper_names(hmod))
    flow = Flow(irs)
    flow.run()
    class_attrs: dict = {}
    constants: dict = {}
    for ir in irs:
        class_attrs.update(ir.class_attrs)
        constants.update(ir.constants)
    ev_folder = evidence_folder or folder
    evidence = collect_evidence(ev_folder, set(class_attrs)) if ev_folder is not None else None
    if evidence is not None:
        program_environment(module, path, evidence, positions)
    functions = {q: f for ir in irs for q, f in ir.functions.items()}
    score = ScoreSinks(flow, list(functions.values()), evidence)
    defaults = FlagEval(class_attrs, constants, None, functions, flow.param_args)
    run_flags = FlagEval(class_attrs, constants, evidence, functions, flow.param_args) if evidence is not None else None
    events = Tracer(flow, reported=score.reported_keys, deps=score.deps, sink_fns=score.sink_fns,
                    branch=(run_flags or defaults).branch).program(
        irs[0].functions["<module>"], list(irs[0].functions.values()))
    prog = Program(path, events, flow, defaults, run_flags, decoded_note=decoded_note, sinks=score)
    for rule_cls in RULES.values():
        rule_cls().check(prog)
    seen_at = {(f.rule_id, f.location.path, f.location.line) for f in findings if f.location is not None}
    return findings + [f for f in prog.findings if (f.rule_id, f.location.path, f.location.line) not in seen_at]


def audit_file(path: Path, folder: Path | None = None) -> FileResult:
    """One program of a record, in this process. Links in its folder are findings, never read;
    an empty or non-Python entry file is a FAIL finding; nothing here raises on bad input."""
    t0 = time.perf_counter()
    path = Path(path)
    folder = folder if folder is not None else path.parent
    findings = [_link_finding(str(e.path)) for e in folder_links(folder)]
    src = read_source(path)
    if src.text is None:
        if src.kind == "link":
            if not any(f.location.path == str(path) for f in findings):
                findings.append(_link_finding(str(path)))
        elif src.kind == "not-python":
            findings.append(_not_a_program(str(path), src.problem or "not Python source"))
        else:
            findings.append(_parse_failure(str(path), src.problem or "unreadable"))
        sha = hashlib.sha256(src.raw).hexdigest() if src.raw else ""
        return FileResult(str(path), findings, sha, 0, time.perf_counter() - t0)
    sha = hashlib.sha256(src.raw).hexdigest()
    lines = src.text.count("\n") + 1
    if not _has_code(src.text):
        findings.append(_not_a_program(str(path), "the file is empty (no statements)"))
        return FileResult(str(path), findings, sha, lines, time.perf_counter() - t0)
    problem = prescreen(src.text)
    if problem is not None:
        findings.append(_prescreen_finding(str(path), problem))
        return FileResult(str(path), findings, sha, lines, time.perf_counter() - t0)
    try:
        got = audit_source(src.text, str(path), folder)
    except RecursionError:
        got = [_parse_failure(str(path), "nesting too deep to analyse")]
    except Exception as e:  # an analysis bug must not hide a file: REVIEW, with the reason
        got = [_parse_failure(str(path), f"internal error {type(e).__name__}: {str(e)[:200]}")]
    known = {(f.rule_id, f.location.path) for f in findings}
    findings += [f for f in got if not (f.rule_id == "PG-PARSE-004" and (f.rule_id, f.location.path) in known)]
    return FileResult(str(path), findings, sha, lines, time.perf_counter() - t0)


def _has_code(text: str) -> bool:
    """Any statement at all (comments, blank lines and a coding line are not code)."""
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return True
    return False


def not_python(path: Path) -> str | None:
    """Why `path` is not a Python program that `pgolf audit FILE` could review, or None.

    The CLI turns this into exit 2: the call named something that is not code at all (a link,
    a binary, a file CPython would refuse to read as source)."""
    src = read_source(Path(path))
    if src.kind == "link":
        return "a symbolic link: not followed"
    if src.kind == "not-python":
        return src.problem
    if src.kind == "unreadable":
        return src.problem
    return None


def _failed(path: Path, problem: str) -> FileResult:
    return FileResult(str(path), [_parse_failure(str(path), problem)])


def audit_paths(files: list[Path], jobs: int = 1) -> list[FileResult]:
    """Results in the order of `files`, each file audited in a worker process of its own (a
    parser crash or a stall is that file's PG-PARSE-001 finding; the others keep their
    results). With several workers the largest files start first so that no big file is left
    running alone at the end (the merged records range 0.3k-3k lines)."""
    return run_isolated(list(files), audit_file, _failed, jobs=max(1, jobs))
