"""Audit entry points: a source text, a file, a record folder, or a tree of records.

Per program: read -> parse (libcst) -> decode a self-extracting payload if there is one -> add
the helper modules it imports from its own folder -> statement positions (ast pairing) -> IR ->
label fixpoint -> ordered events from the entry point -> rules -> verdict. Nothing raises on bad
input: unreadable or unparsable code is a PG-PARSE-001 finding and a REVIEW verdict.
"""
from __future__ import annotations

import ast
import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from audit.findings import EvidenceStep, Finding, Location, Severity, Verdict, roll_up
from audit.static.flags import FlagEval, collect_evidence
from audit.static.flow import Flow
from audit.static.ir import build_module
from audit.static.names import import_aliases
from audit.static.positions import statement_positions
from audit.static.program import Program
from audit.static.rules import RULES
from audit.static.source import NotDecodable, decode_source, evaluate_decoder_chain, read_source
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


def _find_payload(module: cst.Module, aliases: dict, path: str, folder: Path | None, positions):
    """(payload text, payload path, exec line) of a self-extracting wrapper, or None."""
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            call = small.value if isinstance(small, cst.Expr) else None
            if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "exec" and call.args):
                continue
            line = positions.get(id(small), (None,))[0]
            arg = call.args[0].value
            try:
                out = evaluate_decoder_chain(arg, aliases)
                if isinstance(out, bytes):
                    out = out.decode("utf-8", errors="replace")
                return out, f"{path}#decoded", line
            except (NotDecodable, UnicodeError, ValueError, TypeError, LookupError):
                pass
            if folder is not None:  # exec(open(<sibling>.py).read())
                for node in _strings(arg):
                    cand = folder / os.path.basename(node)
                    if node.endswith(".py") and cand.is_file() and cand.name != Path(path).name:
                        src = read_source(cand)
                        if src.text is not None:
                            return src.text, str(cand), line
    return None


def _strings(node) -> list[str]:
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.SimpleString):
            v = n.evaluated_value
            if isinstance(v, str):
                out.append(v)
        stack.extend(n.children)
    return out


def _helpers(module: cst.Module, folder: Path | None, own: str) -> list[tuple[str, Path]]:
    """Modules the program imports from its own folder: `ngram_mix` -> folder/ngram_mix.py, and
    for a package folder `pkg`, `pkg.data` or `.data` -> folder/data.py."""
    if folder is None:
        return []
    names: list[str] = []
    for node in _imports(module):
        if isinstance(node, cst.Import):
            names += [cst.Module([]).code_for_node(a.name) for a in node.names]
        elif isinstance(node, cst.ImportFrom) and node.module is not None:
            names.append(cst.Module([]).code_for_node(node.module))
    out = []
    for n in names:
        parts = n.split(".")
        if parts[0] == folder.name and len(parts) > 1:
            parts = parts[1:]
        p = folder.joinpath(*parts[:-1], f"{parts[-1]}.py")
        if p.is_file() and p.name != own:
            out.append((n, p))
    return out


def _imports(module: cst.Module):
    stack = list(module.body)
    while stack:
        s = stack.pop()
        if isinstance(s, cst.SimpleStatementLine):
            for small in s.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    yield small
        elif isinstance(s, (cst.If, cst.Try, cst.FunctionDef, cst.With)):
            body = s.body
            stack.extend(getattr(body, "body", ()))


