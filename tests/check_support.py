"""Helpers for the check tests: copy the hand-written fixture record and edit its files.

Every failing case is the passing fixture record (tests/fixtures/check/record_3seed: three seeds,
int6+lzma, sliding-window score, a submission.json that matches its logs) with one edit, so a
test shows exactly which printed line or claim makes a rule fire.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

FIX = Path(__file__).parent / "fixtures" / "check"
RECORD = FIX / "record_3seed"
SEEDS = (1337, 42, 2025)


def copy_record(tmp_path: Path, name: str = "record") -> Path:
    dst = tmp_path / name
    shutil.copytree(RECORD, dst)
    return dst


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data, indent=2) + "\n")


def log(record: Path, seed: int) -> Path:
    return record / f"train_seed{seed}.log"
