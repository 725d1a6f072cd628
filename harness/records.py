"""Load a record folder (the files a PR adds) into a `Record`: submission.json, README, code
files, and the train logs mapped to seeds.

Deliberately loose: upstream `submission.json` grew fields over time, so every field is optional
and unknown fields are kept as they are; checks that need a field say so when it is missing. A
plain folder holding only logs (and perhaps a submission.json) loads too — that is what the
reproduction step produces, and it runs the same checks on its own logs.

Untrusted content: code files are listed with their byte sizes, never imported or executed.

Errors: a missing folder, a folder with no train logs, or a submission.json that is not valid
JSON raise `InputError` naming the file (and line, for JSON) — the CLI exits 2 on them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.logs import RunLog, parse_log

TRACKS = ("track_10min_16mb", "track_non_record_16mb")
CODE_SUFFIXES = (".py", ".sh", ".cu", ".cpp", ".c", ".h")
_MAX_DEPTH = 3  # logs sit at the top or in a `logs/` subfolder; do not wander further
_FILENAME_SEED = re.compile(r"(?:seed|_s)[_-]?(\d+)(?!\d)", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"_(\d+)$")


@dataclass
class LogFile:
    """One train log of the record and the seed it belongs to.

    `seed` is the seed the log printed; when it printed none — or printed one the submission does
    not claim while its file name names a claimed one (a fork that ignores `SEED` and prints its
    default) — the one in its file name (`train_seed42.log`, `ternary_log_7.txt`).
    `filename_seed` is kept apart so a disagreement between the two can be reported.
    """

    path: Path
    rel: str  # path as shown in findings (the record folder joined with the file name)
    run: RunLog
    seed: int | None
    seed_source: str | None  # "log", "filename" or None
    filename_seed: int | None


@dataclass
class Record:
    path: Path
    track: str | None
    track_source: str  # "folder", "submission.json" or "unknown"
    submission: dict[str, Any] = field(default_factory=dict)
    submission_path: Path | None = None
    submission_text: str = ""
    readme: str | None = None
    code_files: dict[str, int] = field(default_factory=dict)  # relative path -> size in bytes
    logs: list[LogFile] = field(default_factory=list)
    # Files that are neither code nor train logs (README.md, submission*.json, requirements.txt, a
    # .txt that does not read like a train log): relative path -> why it is not a log. The check
    # report accounts for every file of the folder from `logs` and this.
    other_files: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def by_seed(self) -> dict[int | None, list[LogFile]]:
        """Logs grouped by seed, in file order; `None` holds logs whose seed is unknown."""
        out: dict[int | None, list[LogFile]] = {}
        for lf in self.logs:
            out.setdefault(lf.seed, []).append(lf)
        return out

    @property
    def seeds(self) -> list[int]:
        return sorted({lf.seed for lf in self.logs if lf.seed is not None})

    def submission_line(self, key: str) -> int | None:
        """The line of `"key":` in submission.json (first occurrence), for findings."""
        if not self.submission_text:
            return None
        m = re.search(r'"' + re.escape(str(key)) + r'"\s*:', self.submission_text)
        if m is None:
            return None
        return self.submission_text.count("\n", 0, m.start()) + 1

    def location_path(self, name: str) -> str:
        return str(self.path / name)


def seed_from_filename(name: str) -> int | None:
    stem = name.rsplit(".", 1)[0]
    m = _FILENAME_SEED.search(stem)
    if m:
        return int(m.group(1))
    m = _TRAILING_NUMBER.search(stem)
    if m and "log" in stem.lower():
        return int(m.group(1))
    return None


def claimed_seeds(submission: dict[str, Any]) -> set[int]:
    """Seeds a submission.json names: `seeds` (a list, or a mapping seed -> figures) and the
    keys or `seed` fields of `seed_results`."""
    out: set[int] = set()
    for key in ("seeds", "seed_results"):
        block = submission.get(key)
        items: list[Any] = []
        if isinstance(block, dict):
            items = list(block)
        elif isinstance(block, list):
            items = [x.get("seed") if isinstance(x, dict) else x for x in block]
        for x in items:
            try:
                out.add(int(str(x).strip()))
            except (TypeError, ValueError):
                continue
    return out


def _candidate_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    stack = [(folder, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_dir():
                if depth + 1 < _MAX_DEPTH:
                    stack.append((p, depth + 1))
            elif p.is_file():
                out.append(p)
    return sorted(out)


def _is_log_name(p: Path) -> bool:
    return p.suffix == ".log" or (p.suffix == ".txt" and p.name != "requirements.txt")


def _load_submission(folder: Path) -> tuple[dict[str, Any], Path | None, str]:
    path = folder / "submission.json"
    if not path.is_file():
        others = sorted(folder.glob("submission*.json"))
        if not others:
            return {}, None, ""
        path = others[0]
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", str(path), e.lineno) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, found {type(data).__name__}", str(path), 1)
    return data, path, text


def _track(folder: Path, submission: dict[str, Any]) -> tuple[str | None, str]:
    for part in reversed(folder.resolve().parts[:-1]):
        if part in TRACKS:
            return part, "folder"
    declared = str(submission.get("track", "")).lower().replace("-", "_")
    if declared:
        if "non_record" in declared or "nonrecord" in declared:
            return "track_non_record_16mb", "submission.json"
        if "10min" in declared:
            return "track_10min_16mb", "submission.json"
    return None, "unknown"


def load_record(path: str | Path) -> Record:
    """Read a record folder. Raises `InputError` for a missing folder, no train logs, bad JSON."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("no such record folder" if not folder.exists() else "not a folder", str(folder))
    submission, sub_path, sub_text = _load_submission(folder)
    track, track_source = _track(folder, submission)
    record = Record(
        path=folder, track=track, track_source=track_source, submission=submission,
        submission_path=sub_path, submission_text=sub_text,
    )
    readme = folder / "README.md"
    if readme.is_file():
        record.readme = readme.read_bytes().decode("utf-8", errors="replace")
    claimed = claimed_seeds(submission)
    for p in _candidate_files(folder):
        rel = p.relative_to(folder).as_posix()
        if p.suffix in CODE_SUFFIXES:
            record.code_files[rel] = p.stat().st_size
            continue
        if not _is_log_name(p):
            record.other_files[rel] = "not a log (by its name)"
            continue
        run = parse_log(p)
        # A .txt is a train log only if it reads like one; a .log always counts, so a
        # garbage .log is reported rather than silently skipped.
        if p.suffix == ".txt" and not run.is_train_log():
            record.other_files[rel] = "text that does not read like a train log"
            continue
        fn_seed = seed_from_filename(p.name)
        if run.seed is not None and not (claimed and run.seed.value not in claimed and fn_seed in claimed):
            seed, source = run.seed.value, "log"
        elif fn_seed is not None:
            seed, source = fn_seed, "filename"
        else:
            seed, source = None, None
        record.logs.append(LogFile(p, str(folder / rel), run, seed, source, fn_seed))
    if not record.logs:
        raise InputError("no train logs (*.log, or *.txt train logs) in the record folder", str(folder))
    return record
