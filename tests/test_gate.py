"""`pgolf gate` on real git repositories made in the test: the shape of a PR, then check + audit."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.gate import FOLDER_RE, shape_findings

FIX = Path(__file__).parent / "fixtures"
RECORD = FIX / "check" / "record_3seed"
LEGAL = FIX / "audit" / "legal_score_first.py"
ILLEGAL = FIX / "audit" / "prequant_adamw.py"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(tmp_path: Path, code: Path, name: str = "2026-05-01_MyRecord", touch_outside: bool = False) -> Path:
    repo = tmp_path / "repo"
    (repo / "records" / "track_10min_16mb").mkdir(parents=True)
    (repo / "README.md").write_text("upstream\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    folder = repo / "records" / "track_10min_16mb" / name
    shutil.copytree(RECORD, folder)
    (folder / "README.md").write_text("# my record\n")
    shutil.copy(code, folder / "train_gpt.py")
    if touch_outside:
        (repo / "README.md").write_text("changed\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pr")
    return repo


@pytest.mark.parametrize(
    "changes, ids",
    [
        ([("A", "records/track_10min_16mb/2026-05-01_X/train_gpt.py")], []),
        ([("A", "records/track_10min_16mb/2026-05-01_X/a.py"), ("A", "records/track_10min_16mb/2026-05-02_Y/b.py")], ["PG-GATE-001"]),
        ([("M", "train_gpt.py")], ["PG-GATE-001"]),
        ([("A", "records/track_10min_16mb/myrecord/train_gpt.py")], ["PG-GATE-002"]),
        ([("A", "records/track_10min_16mb/2026-05-01_X/train_gpt.py"), ("M", "README.md")], ["PG-GATE-004"]),
    ],
)
def test_shape_rules_examples(changes, ids):
    findings, _ = shape_findings(changes)
    assert sorted(f.rule_id for f in findings) == ids


def test_folder_name_pattern():
    assert FOLDER_RE.match("2026-04-09_A2_Muon097_3Seed")
    assert not FOLDER_RE.match("A2_Muon097")


def test_gate_passes_a_clean_pr(tmp_path, capsys):
    repo = make_repo(tmp_path, LEGAL)
    rc = main(["gate", "--repo", str(repo), "--base", "main", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    assert out["verdict"] == "PASS"
    kinds = [c["kind"] for c in out["children"]]
    assert kinds == ["check", "audit"]
    assert out["subject"] == "records/track_10min_16mb/2026-05-01_MyRecord"


def test_gate_fails_illegal_code_and_outside_change(tmp_path, capsys):
    repo = make_repo(tmp_path, ILLEGAL, touch_outside=True)
    rc = main(["gate", "--repo", str(repo), "--base", "main", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["verdict"] == "FAIL"
    assert [f["id"] for f in out["findings"]] == ["PG-GATE-004"]
    audit = [c for c in out["children"] if c["kind"] == "audit"][0]
    assert audit["verdict"] == "FAIL"


def test_gate_missing_files(tmp_path, capsys):
    folder = tmp_path / "2026-05-01_Bare"
    shutil.copytree(RECORD, folder)
    rc = main(["gate", str(folder), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    ids = [f["id"] for f in out["findings"]]
    assert ids == ["PG-GATE-003"]
    assert "README.md" in out["findings"][0]["message"] and "train_gpt.py" in out["findings"][0]["message"]


def test_gate_bad_ref_is_input_error(tmp_path, capsys):
    repo = make_repo(tmp_path, LEGAL)
    rc = main(["gate", "--repo", str(repo), "--base", "no-such-ref"])
    assert rc == 2
    assert "no-such-ref" in capsys.readouterr().err
