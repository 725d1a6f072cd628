"""Load a record folder (the files a PR adds) into a `Record`: an inventory of every entry with
its role, submission.json, README, code sizes, and the train logs mapped to seeds.

One notion of a record's files, shared by `pgolf check` and `pgolf gate`: `inventory()` gives
every entry of the folder a role (`ROLES`): the entry code, other code, submission.json, the
README, a train log, an extra/other file, a folder, a link, a non-regular file, a file too large
to read. What a track allows (which names are entry files, how deep logs may sit, whether missing
logs are an error) is data: the `files:` block of the track's rule set (`FilePolicy`).

Deliberately loose: upstream `submission.json` grew fields over time, so every field is optional
and unknown fields are kept as they are; checks that need a field say so when it is missing. A
plain folder holding only logs (and perhaps a submission.json) loads too — that is what the
reproduction step produces, and it runs the same checks on its own logs.

Hostile input (a stranger's pull request, read next to CI secrets):
- nothing is followed: the folder is listed with `audit.safe_read.scan` (links are entries of
  kind `link`, never entered or read) and every file is opened with `read_under` /
  `parse_log_file` (O_NOFOLLOW on every component). Each link, FIFO or device is a finding
  (`PG-INPUT-002`, `PG-INPUT-004`); no link target is ever read, so no host path reaches a report.
- every read is capped before it happens (`CAPS`): a file over its cap is a finding
  (`PG-INPUT-003`, REVIEW) and is not read; logs are streamed line by line (harness.logs.parse);
- submission.json is parsed with bounded size, nesting depth and number size: NaN, Infinity,
  1e999 and 5,000-digit integers are kept as text with a finding (`PG-INPUT-005`), deeper
  nesting than `JSON_MAX_DEPTH` is unusable input naming the line;
- code files are listed with their byte sizes (from `lstat`), never read, imported or executed.

Errors: a missing folder, a folder with no train logs, or a submission.json that is not valid
JSON raise `InputError` naming the file (and line, for JSON) — the CLI exits 2 on them.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from audit.safe_read import UnsafeRead, read_under, scan
from harness.errors import InputError
from harness.findings import Finding, Location, Severity
from audit.waivers import CODE_SUFFIXES  # one list of what counts as code (audit may not import harness)
from harness.logs import RunLog
from harness.logs.parse import MAX_LOG_BYTES, parse_log_file

TRACKS = ("track_10min_16mb", "track_non_record_16mb")
SUBMISSION_NAMES = ("submission.json", "submission*.json")  # at the top of the folder
README_NAMES = ("README.md", "readme.md", "Readme.md", "README.MD")
REQUIRED_ROLES = ("readme", "submission", "entry", "log")  # what a record folder must hold
ROLES = ("entry", "code", "submission", "readme", "log", "other", "folder",
         "link", "special", "too-large", "not-entered")
_FILENAME_SEED = re.compile(r"(?:seed|_s)[_-]?(\d+)(?!\d)", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class Caps:
    """What reading one record may cost. In every upstream pull request submission.json files are
    under 10 kB, READMEs under 50 kB and logs under 210 kB; each cap is about two orders of
    magnitude above that."""

    json_bytes: int = 1 << 20
    readme_bytes: int = 1 << 20
    log_bytes: int = MAX_LOG_BYTES
    all_logs_bytes: int = 64 << 20  # logs parsed per record, together
    scan_depth: int = 6  # folders below the record folder that are listed
    scan_entries: int = 20_000


CAPS = Caps()
JSON_MAX_DEPTH = 64
JSON_MAX_DIGITS = 64  # longer numbers are kept as text (Python refuses >4,300-digit ints anyway)


# -- findings made while reading -----------------------------------------------------------
@dataclass(frozen=True)
class FileRule:
    """A rule about the files of a record, with its id and one-line message; used by the
    loader here and by the gate's shape rules (harness.gate). Tests run its examples."""

    rule_id: str
    severity: Severity
    message: str
    hint: str = ""
    undecided: bool = False

    def finding(self, detail: str, path: str | None = None, line: int | None = None, **data: Any) -> Finding:
        if self.hint:
            data.setdefault("hint", self.hint)
        return Finding(self.rule_id, self.severity, f"{self.message}: {detail}" if detail else self.message,
                       condition="PARSE", location=Location(path, line) if path else None,
                       undecided=self.undecided, data=data)


