"""audit.safe_read: the one way submission files are read (no links, capped, no FIFOs)."""
from __future__ import annotations

import os

import pytest

from audit.safe_read import UnsafeRead, lkind, read_capped, read_under, scan


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "rec").mkdir()
    rec = tmp_path / "rec"
    (rec / "train_gpt.py").write_text("print(1)\n")
    (rec / "logs").mkdir()
    (rec / "logs" / "a.log").write_text("x\n")
    (tmp_path / "secret.txt").write_text("CANARY\n")
    os.symlink(tmp_path / "secret.txt", rec / "train_seed7.log")
    os.symlink(tmp_path, rec / "outside")
    os.mkfifo(rec / "pipe.log")
    return rec


def test_scan_reports_links_and_never_enters_them(tree):
    kinds = {e.rel: e.kind for e in scan(tree)}
    assert kinds["train_seed7.log"] == "link"
    assert kinds["outside"] == "link"
    assert kinds["pipe.log"] == "other"
    assert kinds["logs/a.log"] == "file"
    assert not any(rel.startswith("outside/") for rel in kinds)


def test_read_capped_refuses_links_fifos_and_big_files(tree):
    assert read_capped(tree / "train_gpt.py", 100) == b"print(1)\n"
    for name, reason in (("train_seed7.log", "link"), ("pipe.log", "not-regular"), ("nope", "missing")):
        with pytest.raises(UnsafeRead) as e:
            read_capped(tree / name, 100)
        assert e.value.reason == reason, name
    with pytest.raises(UnsafeRead) as e:
        read_capped(tree / "train_gpt.py", 4)
    assert e.value.reason == "too-large" and e.value.size == 9


def test_sparse_file_is_refused_before_reading(tmp_path):
    big = tmp_path / "sparse.log"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)
    with pytest.raises(UnsafeRead) as e:
        read_capped(big, 1 << 20)
    assert e.value.reason == "too-large" and e.value.size == 1 << 30


def test_read_under_refuses_a_linked_folder_on_the_path(tree):
    assert read_under(tree, "logs/a.log", 100) == b"x\n"
    with pytest.raises(UnsafeRead) as e:
        read_under(tree, "outside/secret.txt", 100)
    assert e.value.reason == "link"
    with pytest.raises(UnsafeRead):
        read_under(tree, "../secret.txt", 100)
    assert lkind(tree / "outside") == "link" and lkind(tree / "none") is None
