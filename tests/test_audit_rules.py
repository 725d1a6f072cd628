"""Every rule's VALID/INVALID examples and every annotated fixture, checked on exact lines.

Fixture annotations (semgrep-style): `# expect: ID` on a line where rule ID must fire,
`# ok: ID` on a line where it must not, `# known-miss: ...` for honest gaps (not checked);
`# expect-decoded: ID LINE` for a finding inside a self-extracting wrapper's decoded payload.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit.findings import Severity, Verdict, roll_up
from audit.static import RULES, audit_file, audit_source
from audit.static.rules import Folder

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
ANNOT = re.compile(r"#\s*(expect|ok):\s*(PG-[A-Z0-9]+-\d{3})")
DECODED = re.compile(r"#\s*expect-decoded:\s*(PG-[A-Z0-9]+-\d{3})\s+(\d+)")

EXAMPLES = [(rid, i, src, None) for rid, cls in RULES.items() for i, src in enumerate(cls.VALID)]
EXAMPLES += [(rid, i, src, line) for rid, cls in RULES.items() for i, (src, line) in enumerate(cls.INVALID)]


@pytest.mark.parametrize("rule_id,index,src,line", EXAMPLES, ids=[f"{e[0]}-{'invalid' if e[3] else 'valid'}-{e[1]}" for e in EXAMPLES])
def test_rule_example(rule_id, index, src, line, tmp_path):
    if isinstance(src, Folder):  # a whole record folder: run the file audit on it
        rec = tmp_path / "2026-01-01_Example"
        src.write(rec)
        found = [f for f in audit_file(rec / "train_gpt.py").findings if f.rule_id == rule_id]
        where = [f"{f.location.path.rsplit('/', 1)[-1]}:{f.location.line}" if f.location.line else
                 f.location.path.rsplit("/", 1)[-1] for f in found]
        if line is None:
            assert where == [], f"{rule_id} fired on its VALID example at {where}"
        else:
            assert line in where, f"{rule_id} should fire at {line}, fired at {where}"
        return
    lines = [f.location.line for f in audit_source(src, "example.py") if f.rule_id == rule_id]
    if line is None:
        assert lines == [], f"{rule_id} fired on its VALID example at {lines}"
    else:
        assert line in lines, f"{rule_id} should fire on line {line}, fired on {lines}"


def test_every_rule_has_examples_and_rationale():
    for rid, cls in RULES.items():
        assert re.fullmatch(r"PG-[A-Z0-9]+-\d{3}", rid)
        assert cls.VALID and cls.INVALID, rid
        assert len(cls.rationale()) > 40, rid


# single programs, and record folders (code with its README, run scripts and logs) for the rules
# that read run evidence; a fixture's kind comes from its name: legal_ must PASS with no error,
# review_ must be REVIEW, known_ documents honest gaps, anything else must FAIL
FIXTURE_FILES = sorted(FIXTURES.glob("*.py")) + sorted(FIXTURES.glob("records/*/train_gpt.py"))


def _fixture_name(path: Path) -> str:
    return path.parent.name if path.parent.parent.name == "records" else path.stem


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[_fixture_name(p) for p in FIXTURE_FILES])
def test_annotated_fixture(path):
    result = audit_file(path)
    by_rule: dict[str, set[int]] = {}
    for f in result.findings:
        if f.location is not None and f.location.path == str(path):
            by_rule.setdefault(f.rule_id, set()).add(f.location.line)
    text = path.read_text()
    expected_any = False
    for no, line in enumerate(text.splitlines(), 1):
        for kind, rid in ANNOT.findall(line):
            got = by_rule.get(rid, set())
            if kind == "expect":
                expected_any = True
                assert no in got, f"{path.name}:{no}: {rid} expected, fired on {sorted(got)}"
            else:
                assert no not in got, f"{path.name}:{no}: {rid} must not fire here"
        for rid, dline in DECODED.findall(line):
            decoded = {f.location.line for f in result.findings if f.rule_id == rid and f.location.path.endswith("#decoded")}
            assert int(dline) in decoded, f"{rid} expected at decoded line {dline}, got {sorted(decoded)}"
    name = _fixture_name(path)
    if name.startswith("known_"):
        return  # honest gaps: documented with `# known-miss`, nothing asserted
    if name.startswith("legal_"):
        assert result.verdict is Verdict.PASS, [f.to_dict() for f in result.findings]
        assert not [f for f in result.findings if f.severity is Severity.ERROR]
        shapes = [f for f in result.findings if f.rule_id == "PG-EVAL-001"]
        assert len(shapes) == 1 and shapes[0].message.startswith("legal shape: "), "a PASS names its legal shape"
    elif name.startswith("review_"):
        assert expected_any and result.verdict is Verdict.REVIEW, [f.to_dict() for f in result.findings]
        assert not [f for f in result.findings if f.severity is Severity.ERROR]
    else:
        assert expected_any and result.verdict is Verdict.FAIL


# legal fixtures whose dormancy rests on one configured value, and the edit that turns the illegal
# path on: the same program must then FAIL with that rule as an error
SWITCHED_ON = [
    ("legal_param_site_off.py", '"NGRAM_CACHE", "0"', '"NGRAM_CACHE", "1"', "PG-C2-001"),
    ("legal_value_dormant.py", '"NGRAM_LAMBDA", 1.0', '"NGRAM_LAMBDA", 0.8', "PG-C2-001"),
    ("legal_calib_branch_off.py", '"GPTQ_CALIB_USE_VAL", "0"', '"GPTQ_CALIB_USE_VAL", "1"', "PG-DATA-001"),
]


@pytest.mark.parametrize("name,old,new,rule_id", SWITCHED_ON, ids=[s[0] for s in SWITCHED_ON])
def test_dormant_path_switched_on_is_an_error(name, old, new, rule_id):
    src = (FIXTURES / name).read_text()
    assert old in src
    before = [f for f in audit_source(src, name) if f.rule_id == rule_id and f.severity is Severity.ERROR]
    after = audit_source(src.replace(old, new), name)
    assert before == []
    assert [f for f in after if f.rule_id == rule_id and f.severity is Severity.ERROR], [f.to_dict() for f in after]
    assert roll_up(after) is Verdict.FAIL


def test_environment_the_script_sets_itself_is_cited_at_its_line(tmp_path):
    src = (FIXTURES / "prequant_adamw.py").read_text().replace('"PREQUANT_EPOCHS", "8"', '"PREQUANT_EPOCHS", "0"')
    src = 'import os\n\nos.environ.setdefault("PREQUANT_EPOCHS", "6")\n' + src
    rec = tmp_path / "2026-01-01_X"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(src)
    found = [f for f in audit_file(rec / "train_gpt.py").findings if f.rule_id == "PG-C3-002"]
    assert found and found[0].data["state"] == "enabled"
    assert [(s.location.path.rsplit("/", 1)[-1], s.location.line) for s in found[0].evidence
            if s.location is not None and "PREQUANT_EPOCHS" in s.message] == [("train_gpt.py", 3)]


def test_comment_in_audited_code_cannot_waive():
    src = (FIXTURES / "adapt_then_restore.py").read_text().replace("# expect: PG-C3-001", "# noqa  # pgolf: waive PG-C3-001")
    assert roll_up(audit_source(src, "x.py")) is Verdict.FAIL


def test_dormant_flag_is_warning_and_record_evidence_turns_it_on(tmp_path):
    src = (FIXTURES / "prequant_adamw.py").read_text().replace('"PREQUANT_EPOCHS", "8"', '"PREQUANT_EPOCHS", "0"')
    rec = tmp_path / "2026-01-01_X"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(src)
    found = [f for f in audit_file(rec / "train_gpt.py").findings if f.rule_id == "PG-C3-002"]
    assert found and found[0].severity is Severity.WARNING and found[0].data["state"] == "dormant"
    (rec / "README.md").write_text("Run:\n\n    PREQUANT_EPOCHS=6 torchrun --nproc_per_node=8 train_gpt.py\n")
    found = [f for f in audit_file(rec / "train_gpt.py").findings if f.rule_id == "PG-C3-002"]
    assert found[0].severity is Severity.ERROR and found[0].data["state"] == "enabled"
    assert any(s.location is not None and s.location.path.endswith("README.md") and s.location.line == 3 for s in found[0].evidence)
    (rec / "README.md").unlink()
    (rec / "train_seed1337.log").write_text("logs/x.txt\nprequant_epochs: 4 val_files: ./data/fineweb_val_*.bin\n")
    found = [f for f in audit_file(rec / "train_gpt.py").findings if f.rule_id == "PG-C3-002"]
    assert found[0].data["state"] == "enabled"
    assert any(s.location is not None and s.location.path.endswith("train_seed1337.log") for s in found[0].evidence)


OFFSETS = [
    ("chunks[k - 1]", {}, True), ("chunks[k]", {}, False), ("chunks[:k]", {}, True), ("chunks[2 * k - 1]", {}, False),
    ("toks[(k - 1) * n:k * n + 1]", {}, True), ("toks[(k - 1) * 100:k * 100 + 1]", {}, True),
    ("toks[(k - 1) * n:(k + 1) * n]", {}, False), ("toks[(k - 1) * n:]", {}, False), ("toks[k - 1:k + 1]", {}, False),
    ("toks[(k - 1) * 100:k * 100 + 2]", {}, False), ("toks[f(k - 1)]", {}, False), ("toks[b, (k - 1) * n:k * n]", {}, True),
    ("toks[s:s + n + 1]", {"s": "(k - 1) * n"}, True), ("toks[s:s + n + 1]", {"s": "k * n"}, False),
    ("toks[s:e]", {"s": "(k - 1) * args.chunk", "e": "s + 2 * args.chunk"}, False),
]


@pytest.mark.parametrize("expr,assigns,want", OFFSETS, ids=[o[0] for o in OFFSETS])
def test_earlier_offsets(expr, assigns, want):
    """Which subscripts select only blocks before the loop variable's (train on chunk k-1)."""
    import libcst as cst

    from audit.static.offsets import earlier

    node = cst.parse_expression(expr)
    bound = {k: cst.parse_expression(v) for k, v in assigns.items()}
    assert (earlier(node.slice, bound, {"k": 1}) == {"k"}) is want
