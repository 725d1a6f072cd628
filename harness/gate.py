"""The CI gate for an incoming record pull request.

What a PR may change is itself a rule (rules.md, "Record submissions"): it adds exactly one new
folder under one `records/track_*` folder, named `YYYY-MM-DD_Description`, holding README.md,
submission.json, the entry script and its train logs (what a track allows is the `files:` block
of its rule set: harness.records.FilePolicy). The gate finds the new folders from the git diff,
checks the shape of the change, then runs the same `check` rules and the static `audit` on every
new folder, and rolls everything into one report whose markdown is the PR comment.

The PR is hostile input read next to CI secrets, so the gate cannot be walked around:
- git output is NUL-separated (`-z`), pathspecs literal, no external diff or textconv: a name
  with a newline, quotes or non-ASCII (`…_Évil`, `…_Müon`) is the name it is;
- a folder is new when the base does not have it: editing a merged record is not a new record;
- everything the PR changes, adds or deletes outside its one new folder FAILs (PG-GATE-004),
  unless a reviewer-owned allow-list permits the path (`--allow FILE` outside the checkout, or
  `--allow-from-base PATH`, read from the base commit: the PR cannot edit it);
- the record is read from the head commit with git (`git ls-tree`, `git cat-file`), never from
  the working tree, so `--head REF` works with any branch checked out; only regular files are
  extracted, each under a cap, into a private snapshot that check and audit read. A symbolic
  link (mode 120000) or submodule is never extracted nor its target read: it is a finding
  (PG-GATE-006, a record may not contain links);
- the PR's code is parsed, never run or imported, and the audit runs in a forked worker under a
  memory limit and a deadline (`AuditLimits`): a parser crash is a finding, not a lost report.
A PR that adds no record gets a neutral exit 0 and one line: "no record added: nothing to gate".
"""
from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from harness.errors import InputError
from harness.findings import EvidenceStep, Finding, Location, Severity
from harness.records import (CAPS, REQUIRED_ROLES, TRACKS, FilePolicy, FileRule, Listed, NoTrainLogs, Record,
                             file_policy, list_folder, load_record, natural_role, pick_submission, too_large)

FOLDER_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\S.*$")
NOTHING_TO_GATE = "no record added: nothing to gate"


def _rule(number: int, message: str, hint: str = "") -> FileRule:
    """A shape rule of the gate: always an error (a PR of the wrong shape is not mergeable)."""
    return FileRule(f"PG-GATE-{number:03d}", Severity.ERROR, message, hint)


ONE_FOLDER = _rule(1, "a record PR adds exactly one new folder under one records/track_* folder",
                   "split the PR: one pull request per record folder")
FOLDER_NAME = _rule(2, "the record folder is named YYYY-MM-DD_Description",
                    "rename the folder, e.g. 2026-05-01_ShortDescription")
REQUIRED = _rule(3, "the record folder holds README.md, submission.json, the entry script and its train logs",
                 "add the missing files to the record folder")
OUTSIDE = _rule(4, "the PR changes files outside its record folder")  # the fix depends on the change
UNREADABLE = _rule(5, "the record's files could not be checked", "fix the file named, then push again")
LINKS = _rule(6, "a record may not contain symbolic links or submodules", "replace each link with the file it points to")
TRACK = _rule(7, "the record folder is under a track that does not exist",
              "move the folder under " + " or ".join(f"records/{t}" for t in TRACKS))
GATE_RULES = (ONE_FOLDER, FOLDER_NAME, REQUIRED, OUTSIDE, UNREADABLE, LINKS, TRACK)
LINK_WARNING = "PG-INPUT-002"

STATUS_WORDS = {"A": "added", "M": "changed", "D": "deleted", "T": "changed type", "C": "copied", "R": "renamed",
                "U": "unmerged", "X": "unknown"}


@dataclass(frozen=True)
class ExtractCaps:
    """What the gate copies out of a PR into its snapshot: per-file caps by role (a file over
    its cap is listed and reported, not extracted) and a total."""

    code: int = 16_000_000  # a code file larger than the whole artifact cap is not code to audit
    other: int = 16 << 20
    total: int = 512 << 20