LINK = FileRule("PG-INPUT-002", Severity.WARNING, "a symbolic link in the record is not followed",
                "replace the link with the file itself")
TOO_LARGE = FileRule("PG-INPUT-003", Severity.WARNING, "a file over its read cap is not read",
                     "a train log, README or submission.json this large is not one: ship the real file", undecided=True)
SPECIAL = FileRule("PG-INPUT-004", Severity.WARNING, "not a regular file (FIFO, socket or device): not read",
                   "remove it from the record")
ODD_NUMBER = FileRule("PG-INPUT-005", Severity.WARNING,
                      "submission.json holds a number JSON cannot carry (NaN, Infinity, or too many digits): kept as text",
                      "write the figure as a plain finite number")
BOUNDED_LOG = FileRule("PG-INPUT-006", Severity.NOTE, "a log is larger than the parser keeps: lines were cut or skipped")
NOT_ENTERED = FileRule("PG-INPUT-007", Severity.NOTE, "a folder too deep (or too many entries) is not read")
INPUT_RULES = (LINK, TOO_LARGE, SPECIAL, ODD_NUMBER, BOUNDED_LOG, NOT_ENTERED)


# -- what a track allows ---------------------------------------------------------------------
@dataclass(frozen=True)
class FilePolicy:
    """A track's freedoms over a record's files: the `files:` block of its rule set.

    entry: names (globs) of the entry script at the top of the folder; logs / not_logs: names of
    train logs and of files that never are (requirements.txt); log_depth: how many folder
    levels hold logs (1 = top only, 2 = also `logs/`); optional: the required roles (`readme`,
    `submission`, `entry`, `log`) whose absence is a warning on this track, not an error.
    """

    entry: tuple[str, ...] = ("train_gpt.py",)
    logs: tuple[str, ...] = ("*.log", "*.txt")
    not_logs: tuple[str, ...] = ("requirements*.txt",)
    log_depth: int = 3
    optional: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> "FilePolicy":
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise InputError("`files` must be a mapping", source)
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, v in doc.items():
            if key not in known:
                raise InputError(f"files: unknown setting {key!r}; known: {', '.join(known)}", source)
            default = getattr(cls(), key)
            if isinstance(default, tuple):
                if isinstance(v, str):
                    v = [v]
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise InputError(f"files.{key}: a list of names", source)
                v = tuple(v)
            elif isinstance(default, int) and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise InputError(f"files.{key}: a positive whole number", source)
            if key == "optional" and not set(v) <= set(REQUIRED_ROLES):
                raise InputError(f"files.optional: roles among {', '.join(REQUIRED_ROLES)}", source)
            values[key] = v
        return cls(**values)

    def is_entry(self, rel: str) -> bool:
        return "/" not in rel and any(fnmatch.fnmatchcase(rel, g) for g in self.entry)

    def is_log_name(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return (rel.count("/") < self.log_depth and any(fnmatch.fnmatchcase(name, g) for g in self.logs)
                and not any(fnmatch.fnmatchcase(name, g) for g in self.not_logs))


@functools.lru_cache(maxsize=None)
def file_policy(track: str | None) -> FilePolicy:
    """The `files:` block of the rule set for `track` (the strictest set when unknown)."""
    from harness.rulesets import load_ruleset, ruleset_for_track

    rs = load_ruleset(ruleset_for_track(track))
    return FilePolicy.from_dict(rs.extra.get("files"), rs.path)


# -- the inventory -------------------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    """One entry of a listing: path relative to the record (POSIX), kind (`file`, `dir`,
    `link`, `other`) and size. From `scan` of a folder, or from a git tree (harness.gate)."""

    rel: str
    kind: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    rel: str
    kind: str
    size: int
    role: str  # one of ROLES


def list_folder(folder: Path, caps: Caps = CAPS) -> list[Listed]:
    """Every entry under `folder`, links and all, never followed (`audit.safe_read.scan`)."""
    entries = [Listed(e.rel, e.kind, e.size)
               for e in scan(folder, max_depth=caps.scan_depth, max_entries=caps.scan_entries + 1, hidden=True)]
    return sorted(entries, key=lambda e: PurePosixPath(e.rel).parts)


def pick_submission(listing: Iterable[Listed]) -> str | None:
    """The submission file among the top-level entries: `submission.json`, else the first
    `submission*.json` (check and gate agree on which one it is)."""
    top = [e.rel for e in listing if "/" not in e.rel and e.kind in ("file", "link", "other")]
    for pattern in SUBMISSION_NAMES:
        hits = sorted(r for r in top if fnmatch.fnmatchcase(r, pattern))
        if hits:
            return hits[0]
    return None


_OTHER_REASONS = {
    "submission": "the claims", "readme": "the README", "link": "a symbolic link (not read)",
    "special": "not a regular file (not read)", "too-large": "over its read cap (not read)",
    "not-entered": "a folder too deep (not entered)",
}


def natural_role(e: Listed, policy: FilePolicy, submission: str | None, caps: Caps = CAPS) -> str:
    """The role an entry has before any content is read (a `.txt` log candidate is `log` until
    its content says it is not a train log)."""
    if e.kind == "dir":
        return "not-entered" if e.rel.count("/") + 1 >= caps.scan_depth else "folder"
    if e.kind in ("link", "submodule"):  # a reference to something else, never content
        return "link"
    if e.kind != "file":
        return "special"
    if e.rel == submission:
        return "submission"
    if e.rel in README_NAMES:
        return "readme"
    if e.rel.endswith(CODE_SUFFIXES):
        return "entry" if policy.is_entry(e.rel) else "code"
    if policy.is_log_name(e.rel) and not PurePosixPath(e.rel).name.startswith("."):
        return "log"
    return "other"


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
    inventory: list[FileEntry] = field(default_factory=list)  # every entry, with its role
    findings: list[Finding] = field(default_factory=list)  # what reading the files found
    policy: FilePolicy = field(default_factory=FilePolicy)

    @property
    def other_files(self) -> dict[str, str]:
        """Entries that are neither code nor train logs, with why (README.md, submission*.json,
        requirements.txt, a .txt that does not read like a train log, links and files not read):
        relative path -> reason. The check report accounts for every file from `logs` and this."""
        out: dict[str, str] = {}
        for e in self.inventory:
            if e.role in ("entry", "code", "log", "folder"):
                continue
            if e.role == "other":
                why = ("text that does not read like a train log" if self.policy.is_log_name(e.rel)
                       else "not a log (by its name)")
            else:
                why = _OTHER_REASONS.get(e.role, e.role)
            out[e.rel] = why
        return out

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

    def with_role(self, *roles: str) -> list[FileEntry]:
        return [e for e in self.inventory if e.role in roles]

    def submission_line(self, *keys: str) -> int | None:
        """The line of `"key":` in submission.json, for findings: its first occurrence, or with
        several keys (a path into nested objects: "seed_results", "42", "val_bpb") the last
        key's first occurrence after the one before it."""
        if not self.submission_text or not keys:
            return None
        at = 0
        for key in keys:
            m = re.compile(r'"' + re.escape(str(key)) + r'"\s*:').search(self.submission_text, at)
            if m is None:
                return None
            at = m.end()
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
                text = str(x).strip()
                if len(text) <= JSON_MAX_DIGITS:
                    out.add(int(text))
            except (TypeError, ValueError):
                continue
    return out


