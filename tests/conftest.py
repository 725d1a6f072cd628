"""Shared test fixtures.

The upstream corpus (logs, submission.json, READMEs, tokenizer models of every merged record)
is read where it lies: `$PGOLF_CORPUS`, else `../shared/corpus/records` beside the checkout.
It is never copied into the project. Where it is absent a test skips with the reason, except
under `CI=true`, where its absence is a failure.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpus_records_dir() -> Path | None:
    env = os.environ.get("PGOLF_CORPUS")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "corpus" / "records")
    for c in candidates:
        if c.is_dir() and any(c.glob("track_*")):
            return c
        if c.is_dir() and (c / "records").is_dir():
            return c / "records"
    return None


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The records tree of the upstream corpus (track_*/<record>/...)."""
    found = corpus_records_dir()
    if found is None:
        msg = "upstream corpus not found: set PGOLF_CORPUS or put ../shared/corpus/records beside the checkout"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return found