EXTRACT = ExtractCaps()


# -- git --------------------------------------------------------------------------------------
def _git(repo: Path, *args: str, stdout: Any = subprocess.PIPE) -> bytes:
    """Run git on `repo` with literal pathspecs, no pager, no external diff or textconv helpers
    configured by anyone; raises InputError naming the command on failure."""
    env = dict(os.environ, GIT_LITERAL_PATHSPECS="1", GIT_NO_REPLACE_OBJECTS="1", GIT_TERMINAL_PROMPT="0",
               GIT_PAGER="cat", LC_ALL="C")
    cmd = ["git", "-C", str(repo), "-c", "core.quotePath=false", "-c", "diff.external=", *args]
    try:
        done = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, check=False)
    except FileNotFoundError:
        raise InputError("git is not installed") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"git {' '.join(args[:3])} failed: {err[-1] if err else done.returncode}", path=str(repo))
    return done.stdout if stdout is subprocess.PIPE else b""


def _split_z(out: bytes) -> list[str]:
    return [os.fsdecode(x) for x in out.split(b"\0") if x]


def changed_files(repo: Path, base: str, head: str = "HEAD") -> list[tuple[str, str]]:
    """(status, path) of every file the PR changes: `git diff -z --name-status base...head`
    (status A added, M changed, D deleted, T type changed; renames are split into D + A)."""
    out = _git(repo, "diff", "-z", "--name-status", "--no-renames", "--no-ext-diff", "--no-textconv",
               f"{base}...{head}", "--")
    parts = _split_z(out)
    return [(parts[i][:1], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]


def _ls_tree(repo: Path, ref: str, *args: str) -> list[tuple[str, str, str, int | None, str]]:
    """(mode, type, object id, size, path) rows of `git ls-tree -l -z --full-tree ref ARGS`."""
    rows = []
    for item in _git(repo, "ls-tree", "-l", "-z", "--full-tree", ref, *args).split(b"\0"):
        if item:
            meta, _, raw_path = item.partition(b"\t")
            mode, kind, oid, size = meta.decode("ascii", "replace").split()
            rows.append((mode, kind, oid, int(size) if size.isdigit() else None, os.fsdecode(raw_path)))
    return rows


def tree_entries(repo: Path, ref: str, folder: str) -> list[tuple[str, str, str, int | None, str]]:
    """(mode, type, object id, size, path relative to `folder`) of everything under `folder` in
    the commit `ref` (`git ls-tree -r -t`), never the working tree."""
    return [(mode, kind, oid, size, path[len(folder) + 1:])
            for mode, kind, oid, size, path in _ls_tree(repo, ref, "-r", "-t", "--", folder + "/")
            if path.startswith(folder + "/")]


def existing_folders(repo: Path, ref: str, folders: Iterable[str]) -> set[str]:
    """Which of `folders` (repo-relative) exist in `ref`'s tree."""
    have: set[str] = set()
    by_parent: dict[str, list[str]] = {}
    for f in folders:
        by_parent.setdefault(f.rsplit("/", 1)[0], []).append(f)
    for parent, wanted in by_parent.items():
        names = {row[4] for row in _ls_tree(repo, ref, "--", parent + "/")}
        have.update(f for f in wanted if f in names)
    return have


def read_base_file(repo: Path, base: str, path: str, cap: int = 64 << 10) -> str:
    """A regular file of the base commit (the reviewer's side), e.g. the allow-list."""
    rows = [r for r in _ls_tree(repo, base, "--", path) if r[4] == path]
    if not rows or rows[0][1] != "blob" or rows[0][0] == "120000":
        raise InputError(f"not a regular file in {base}", path=path)
    if (rows[0][3] or 0) > cap:
        raise InputError(f"over the {cap}-byte cap", path=path)
    return _git(repo, "cat-file", "blob", rows[0][2]).decode("utf-8", "replace")


# -- the allow-list -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AllowList:
    """Paths outside the record folder that a reviewer lets a PR touch (glob patterns, one per
    line, `#` comments). Owned by the reviewer: passed by option, never read from the PR."""

    patterns: tuple[str, ...] = ()
    source: str = ""

    @classmethod
    def parse(cls, text: str, source: str) -> "AllowList":
        pats = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
        return cls(pats, source)

    def permits(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, p) or path.startswith(p.rstrip("/") + "/") for p in self.patterns)