# -- submission.json -------------------------------------------------------------------------
# an unclosed string runs to the end of the text: without `\Z` every later quote would restart
# a scan to the end (quadratic: 80 kB of `\"` took 40 s)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_error(text: str) -> tuple[int, int] | None:
    """(depth, line) where `text` first nests deeper than `JSON_MAX_DEPTH`, else None. Strings
    are blanked first (same length, so offsets keep their lines), so brackets inside them do not
    count. Linear time: it runs before the parser, whose recursion a deep file would exhaust."""
    blanked = _JSON_STRING.sub(lambda m: '"' + " " * (len(m.group(0)) - 1), text)
    depth = 0
    for m in _JSON_BRACKET.finditer(blanked):
        depth += 1 if m.group(0) in "[{" else -1
        if depth > JSON_MAX_DEPTH:
            return depth, blanked.count("\n", 0, m.start()) + 1
    return None


def load_json_bounded(raw: bytes, path: str) -> tuple[Any, list[Finding]]:
    """Parse submitted JSON with bounded depth and number size.

    Raises `InputError` (file and line) for invalid JSON or nesting deeper than
    `JSON_MAX_DEPTH`. NaN, Infinity, numbers that overflow a float and integers longer than
    `JSON_MAX_DIGITS` digits are kept as their text, each with a `PG-INPUT-005` finding, so no
    report ever carries a non-finite number and no parse costs quadratic time.
    """
    text = raw.decode("utf-8", errors="replace")
    deep = json_depth_error(text)
    if deep is not None:
        raise InputError(f"JSON nested deeper than {JSON_MAX_DEPTH} levels", path, deep[1])
    odd: list[str] = []

    def keep(token: str) -> str:
        odd.append(token)
        return token

    def parse_int(token: str) -> int | str:
        return keep(token) if len(token.lstrip("-")) > JSON_MAX_DIGITS else int(token)

    def parse_float(token: str) -> float | str:
        if len(token) > JSON_MAX_DIGITS * 2:
            return keep(token)
        value = float(token)
        return value if math.isfinite(value) else keep(token)

    try:
        data = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=keep)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    except (ValueError, RecursionError) as e:  # belt and braces: the checks above should prevent these
        raise InputError(f"invalid JSON: {type(e).__name__}", path) from None
    findings = []
    for token in odd[:20]:
        at = text.find(token)
        line = text.count("\n", 0, at) + 1 if at >= 0 else None
        shown = token if len(token) <= 24 else f"{token[:12]}…({len(token)} characters)"
        findings.append(ODD_NUMBER.finding(shown, path, line))
    return data, findings


