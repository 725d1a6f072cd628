"""Hostile record folders against `pgolf check` and `pgolf gate RECORD` (issue 10, items 1-3).

Each attack runs the real CLI in its own process under a 512 MB address-space limit
(`prlimit --as`), with a canary secret in its environment, and asserts: the exit code; that the
output is complete and valid for its format; that neither the canary nor any host path the
record links to appears in any output; and that the run finishes (a bomb would hit the limit).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from check_support import copy_record
from gate_support import REPO_ROOT, run_cli
from input_hostile import output_problems

CANARY = f"CANARY_{uuid.uuid4().hex}"
FORMATS = {"check": ("text", "json", "markdown"), "gate": ("text", "json", "markdown", "sarif")}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PGOLF_CANARY_SECRET"] = CANARY  # what a CI token would be
    return env


def run_all_formats(cmd: str, folder, expect_rc: tuple[int, ...], leaks: tuple[str, ...] = ()) -> dict[str, str]:
    """Every format of `pgolf CMD FOLDER`; returns the outputs by format after the common checks."""
    outs = {}
    for fmt in FORMATS[cmd]:
        done = run_cli(cmd, str(folder), "--format", fmt, env=_env())
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        assert done.returncode in expect_rc, (cmd, fmt, done.returncode, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        if done.returncode != 2 or fmt != "text":
            assert out.endswith("\n") and output_problems(out, fmt) == [], (fmt, output_problems(out, fmt))
        for secret in (CANARY, *leaks):
            assert secret not in out and secret not in err, (cmd, fmt, secret)
        outs[fmt] = out
    return outs


def ids(doc: dict) -> list[str]:
    return [f["id"] for f in doc["findings"]] + [i for c in doc.get("children", []) for i in ids(c)]


@pytest.fixture()
def linked(tmp_path):
    """A passing record plus: a log linking to /proc/self/environ, a README linking to a file
    holding the canary, and a `logs` folder linking to a host folder with a telling file name."""
    rec = copy_record(tmp_path)
    (tmp_path / "secret.txt").write_text(CANARY + "\n")
    host = tmp_path / "host_dir_a1b2"
    host.mkdir()
    (host / "host_only_file_c3d4.log").write_text("seed:42\n")
    os.symlink("/proc/self/environ", rec / "train_seed7.log")
    os.symlink(tmp_path / "secret.txt", rec / "README.md")
    os.symlink(host, rec / "logs")
    os.symlink(tmp_path / "secret.txt", rec / ".hidden.log")
    return rec


def test_links_are_never_followed_by_check(linked):
    outs = run_all_formats("check", linked, (0,), leaks=("host_dir_a1b2", "host_only_file_c3d4", "/proc/self"))
    doc = json.loads(outs["json"])
    links = sorted(f["location"]["path"].rsplit("/", 1)[-1] for f in doc["findings"] if f["id"] == "PG-INPUT-002")
    assert links == [".hidden.log", "README.md", "logs", "train_seed7.log"]


def test_links_are_errors_in_the_gate(linked):
    (linked / "train_gpt.py").write_text("print('hello')\n")
    outs = run_all_formats("gate", linked, (1,), leaks=("host_dir_a1b2", "host_only_file_c3d4", "/proc/self"))
    doc = json.loads(outs["json"])
    link = [f for f in doc["children"][0]["findings"] if f["id"] == "PG-GATE-006"]
    assert link and link[0]["severity"] == "error"
    assert "PG-INPUT-002" not in ids(doc)  # the gate's error replaces the loader's warning


def test_only_link_logs_is_unusable_with_a_report(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    os.symlink("/proc/self/environ", rec / "train_seed1.log")
    outs = run_all_formats("check", rec, (2,))
    doc = json.loads(outs["json"])
    assert doc["verdict"] == "FAIL" and doc["findings"][0]["id"] == "PG-INPUT-001"
    assert "1 link(s) not followed: train_seed1.log" in doc["findings"][0]["message"]


def test_sparse_gigabyte_log_is_refused_before_reading(tmp_path):
    rec = copy_record(tmp_path)
    with open(rec / "train_seed9.log", "wb") as fh:
        fh.truncate(1 << 30)
    outs = run_all_formats("check", rec, (0,))
    big = [f for f in json.loads(outs["json"])["findings"] if f["id"] == "PG-INPUT-003"]
    assert big and big[0]["data"]["size"] == 1 << 30 and json.loads(outs["json"])["verdict"] == "REVIEW"


def test_hundred_megabyte_log_costs_nothing_and_one_under_the_cap_streams(tmp_path):
    from harness.logs.parse import MAX_LOG_BYTES

    rec = copy_record(tmp_path)
    line = b"step:1/20000 train_loss:2.5731 train_time:48000ms step_avg:96.12ms\n"
    with open(rec / "train_seed9.log", "wb") as fh:
        fh.write(line * (100_000_000 // len(line)))
    with open(rec / "train_seed10.log", "wb") as fh:
        fh.write(line * ((MAX_LOG_BYTES - 1024) // len(line)))  # parsed, streamed, bounded
    done = run_cli("check", str(rec), "--format", "json", limit_as=512 << 20)
    assert done.returncode == 1, done.stderr[-2000:]  # seed 10's log prints no score: PG-PARSE-001
    doc = json.loads(done.stdout)
    refused = [f["location"]["path"].rsplit("/", 1)[-1] for f in doc["findings"] if f["id"] == "PG-INPUT-003"]
    assert refused == ["train_seed9.log"]
    bounded = [f for f in doc["findings"] if f["id"] == "PG-INPUT-006"]
    assert bounded and bounded[0]["data"]["dropped_lines"] > 100_000


@pytest.mark.parametrize("name, text, expect_rc, finding", [
    # the verdict on the record's claims is the checks' business (0 or 1); never a crash or exit 2
    ("deep", '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}", (2,), "PG-INPUT-001"),
    ("digits", '{"val_bpb": 1.11, "seed": ' + "9" * 5000 + "}", (0, 1), "PG-INPUT-005"),
    ("nan", '{"val_bpb": NaN, "bytes_total": -Infinity}', (0, 1), "PG-INPUT-005"),
    ("huge", '{"pad": "' + "x" * (2 << 20) + '"}', (0,), "PG-INPUT-003"),
], ids=["deep", "digits", "nan", "huge"])  # short ids: pytest puts the id in every child's environment
def test_hostile_submission_json(tmp_path, name, text, expect_rc, finding):
    rec = copy_record(tmp_path)
    (rec / "submission.json").write_text(text)
    outs = run_all_formats("check", rec, expect_rc)
    doc = json.loads(outs["json"])
    assert finding in ids(doc)
    gate = run_all_formats("gate", rec, (1,))
    assert "Traceback" not in gate["text"]


def test_fifo_and_device_are_not_opened(tmp_path):
    rec = copy_record(tmp_path)
    os.mkfifo(rec / "train_seed5.log")
    os.mkfifo(rec / "submission_extra.json")
    outs = run_all_formats("check", rec, (0,))
    special = [f for f in json.loads(outs["json"])["findings"] if f["id"] == "PG-INPUT-004"]
    assert len(special) == 2


def test_check_all_does_not_walk_through_links(tmp_path):
    tree = tmp_path / "records"
    copy_record(tree / "track_10min_16mb", "2026-05-01_Good")
    host = tmp_path / "host_tree_e5f6"
    copy_record(host, "2026-05-02_HostRecord")
    os.symlink(host, tree / "track_10min_16mb" / "2026-05-03_Link")
    os.symlink("/", tree / "track_non_record_16mb")
    for fmt in ("text", "json", "markdown"):
        done = run_cli("check", "--all", str(tree), "--format", fmt, env=_env())
        out = done.stdout.decode()
        assert done.returncode == 0, done.stderr
        assert "host_tree_e5f6" not in out and "HostRecord" not in out and CANARY not in out
        assert output_problems(out, fmt) == []
    doc = json.loads(run_cli("check", "--all", str(tree), "--format", "json").stdout)
    subjects = sorted(c["subject"].rsplit("/", 1)[-1] for c in doc["children"])
    assert subjects == ["2026-05-01_Good", "2026-05-03_Link", "track_non_record_16mb"]
    assert sum(1 for c in doc["children"] if ids(c) == ["PG-INPUT-002"]) == 2


@pytest.mark.parametrize("cmd", ["check", "gate"])
def test_import_path_does_not_pull_torch(tmp_path, cmd):
    rec = copy_record(tmp_path)
    (rec / "README.md").write_text("# r\n")
    (rec / "train_gpt.py").write_text("import torch\nprint(torch)\n")
    probe = ("import sys\nfrom harness.cli import main\nrc = main([%r, %r, '--format', 'json'])\n"
             "heavy = sorted(m for m in ('torch', 'numpy', 'scipy', 'matplotlib') if m in sys.modules)\n"
             "print('HEAVY', heavy, file=sys.stderr)\n") % (cmd, str(rec))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=300)
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]


def test_reproduction_never_copies_or_hashes_a_linked_file(tmp_path):
    """A `helper.py -> secret` link in a record: the reproduced record (what `pgolf check` and the
    report read) does not contain it, and the fingerprint does not depend on the link's target."""
    from harness.reproduce.seeds import ReproConfig, assemble_reproduced_record, record_fingerprint

    secret = tmp_path / "host_secret.py"
    secret.write_text(f"TOKEN = '{CANARY}'\n")
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text("print('hi')\n")
    (rec / "submission.json").write_text("{}")
    (rec / "helper.py").symlink_to(secret)
    (rec / "pkg").symlink_to(tmp_path, target_is_directory=True)
    out = tmp_path / "out"
    (out / "seed_1").mkdir(parents=True)
    (out / "seed_1" / "train.log").write_text("val_bpb:1.0\n")
    cfg = ReproConfig(record_dir=rec, out_dir=out, seeds=[1])
    before = record_fingerprint(cfg)
    secret.write_text("TOKEN = 'changed'\n")
    assert record_fingerprint(cfg) == before
    dst = assemble_reproduced_record(cfg, [{"log": "seed_1/train.log"}])
    names = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*"))
    assert names == ["submission.json", "train.log", "train_gpt.py"]
    assert all(CANARY not in p.read_text() for p in dst.rglob("*") if p.is_file())