def load_allow_list(path: Path | None = None, repo: Path | None = None, base: str | None = None,
                    from_base: str | None = None) -> AllowList:
    """The allow-list from a file outside the PR's checkout (`path`) or from the base commit
    (`from_base`). A `path` inside `repo` is refused: the PR could have written it."""
    if path is not None:
        from audit.safe_read import UnsafeRead, read_capped

        if repo is not None:
            real, top = os.path.realpath(path), os.path.realpath(repo)
            if real == top or real.startswith(top + os.sep):
                raise InputError("the allow-list is inside the PR's checkout, which the PR controls; keep it "
                                 "outside the repository or use --allow-from-base PATH", path=str(path))
        try:
            text = read_capped(path, 64 << 10).decode("utf-8", "replace")
        except UnsafeRead as e:
            raise InputError(f"allow-list not read: {e.reason}", path=str(path)) from None
        return AllowList.parse(text, str(path))
    if from_base is not None:
        if repo is None or base is None:
            raise InputError("--allow-from-base needs --repo and --base")
        return AllowList.parse(read_base_file(repo, base, from_base), f"{base}:{from_base}")
    return AllowList()


# -- the shape of the change -------------------------------------------------------------------
@dataclass
class Shape:
    """What the diff says: the new record folders, the shape findings, and every change."""

    folders: list[str]
    findings: list[Finding]
    changes: list[tuple[str, str]]
    outside: list[tuple[str, str]]

    @property
    def nothing_to_gate(self) -> bool:
        return not self.folders


