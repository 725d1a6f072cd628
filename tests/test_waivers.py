"""audit.waivers: a waiver pins every audited file — the entry and the modules beside it — so
editing an imported module (or adding one) un-waives the finding; the old entry-only form
still works for a single-file record, and says why it does not apply otherwise."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from audit.findings import Finding, Location, Severity
from audit.waivers import apply_waivers, code_pins, load_waivers, main as waivers_main, pin_text
from harness.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "audit"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def record(tmp_path) -> Path:
    """A record whose entry downloads during evaluation (PG-NET-001) and imports a helper module."""
    rec = tmp_path / "2026-01-01_Rec"
    rec.mkdir()
    shutil.copy(FIXTURES / "download_during_eval.py", rec / "train_gpt.py")
    (rec / "helpers.py").write_text("def lr(step):\n    return 0.1 / (1 + step)\n")
    return rec


def _entry(rec: Path, **extra) -> dict:
    return {"id": "PG-NET-001", "submission": rec.name, "sha256": _sha(rec / "train_gpt.py"),
            "reason": "fixture", "who": "reviewer", "when": "2026-01-02", **extra}


def _audit(rec: Path, tmp_path: Path, entries: list[dict], capsys) -> tuple[int, str]:
    w = tmp_path / "waivers.json"
    w.write_text(json.dumps({"waivers": entries}))
    code = main(["audit", str(rec), "--waivers", str(w)])
    return code, capsys.readouterr().out


def test_a_waiver_pinning_only_the_entry_does_not_cover_a_record_with_other_code(record, tmp_path, capsys):
    code, out = _audit(record, tmp_path, [_entry(record)], capsys)
    assert code == 1 and "waived" not in out
    assert "pins only train_gpt.py; the audited code also includes helpers.py: pin every file" in out
    (record / "helpers.py").unlink()  # a single-file record: the entry is everything audited
    code, out = _audit(record, tmp_path, [_entry(record)], capsys)
    assert code == 0 and "waived" in out


def test_every_file_pinned_waives_and_an_edited_or_added_module_does_not(record, tmp_path, capsys):
    pins = {"train_gpt.py": _sha(record / "train_gpt.py"), "helpers.py": _sha(record / "helpers.py")}
    code, out = _audit(record, tmp_path, [_entry(record, files=pins)], capsys)
    assert code == 0 and "waived by reviewer on 2026-01-02" in out
    (record / "helpers.py").write_text("import urllib.request\ndef lr(step):\n    return 0.2\n")
    code, out = _audit(record, tmp_path, [_entry(record, files=pins)], capsys)
    assert code == 1 and "no longer matches the audited code (changed or missing: helpers.py)" in out
    (record / "helpers.py").write_text("def lr(step):\n    return 0.1 / (1 + step)\n")
    (record / "data_utils.py").write_text("X = 1\n")
    code, out = _audit(record, tmp_path, [_entry(record, files=pins)], capsys)
    assert code == 1 and "not pinned: data_utils.py" in out


def test_pin_command_prints_an_entry_that_waives(record, tmp_path, capsys):
    assert waivers_main(["pin", str(record)]) == 0
    pinned = yaml.safe_load("x:\n" + capsys.readouterr().out)["x"]
    assert pinned["files"] == code_pins(record) and set(pinned["files"]) == {"train_gpt.py", "helpers.py"}
    entry = {"id": "PG-NET-001", "reason": "r", "who": "w", "when": "t", **pinned}
    code, out = _audit(record, tmp_path, [entry], capsys)
    assert code == 0 and "waived" in out
    assert waivers_main(["pin", str(tmp_path / "nope")]) == 2 and waivers_main([]) == 2


def test_links_are_pinned_as_links_never_read(record, tmp_path):
    (record / "secret.py").symlink_to("/etc/hostname")
    pins = code_pins(record)
    assert pins["secret.py"] == "link"
    assert "train_gpt.py" in pin_text(record)


def test_pinned_file_names_cannot_add_keys_to_the_entry(record):
    (record / "a: b.py").write_text("x = 1\n")
    (record / "x: 0\n    reason: injected\n    y.py").write_text("y = 1\n")
    entry = yaml.safe_load("waivers:\n  - id: PG-NET-001\n" + pin_text(record))["waivers"][0]
    assert set(entry) == {"id", "submission", "sha256", "files"}
    assert entry["files"] == code_pins(record)


def test_the_audited_set_when_the_audit_passes_it(tmp_path):
    rec = tmp_path / "2026-01-01_Rec"
    rec.mkdir()
    f = Finding("PG-NET-001", Severity.ERROR, "download", "NET", Location(str(rec / "train_gpt.py"), 3))
    w = tmp_path / "w.yaml"
    w.write_text(yaml.safe_dump({"waivers": [{"id": "PG-NET-001", "submission": rec.name, "sha256": "ab", "reason": "r",
                                              "who": "w", "when": "t", "files": {"train_gpt.py": "ab", "m.py": "cd"}}]}))
    waivers = load_waivers(w)
    ok = apply_waivers([f], waivers, str(rec / "train_gpt.py"), "ab", audited={"train_gpt.py": "ab", "m.py": "cd"})
    assert ok[0].severity is Severity.NOTE and ok[0].data["waived"]
    stale = apply_waivers([f], waivers, str(rec / "train_gpt.py"), "ab", audited={"train_gpt.py": "ab", "m.py": "ef"})
    assert stale[0].severity is Severity.ERROR and "changed or missing: m.py" in stale[0].evidence[-1].message


def test_files_must_map_paths_to_hashes(tmp_path):
    w = tmp_path / "w.json"
    w.write_text(json.dumps([{"id": "X", "submission": "s", "sha256": "a", "reason": "r", "who": "w", "when": "t",
                              "files": ["train_gpt.py"]}]))
    with pytest.raises(ValueError, match="`files` must map"):
        load_waivers(w)