def audit_source(text: str, path: str, folder: Path | None = None, evidence_folder: Path | None = None) -> list[Finding]:
    """Findings for one program given as text (the unit the rule examples and fixtures use)."""
    findings: list[Finding] = []
    module, fail = _parse(text, path)
    if fail is not None:
        return [fail]
    aliases = import_aliases(module)
    positions = statement_positions(module, text)
    decoded_note = None
    payload = _find_payload(module, aliases, path, folder, positions)
    if payload is not None:
        ptext, ppath, line = payload
        findings.append(Finding("PG-PARSE-003", Severity.NOTE, RULES["PG-PARSE-003"].message, "PARSE",
                                Location(path, line), (EvidenceStep(f"payload audited as {ppath}"),), "high"))
        module, fail = _parse(ptext, ppath)
        if fail is not None:
            return findings + [fail]
        text, path = ptext, ppath
        aliases = import_aliases(module)
        positions = statement_positions(module, text)
        decoded_note = f"location in the decoded payload {path}"
    irs = [build_module(module, path, positions, aliases)]
    seen = {Path(path).name}
    queue = _helpers(module, folder, Path(path).name)
    while queue and len(irs) <= MAX_HELPERS:
        name, hp = queue.pop(0)
        if hp.name in seen:
            continue
        seen.add(hp.name)
        src = read_source(hp)
        if src.text is None:
            findings.append(_parse_failure(str(hp), src.problem or "unreadable"))
            continue
        hmod, fail = _parse(src.text, str(hp))
        if fail is not None:
            findings.append(fail)
            continue
        ir = build_module(hmod, str(hp), statement_positions(hmod, src.text), import_aliases(hmod))
        ir.module_name = name
        irs.append(ir)
        queue.extend(_helpers(hmod, folder, hp.name))
    flow = Flow(irs)
    flow.run()
    events = Tracer(flow).program(irs[0].functions["<module>"], list(irs[0].functions.values()))
    class_attrs: dict = {}
    constants: dict = {}
    for ir in irs:
        class_attrs.update(ir.class_attrs)
        constants.update(ir.constants)
    ev_folder = evidence_folder or folder
    evidence = collect_evidence(ev_folder, set(class_attrs)) if ev_folder is not None else None
    functions = {q: f for ir in irs for q, f in ir.functions.items()}
    prog = Program(path, events, flow, FlagEval(class_attrs, constants, None, functions),
                   FlagEval(class_attrs, constants, evidence, functions) if evidence is not None else None,
                   decoded_note=decoded_note)
    for rule_cls in RULES.values():
        rule_cls().check(prog)
    return findings + prog.findings


def audit_file(path: Path, folder: Path | None = None) -> FileResult:
    t0 = time.perf_counter()
    path = Path(path)
    folder = folder if folder is not None else path.parent
    try:
        raw = path.read_bytes()
    except OSError as e:
        return FileResult(str(path), [_parse_failure(str(path), f"cannot read: {e}")])
    sha = hashlib.sha256(raw).hexdigest()
    src = decode_source(str(path), raw)
    if src.text is None:
        return FileResult(str(path), [_parse_failure(str(path), src.problem or "unreadable")], sha, 0, time.perf_counter() - t0)
    try:
        findings = audit_source(src.text, str(path), folder)
    except RecursionError:
        findings = [_parse_failure(str(path), "nesting too deep to analyse")]
    except Exception as e:  # an analysis bug must not hide a file: REVIEW, with the reason
        findings = [_parse_failure(str(path), f"internal error {type(e).__name__}: {str(e)[:200]}")]
    return FileResult(str(path), findings, sha, src.text.count("\n") + 1, time.perf_counter() - t0)


def entry_files(folder: Path) -> list[Path]:
    """The programs of a record folder: train_gpt.py if it has code, else train*.py, else *.py."""
    main = folder / "train_gpt.py"
    if main.is_file() and main.stat().st_size > 0:
        return [main]
    trains = sorted(p for p in folder.glob("train*.py") if p.stat().st_size > 0)
    return trains or sorted(p for p in folder.glob("*.py") if p.stat().st_size > 0)


def collect_targets(path: Path) -> list[Path]:
    """Files to audit under `path`: itself, a record folder's entry files, or every record below."""
    path = Path(path)
    if path.is_file():
        return [path]
    if any(path.glob("*.py")):
        return entry_files(path)
    out: list[Path] = []
    for sub in sorted(p for p in path.rglob("*") if p.is_dir()):
        if any(sub.glob("*.py")):
            out.extend(entry_files(sub))
    return out


def audit_paths(files: list[Path], jobs: int = 1) -> list[FileResult]:
    """Results in the order of `files`. With workers, the largest files start first so that
    no big file is left running alone at the end (the merged records range 0.3k-3k lines)."""
    if jobs <= 1 or len(files) <= 1:
        return [audit_file(f) for f in files]
    order = sorted(range(len(files)), key=lambda i: -_size(files[i]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(audit_file, [files[i] for i in order], chunksize=1))
    out: list = [None] * len(files)
    for i, r in zip(order, done):
        out[i] = r
    return out


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
