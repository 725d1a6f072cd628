"""Real git repositories for the gate tests: a base commit with merged records, and PR branches.

Every repository is made by the test in a temporary folder with the `git` command; the record
inside is the hand-written fixture record (tests/fixtures/check/record_3seed) plus a README and
a train_gpt.py from tests/fixtures/audit. Nothing is copied from upstream.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).parent / "fixtures"
RECORD = FIX / "check" / "record_3seed"
LEGAL = FIX / "audit" / "legal_score_first.py"
ILLEGAL = FIX / "audit" / "prequant_adamw.py"
TRACK = "records/track_10min_16mb"
NON_RECORD = "records/track_non_record_16mb"
REPO_ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


def commit(repo: Path, msg: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", msg)


def write_record(folder: Path, code: Path = LEGAL, readme: str = "# my record\n") -> Path:
    shutil.copytree(RECORD, folder)
    (folder / "README.md").write_text(readme)
    shutil.copy(code, folder / "train_gpt.py")
    return folder


def base_repo(tmp_path: Path, merged: str = "2026-04-01_Merged") -> Path:
    """A repository whose `main` holds one merged record, a top-level README and a workflow;
    HEAD is a new branch `pr` (identical to main until the test changes it)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("upstream\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (repo / NON_RECORD).mkdir(parents=True)
    (repo / NON_RECORD / ".keep").write_text("")
    write_record(repo / TRACK / merged)
    commit(repo, "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def pr_repo(tmp_path: Path, name: str = "2026-05-01_MyRecord", code: Path = LEGAL) -> tuple[Path, str]:
    """`base_repo` plus a commit on `pr` adding one record folder; (repo, its folder)."""
    repo = base_repo(tmp_path)
    folder = f"{TRACK}/{name}"
    write_record(repo / folder, code)
    commit(repo, "pr")
    return repo, folder


def run_cli(*argv: str, env: dict | None = None, cwd: Path | None = None, limit_as: int | None = 512 << 20,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGV` in a fresh process (this worktree's code), under an address
    space limit (`prlimit --as`) so a memory bomb fails the test instead of the machine."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    cmd = [sys.executable, "-m", "harness.cli", *argv]
    if limit_as is not None and shutil.which("prlimit"):
        cmd = ["prlimit", f"--as={limit_as}", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, env=full_env, cwd=cwd, timeout=timeout)