def too_large(what: str, size: int | None, cap: int, shown: str, suffix: str = "") -> Finding:
    """PG-INPUT-003 for `what` of `size` bytes over `cap`: not read (REVIEW)."""
    sized = f"{size:,} bytes" if size is not None else "more bytes"
    return TOO_LARGE.finding(f"{what} has {sized}, over the {cap:,}-byte cap{suffix}", shown, size=size, cap=cap)


def _read_refused(e: UnsafeRead, shown: str, what: str, cap: int) -> Finding:
    if e.reason == "link":
        return LINK.finding(f"{what} (not read)", shown)
    if e.reason == "too-large":
        return too_large(what, e.size, cap, shown)
    if e.reason == "not-regular":
        return SPECIAL.finding(what, shown)
    return TOO_LARGE.finding(f"{what} could not be read ({e.reason})", shown)


def _read_submission(folder: Path, rel: str | None, size: int, caps: Caps, out: list[Finding]) -> tuple[dict[str, Any], Path | None, str]:
    if rel is None:
        return {}, None, ""
    path = folder / rel
    if size > caps.json_bytes:  # refused from the listing, before opening
        out.append(too_large("submission.json", size, caps.json_bytes, str(path)))
        return {}, None, ""
    try:
        raw = read_under(folder, rel, caps.json_bytes)
    except UnsafeRead as e:
        out.append(_read_refused(e, str(path), "submission.json", caps.json_bytes))
        return {}, None, ""
    data, found = load_json_bounded(raw, str(path))
    out.extend(found)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, found {type(data).__name__}", str(path), 1)
    return data, path, raw.decode("utf-8", errors="replace")