def _record_folder(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[0] == "records" and parts[1].startswith("track_"):
        return "/".join(parts[:3])
    return None


def _outside_hint(outside: list[tuple[str, str]], folders: list[str]) -> str:
    paths = [p for _, p in outside]
    if len(paths) == 1:
        status, p = outside[0]
        verb = {"A": "remove", "D": "restore", "M": "drop the change to"}.get(status, "drop the change to")
        return f"{verb} {p} in this PR (or ask a reviewer to allow it)"
    other_records = sorted({f for p in paths if (f := _record_folder(p)) and f not in folders})
    if other_records:
        return "split the PR: changes to other records go in their own PR"
    return "split the PR: only the record folder belongs in a record PR (or ask a reviewer to allow the paths)"


def shape_of(changes: list[tuple[str, str]], existing: set[str] | None = None,
             allow: AllowList | None = None) -> Shape:
    """The new record folders (folders under records/track_* that the base lacks: `existing`
    holds those it has; None means only additions count) and the shape findings."""
    allow = allow or AllowList()
    touched: dict[str, set[str]] = {}
    for status, path in changes:
        folder = _record_folder(path)
        if folder is not None:
            touched.setdefault(folder, set()).add(status)
    if existing is None:
        existing = {f for f, statuses in touched.items() if statuses != {"A"}}
    new = sorted(f for f in touched if f not in existing)
    findings: list[Finding] = []
    outside = [(s, p) for s, p in changes if _record_folder(p) not in new]
    if len(new) > 1:
        findings.append(ONE_FOLDER.finding(f"found {len(new)}: " + ", ".join(new)))
    for folder in new:
        track, name = folder.split("/")[1:3]
        if track not in TRACKS:
            findings.append(TRACK.finding(f"{track!r}", folder))
        if not FOLDER_RE.match(name):
            findings.append(FOLDER_NAME.finding(f"{name!r}", folder))
    blocked = [(s, p) for s, p in outside if not allow.permits(p)]
    if new and blocked:
        hint = _outside_hint(blocked, new)  # one hint for the whole PR (it reads every path)
        for status, path in blocked:
            findings.append(OUTSIDE.finding(f"{path} ({STATUS_WORDS.get(status, status)})", path,
                                            hint=hint, status=STATUS_WORDS.get(status, status)))
    return Shape(new, findings, changes, outside)


# -- reading the record out of git (or a folder) -----------------------------------------------
@dataclass
class Snapshot:
    """A record folder copied, regular files only and each under its cap, into a private
    temporary tree `root/records/<track>/<name>` that check and audit read; `listing` is the
    folder as it really is (links and oversized files included), `findings` what was refused,
    `track` the track the folder is under (from its repository or absolute path)."""

    root: Path
    folder: Path
    listing: list[Listed]
    findings: list[Finding]
    track: str | None = None


def _cap_for(role: str, caps: ExtractCaps) -> int:
    return {"submission": CAPS.json_bytes, "readme": CAPS.readme_bytes, "log": CAPS.log_bytes,
            "entry": caps.code, "code": caps.code}.get(role, caps.other)


def _snapshot_dir(tmp: Path, track: str | None, name: str) -> Path:
    """`tmp/records/<track>/<name>`: the track stays in the path, where the loader looks for it."""
    folder = tmp / "records" / track / (name or "record") if track else tmp / "records" / (name or "record")
    folder.mkdir(parents=True)
    return folder


def _refusals(listing: list[Listed], shown_as: str, extracted: set[str], caps: ExtractCaps,
              policy: FilePolicy, sub: str | None) -> list[Finding]:
    out = []
    links = [e.rel for e in listing if e.kind in ("link", "submodule")]
    if links:
        out.append(LINKS.finding(", ".join(links[:10]) + (f" and {len(links) - 10} more" if len(links) > 10 else ""),
                                 f"{shown_as}/{links[0]}", paths=links[:100]))
    for e in listing:
        if e.kind == "file" and e.rel not in extracted:
            role = natural_role(e, policy, sub)
            if role in ("entry", "code"):  # read logs/README/JSON are refused (and reported) by load_record
                out.append(too_large(e.rel, e.size, _cap_for(role, caps), f"{shown_as}/{e.rel}", ": not audited"))
    return out


def _track_of(shown_as: str) -> str | None:
    return next((p for p in PurePosixPath(shown_as).parts if p in TRACKS), None)


def _extract(listing: list[Listed], dest: Path, policy: FilePolicy, sub: str | None, caps: ExtractCaps,
             read: Callable[[str, int], bytes | None]) -> set[str]:
    """Copy the listing's regular files into `dest`: each read with `read(rel, cap)` (None when
    refused: over its cap, a link, gone), the cap being its role's and never more than what is
    left of `caps.total`; folders are made as they are listed. Returns the paths extracted."""
    budget, extracted = caps.total, set()
    for e in listing:
        if ".." in PurePosixPath(e.rel).parts or e.rel.startswith("/"):
            continue
        if e.kind == "dir":
            (dest / e.rel).mkdir(parents=True, exist_ok=True)
            continue
        if e.kind != "file":
            continue
        cap = min(_cap_for(natural_role(e, policy, sub), caps), budget)
        data = read(e.rel, cap)
        if data is None or len(data) > cap:
            continue  # reported from the listing
        (dest / e.rel).parent.mkdir(parents=True, exist_ok=True)
        with open(dest / e.rel, "xb") as fh:
            fh.write(data)
        budget -= len(data)
        extracted.add(e.rel)
    return extracted


def _snapshot(tmp: Path, where: str, shown_as: str, listing: list[Listed],
              read: Callable[[str, int], bytes | None], caps: ExtractCaps) -> Snapshot:
    """The snapshot of a record folder at `where` (its repository path, or its absolute path:
    the track is read from it) listed as `listing`, its files read with `read`."""
    track = _track_of(where)
    dest = _snapshot_dir(tmp, track, PurePosixPath(where).name)
    sub, policy = pick_submission(listing), file_policy(track)
    extracted = _extract(listing, dest, policy, sub, caps, read)
    return Snapshot(tmp, dest, listing, _refusals(listing, shown_as, extracted, caps, policy, sub), track)


def snapshot_from_git(repo: Path, ref: str, folder: str, tmp: Path, caps: ExtractCaps = EXTRACT) -> Snapshot:
    """Extract `folder` of commit `ref` (regular blobs only, each under its cap) into `tmp`."""
    listing: list[Listed] = []
    blobs: dict[str, str] = {}
    for mode, kind, oid, size, rel in tree_entries(repo, ref, folder):
        if kind == "tree":
            listing.append(Listed(rel, "dir", 0))
        elif mode == "120000":
            listing.append(Listed(rel, "link", size or 0))  # its blob is the target path: never read
        elif kind == "commit":
            listing.append(Listed(rel, "submodule", 0))
        else:
            listing.append(Listed(rel, "file", size or 0))
            if size is not None:  # no size: the repository lists the blob but does not hold it
                blobs[rel] = oid
    sizes = {e.rel: e.size for e in listing}

    def read(rel: str, cap: int) -> bytes | None:
        return _git(repo, "cat-file", "blob", blobs[rel]) if rel in blobs and sizes[rel] <= cap else None

    return _snapshot(tmp, folder, folder, listing, read, caps)


def snapshot_from_folder(folder: Path, tmp: Path, caps: ExtractCaps = EXTRACT) -> Snapshot:
    """Copy a record folder's regular files (each under its cap, never through a link) to `tmp`."""
    from audit.safe_read import UnsafeRead, read_under

    def read(rel: str, cap: int) -> bytes | None:
        try:
            return read_under(folder, rel, cap)
        except UnsafeRead:
            return None

    return _snapshot(tmp, os.path.abspath(folder), str(folder), list_folder(folder), read, caps)


# -- one record ---------------------------------------------------------------------------------
def required_files_findings(record_or_listing: Any, shown_as: str, track: str | None = None) -> list[Finding]:
    """PG-GATE-003 from the record's inventory (harness.records: the roles `pgolf check` uses):
    README, submission.json, an entry script of the track's names, and train logs. A role the
    track's `files.optional` lists is a warning when missing (the non-record track: logs and
    submission.json), any other an error."""
    if isinstance(record_or_listing, Record):
        policy = record_or_listing.policy
        roles = {e.role for e in record_or_listing.inventory}
        if not record_or_listing.logs:
            roles.discard("log")
    else:
        listing = list(record_or_listing)
        policy = file_policy(track)
        sub = pick_submission(listing)
        roles = {natural_role(e, policy, sub) for e in listing} - {"log"}  # the loader found none it could read
    names = {"readme": "README.md", "submission": "submission.json",
             "entry": f"the entry script ({', '.join(policy.entry)})", "log": "train logs (*.log, or *.txt train logs)"}
    out = []
    for severity in (Severity.ERROR, Severity.WARNING):
        missing = [r for r in REQUIRED_ROLES if r not in roles and (r in policy.optional) == (severity is Severity.WARNING)]
        if missing:
            f = REQUIRED.finding("missing " + ", ".join(names[r] for r in missing), shown_as, missing=missing)
            out.append(replace(f, severity=severity))
    return out


def gate_snapshot(snap: Snapshot, shown_as: str, shape: list[Finding] | None = None, against=None):
    """One report for a record: shape findings, refusals, required files, then `check` and
    `audit` of the snapshot as children, every path rewritten from the snapshot to `shown_as`."""
    from harness.report import Report

    findings = list(shape or []) + list(snap.findings)
    children = []
    record = None
    partial = None
    try:
        record = load_record(snap.folder, listing=snap.listing)
    except NoTrainLogs as e:  # PG-GATE-003 says logs are missing; the loader's findings say why
        partial = e.record
    except InputError as e:
        findings.append(UNREADABLE.finding(e.bare_message, e.path or str(snap.folder), e.line))
    except Exception as e:  # a hostile file must never cost the report: say what failed
        findings.append(UNREADABLE.finding(f"reading the record failed ({type(e).__name__})", str(snap.folder)))
    loaded = record or partial
    if loaded is not None:  # the gate's PG-GATE-006 (an error) replaces the loader's warning for each link
        loaded.findings = [f for f in loaded.findings if f.rule_id != LINK_WARNING]
    if partial is not None:
        findings += partial.findings
    findings += required_files_findings(loaded or snap.listing, str(snap.folder), snap.track)
    if record is not None:
        try:
            from harness.checks import check_record

            children.append(check_record(record, None, against))
        except InputError as e:
            findings.append(UNREADABLE.finding(e.bare_message, e.path or str(snap.folder), e.line))
        except Exception as e:
            findings.append(UNREADABLE.finding(f"the checks failed ({type(e).__name__})", str(snap.folder)))
    audit_report = audit_folder_report(snap.folder, snap.listing)
    if audit_report is not None:
        children.append(audit_report)
    report = Report(kind="record", subject=str(snap.folder), findings=findings, children=children,
                    data={"record": str(snap.folder), "track": snap.track,
                          "files": {e.rel: e.role for e in (record.inventory if record else [])}})
    return relocate(report, str(snap.folder), shown_as)


@dataclass(frozen=True)
class AuditLimits:
    """The audit of a PR's code runs in a forked worker with these limits, so that nothing the
    code does to the parser (a native-parser crash on deep nesting, a decompression bomb, a
    pathological file) can take the gate down: a dead, over-limit or late worker is a finding."""

    memory_bytes: int = 2 << 30
    seconds: float = 600.0


AUDIT_LIMITS = AuditLimits()


def audit_folder_report(folder: Path, listing: list[Listed] | None = None, limits: AuditLimits = AUDIT_LIMITS):
    """The static audit of the folder's Python code as a Report, or None when it has none. Only
    files the snapshot holds are audited, in a worker process (`AuditLimits`); a crash, a
    timeout or an exception of the audit becomes a PG-GATE-005 finding (REVIEW by hand)."""
    if not any(folder.glob("*.py")) and not any(
            e.rel.endswith(".py") for e in (listing or []) if e.kind == "file"):
        return None
    outcome = _in_worker(_audit_worker, str(folder), limits)
    if isinstance(outcome, str):
        from harness.report import Report

        f = UNREADABLE.finding(f"the audit of the code did not finish ({outcome}): review the code by hand",
                               str(folder), hint="split very deep or very large code; report it to the pgolf maintainers")
        return Report("audit", str(folder), [replace(f, undecided=True)], {"files": 0})
    return outcome


def _audit_worker(folder: str):
    from harness.commands.audit import build_report

    try:
        return build_report(Path(folder))
    except InputError:
        return None  # no Python file was extracted (each refusal is reported already)


def _in_worker(fn, arg: str, limits: AuditLimits):
    """`fn(arg)` in a forked child under an address-space limit and a deadline: its result, or a
    string saying how it ended (a signal, an exception, over time)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    # not a daemon: the audit forks a worker per file itself (audit.static.isolate), which a
    # daemonic process may not do; the `finally` below kills and reaps it whatever happens
    child = ctx.Process(target=_worker_main, args=(fn, arg, limits.memory_bytes, send), daemon=False)
    child.start()
    send.close()
    try:
        if not receive.poll(limits.seconds):
            return f"over {limits.seconds:.0f} s"
        try:
            _, value = receive.recv()  # a failure comes back as the string saying how it ended
        except (EOFError, OSError):
            child.join(5)
            code = child.exitcode
            return f"the worker died: signal {-code}" if code is not None and code < 0 else f"the worker died: exit {code}"
        return value
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(5)


def _worker_main(fn, arg: str, memory_bytes: int, send) -> None:
    import resource

    try:
        # the allowance is for the audit's own work, on top of what the forked process already
        # maps (a parent that imported torch maps gigabytes it will never touch)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = _mapped_bytes() + memory_bytes
        cap = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft == resource.RLIM_INFINITY or soft > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        pass
    try:
        result = (True, fn(arg))
    except MemoryError:
        result = (False, "over the memory limit")
    except Exception as e:  # noqa: BLE001 - said in the report, never a traceback
        result = (False, f"{type(e).__name__} in the audit")
    send.send(result)
    send.close()


def _mapped_bytes() -> int:
    """This process's virtual size (VmSize), 0 where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def gate_folder(folder: Path, shape: list[Finding] | None = None, shown_as: str | None = None, against=None):
    """Gate a record folder on disk (no git): snapshot it, then `gate_snapshot`."""
    shown_as = shown_as or str(folder)
    with tempfile.TemporaryDirectory(prefix="pgolf-gate-") as tmp:
        return finish([gate_snapshot(snapshot_from_folder(folder, Path(tmp)), shown_as, shape, against)],
                      [], shown_as)


def gate_repo(repo: Path, base: str, head: str = "HEAD", allow: AllowList | None = None, against=None):
    """Gate the PR `base...head` of a git repository: its shape, then every new record folder
    read from `head`'s tree. Returns the gate Report (see `finish`)."""
    from harness.report import Report

    changes = changed_files(repo, base, head)
    candidates = {f for _, p in changes if (f := _record_folder(p))}
    existing = existing_folders(repo, base, candidates)
    shape = shape_of(changes, existing, allow)
    data = {"base": base, "head": head, "changes": _count(changes), "allow_list": (allow.source if allow else "") or None}
    if shape.nothing_to_gate:
        return Report(kind="gate", subject=str(repo), findings=[],
                      data={**data, "records": [], "nothing_to_gate": True, "summary": _nothing_line(changes)})
    parts = []
    per_folder = {f: [x for x in shape.findings if x.location is not None and x.location.path == f] for f in shape.folders}
    with tempfile.TemporaryDirectory(prefix="pgolf-gate-") as tmp:
        for i, folder in enumerate(shape.folders):
            snap = snapshot_from_git(repo, head, folder, Path(tmp) / str(i))
            parts.append(gate_snapshot(snap, folder, per_folder[folder], against))
    shared = [x for x in shape.findings if not any(x in fs for fs in per_folder.values())]
    report = finish(parts, shared, shape.folders[0] if len(parts) == 1 else f"{len(parts)} records")
    report.data.update(data)
    return report


def _count(changes: list[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s, _ in changes:
        out[STATUS_WORDS.get(s, s)] = out.get(STATUS_WORDS.get(s, s), 0) + 1
    return out


def _nothing_line(changes: list[tuple[str, str]]) -> str:
    n_records = len({f for _, p in changes if (f := _record_folder(p))})
    extra = f" (the PR changes {len(changes)} file(s)" + (f", in {n_records} existing record folder(s)" if n_records else "") + ")"
    return NOTHING_TO_GATE + (extra if changes else "")


def finish(parts: list, shared: list[Finding], subject: str):
    """The gate report: PR-level findings and one `record` child per new folder."""
    from harness.report import Report

    return Report(kind="gate", subject=subject, findings=shared, children=parts,
                  data={"records": [p.subject for p in parts]})


# -- paths: from the snapshot to what the reader knows ------------------------------------------
def relocate(report, old: str, new: str):
    """`report` (and its children) with every path under `old` rewritten under `new`: finding
    and evidence locations, subjects, and strings in `data` (the snapshot is a private temporary
    folder; readers know the record by its path in the repository)."""
    def path(p: str) -> str:
        if p == old:
            return new
        return new + p[len(old):] if p.startswith(old + "/") else p

    def loc(location):
        return replace(location, path=path(location.path)) if location is not None else None

    def finding(f: Finding) -> Finding:
        ev = tuple(EvidenceStep(s.message.replace(old, new), loc(s.location)) for s in f.evidence)
        return replace(f, message=f.message.replace(old, new),
                       location=loc(f.location), evidence=ev, data=_data(f.data))

    def _data(v: Any) -> Any:
        if isinstance(v, str):
            return path(v) if v.startswith(old) else v.replace(old + "/", new + "/")
        if isinstance(v, dict):
            return {(_data(k) if isinstance(k, str) else k): _data(x) for k, x in v.items()}
        if isinstance(v, list):
            return [_data(x) for x in v]
        return v

    report.subject = path(report.subject)
    report.findings = [finding(f) for f in report.findings]
    report.data = _data(report.data)
    report.children = [relocate(c, old, new) for c in report.children]
    return report