def load_submission(folder: str | Path) -> tuple[dict[str, Any], Path | None, str]:
    """(data, path, text) of the submission.json the loader would pick in `folder`, read the
    same hostile-safe way (no link, capped, bounded JSON); ({}, None, "") when there is none or
    it is refused. Raises `InputError` for invalid JSON, as `load_record` does."""
    folder = Path(folder)
    top = [Listed(e.rel, e.kind, e.size) for e in scan(folder, max_depth=1, hidden=True)]
    return _listed_submission(folder, top, CAPS, [])[1:]


def _listed_submission(folder: Path, listing: list[Listed], caps: Caps,
                       out: list[Finding]) -> tuple[str | None, dict[str, Any], Path | None, str]:
    """(relative path, data, path, text) of the submission file `pick_submission` finds in
    `listing`, read only when it is a regular file (capped, bounded JSON; refusals go to `out`)."""
    rel = pick_submission(listing)
    entry = next((e for e in listing if e.rel == rel), None)
    return (rel, *_read_submission(folder, rel if entry and entry.kind == "file" else None,
                                   entry.size if entry else 0, caps, out))


def _track(folder: Path, submission: dict[str, Any]) -> tuple[str | None, str]:
    for part in reversed(Path(os.path.abspath(folder)).parts[:-1]):
        if part in TRACKS:
            return part, "folder"
    declared = str(submission.get("track", ""))[:200].lower().replace("-", "_")
    if declared:
        if "non_record" in declared or "nonrecord" in declared:
            return "track_non_record_16mb", "submission.json"
        if "10min" in declared:
            return "track_10min_16mb", "submission.json"
    return None, "unknown"


def load_record(path: str | Path, listing: list[Listed] | None = None, policy: FilePolicy | None = None,
                caps: Caps = CAPS) -> Record:
    """Read a record folder. Raises `InputError` for a missing folder, no train logs, bad JSON.

    `listing` replaces the folder's own listing (the gate lists a git tree and extracts only the
    regular files it may read; links and oversized files in the listing are reported as such).
    `policy` replaces the track's `files:` block.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("no such record folder" if not folder.exists() else "not a folder", str(folder))
    found: list[Finding] = []
    listing = list_folder(folder, caps) if listing is None else sorted(listing, key=lambda e: PurePosixPath(e.rel).parts)
    if len(listing) > caps.scan_entries:
        listing = listing[:caps.scan_entries]
        found.append(NOT_ENTERED.finding(f"only the first {caps.scan_entries:,} entries are read", str(folder)))
    sub_rel, submission, sub_path, sub_text = _listed_submission(folder, listing, caps, found)
    track, track_source = _track(folder, submission)
    policy = policy or file_policy(track)
    record = Record(path=folder, track=track, track_source=track_source, submission=submission,
                    submission_path=sub_path, submission_text=sub_text, policy=policy)
    claimed = claimed_seeds(submission)
    log_budget = caps.all_logs_bytes
    for e in listing:
        role = natural_role(e, policy, sub_rel, caps)
        shown = str(folder / e.rel)
        if role == "link":
            found.append(LINK.finding(f"{e.rel} (not read)", shown))
        elif role == "special":
            found.append(SPECIAL.finding(e.rel, shown))
        elif role == "not-entered":
            found.append(NOT_ENTERED.finding(f"{e.rel}/ is {caps.scan_depth} levels down", shown))
        elif role == "submission" and sub_path is None:
            role = "too-large"  # refused above, with its finding
        elif role == "readme" and e.size > caps.readme_bytes:
            found.append(too_large(e.rel, e.size, caps.readme_bytes, shown))
            role = "too-large"
        elif role == "readme":
            try:
                record.readme = read_under(folder, e.rel, caps.readme_bytes).decode("utf-8", errors="replace")
            except UnsafeRead as err:
                found.append(_read_refused(err, shown, e.rel, caps.readme_bytes))
                role = "too-large"
        elif role in ("entry", "code"):
            record.code_files[e.rel] = e.size  # measured from the listing, never read
        elif role == "log":
            role = _load_log(record, folder, e, claimed, min(caps.log_bytes, max(log_budget, 0)), found)
            if role in ("log", "other"):  # parsed in full, train log or not: it cost the read
                log_budget -= e.size
        record.inventory.append(FileEntry(e.rel, e.kind, e.size, role))
    record.findings = found
    if not record.logs:
        raise NoTrainLogs(record, str(folder))
    return record


class NoTrainLogs(InputError):
    """A record with no train log that could be read. It carries the record as far as it was
    loaded (inventory and findings), so a caller that goes on (the gate) keeps the findings that
    say why: a log over its read cap, a link not followed."""

    def __init__(self, record: Record, path: str):
        self.record = record
        links = [e.rel for e in record.inventory if e.role == "link"]
        refused = [f"{e.rel} ({e.role})" for e in record.inventory if e.role in ("too-large", "special")]
        parts = ([f"{len(links)} link(s) not followed: {', '.join(links[:3])}"] if links else []) + \
                ([f"not read: {', '.join(refused[:3])}{' …' if len(refused) > 3 else ''}"] if refused else [])
        extra = f" ({'; '.join(parts)})" if parts else ""
        super().__init__(f"no train logs (*.log, or *.txt train logs) in the record folder{extra}", path)


def _load_log(record: Record, folder: Path, e: Listed, claimed: set[int], cap: int, found: list[Finding]) -> str:
    """Parse one log candidate into `record.logs`; its role (`log`, `other` for a .txt that is no
    train log, `too-large`)."""
    shown = str(folder / e.rel)
    if e.size > cap:  # refused from the listing, before opening
        found.append(too_large(e.rel, e.size, cap, shown))
        return "too-large"
    try:
        run = parse_log_file(folder, e.rel, cap)
    except UnsafeRead as err:
        found.append(_read_refused(err, shown, e.rel, cap))
        return "too-large" if err.reason == "too-large" else "special"
    # A .txt is a train log only if it reads like one; a .log always counts, so a
    # garbage .log is reported rather than silently skipped.
    if not e.rel.endswith(".log") and not run.is_train_log():
        return "other"
    if run.long_lines or run.dropped_lines:
        found.append(BOUNDED_LOG.finding(f"{e.rel}: {run.long_lines} line(s) cut, {run.dropped_lines} not kept",
                                         shown, long_lines=run.long_lines, dropped_lines=run.dropped_lines))
    name = PurePosixPath(e.rel).name
    fn_seed = seed_from_filename(name)
    if run.seed is not None and not (claimed and run.seed.value not in claimed and fn_seed in claimed):
        seed, source = run.seed.value, "log"
    elif fn_seed is not None:
        seed, source = fn_seed, "filename"
    else:
        seed, source = None, None
    record.logs.append(LogFile(folder / e.rel, shown, run, seed, source, fn_seed))
    return "log"


def inventory(folder: str | Path, policy: FilePolicy | None = None) -> list[FileEntry]:
    """Every entry of a record folder with its role, without reading any file's content (a
    `.txt` log candidate is `log`). For the roles after reading, use `load_record(...).inventory`."""
    folder = Path(folder)
    listing = list_folder(folder)
    sub = pick_submission(listing)
    policy = policy or file_policy(_track(folder, {})[0])
    return [FileEntry(e.rel, e.kind, e.size, natural_role(e, policy, sub)) for e in listing]
