"""Reading a submission's files as hostile data: never through a link, never more than a cap.

A record folder comes from a stranger's pull request and is read next to CI secrets. A
`train_seed7.log` that is a symlink to `/proc/self/environ`, a `logs -> /var/log` folder, a 1 GB
sparse file or a FIFO must not reach a report or exhaust memory. Everything in `harness` and
`audit` that reads a submission goes through this module:

- `scan(root)` lists a folder tree without following links: every entry comes back with its kind
  (`file`, `dir`, `link`, `other`) from `lstat`, so callers can report links instead of reading
  them; depth and entry count are bounded.
- `read_capped(path, cap)` opens with `O_NOFOLLOW | O_NONBLOCK`, checks with `fstat` on the open
  descriptor that it is a regular file, refuses before reading when its size is over `cap`, and
  then reads at most `cap + 1` bytes (a file that grows while read is still refused).
- `read_under(root, rel, cap)` does the same for a path inside `root`, refusing when any
  component between `root` and the file is a link (O_NOFOLLOW only guards the last component).
- `iter_lines_under(root, rel, cap, max_line)` streams the lines of such a file (train logs):
  refused before reading when over `cap`, each line cut to `max_line` bytes, never read whole.
- `read_head(root, rel, limit)` / `read_tail(root, rel, limit)`: the first / last `limit` bytes
  of such a file, however large it is (the configuration at the top of a run log, the final
  scores at its end).

This module lives in `audit` because `audit` may not import `harness`; `harness` imports it.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DEFAULT_MAX_DEPTH = 6
DEFAULT_MAX_ENTRIES = 20_000


class UnsafeRead(OSError):
    """A file that is not read, and why: `reason` is one of `link`, `too-large`, `not-regular`,
    `missing`, `unreadable`. `size` is the size on disk when known (for `too-large`)."""

    def __init__(self, path: str, reason: str, detail: str = "", size: int | None = None):
        self.path = path
        self.reason = reason
        self.size = size
        super().__init__(f"{path}: {detail or reason}")


@dataclass(frozen=True)
class Entry:
    """One entry of a scanned tree: path relative to the root (POSIX form), its kind and size."""

    rel: str
    path: Path
    kind: str  # "file" | "dir" | "link" | "other"
    size: int  # st_size from lstat (for a link: the link text's length, never the target's)


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def lkind(path: str | os.PathLike) -> str | None:
    """The kind of `path` itself (a link is `link`, whatever it points to); None when absent."""
    try:
        return kind_of(os.lstat(path).st_mode)
    except OSError:
        return None


def scan(root: str | os.PathLike, *, max_depth: int = DEFAULT_MAX_DEPTH,
         max_entries: int = DEFAULT_MAX_ENTRIES, hidden: bool = False) -> Iterator[Entry]:
    """Every entry under `root` in sorted order, depth first, links reported and not followed.

    Folders deeper than `max_depth` below the root are listed but not entered; after
    `max_entries` entries the scan stops (a folder of a million files is not a record). Hidden
    names (starting with '.') are skipped unless `hidden`.
    """
    base = Path(root)
    count = 0
    stack: list[tuple[Path, int]] = [(base, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[Path, int]] = []
        for e in entries:
            if not hidden and e.name.startswith("."):
                continue
            count += 1
            if count > max_entries:
                return
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = kind_of(st.st_mode)
            path = Path(e.path)
            yield Entry(path.relative_to(base).as_posix(), path, kind, st.st_size)
            if kind == "dir" and depth + 1 < max_depth:
                subdirs.append((path, depth + 1))
        stack.extend(reversed(subdirs))


def read_capped(path: str | os.PathLike, cap: int) -> bytes:
    """The bytes of the regular file `path` (not a link), at most `cap` of them.

    Raises `UnsafeRead` with reason `link` (the path is a symbolic link), `not-regular` (a FIFO,
    device, socket or folder: never opened for reading in a way that could block), `too-large`
    (over `cap` by `fstat`, or grew past it while read), `missing` or `unreadable`.
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except OSError as e:
        raise _error(name, e) from None
    try:
        return _read_fd(name, fd, cap)
    finally:
        os.close(fd)


def read_under(root: str | os.PathLike, rel: str, cap: int) -> bytes:
    """`read_capped` of `root/rel`, refusing when any folder between `root` and the file is a
    link: each component is opened relative to the previous one with O_NOFOLLOW."""
    name, fd = open_under(root, rel)
    try:
        return _read_fd(name, fd, cap)
    finally:
        os.close(fd)


def open_under(root: str | os.PathLike, rel: str) -> tuple[str, int]:
    """(path, descriptor) of `root/rel` opened for reading without following any link between
    `root` and the file (each component opened relative to the previous one with O_NOFOLLOW).
    The caller closes the descriptor; `UnsafeRead` as for `read_capped`."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or Path(rel).is_absolute():
        raise UnsafeRead(os.path.join(os.fspath(root), rel), "unreadable", "path leaves the record folder")
    name = os.path.join(os.fspath(root), *parts)
    dir_flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(os.fspath(root), dir_flags & ~os.O_NOFOLLOW)
    except OSError as e:
        raise _error(os.fspath(root), e) from None
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                nxt = os.open(part, dir_flags, dir_fd=fd)
            except OSError as e:
                raise _error(os.path.join(os.fspath(root), *parts[:i + 1]), e, in_path=True) from None
            os.close(fd)
            fd = nxt
        try:
            return name, os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=fd)
        except OSError as e:
            raise _error(name, e) from None
    finally:
        os.close(fd)


def iter_lines_under(root: str | os.PathLike, rel: str, cap: int, max_line: int) -> Iterator[tuple[bytes, bool]]:
    """The lines of `root/rel` (opened as `open_under` does), streamed: the file is refused
    before reading when `fstat` says it is over `cap`, read in 1 MiB blocks (never whole), and
    each line comes back without its newline, cut to `max_line` bytes, with a flag saying
    whether it was cut. Memory stays at one block plus one line whatever the file holds.
    Reading stops (`UnsafeRead` too-large) if the file grows past `cap` while read."""
    name, fd = open_under(root, rel)
    try:
        yield from _lines_fd(name, fd, cap, max_line)
    finally:
        os.close(fd)


def _lines_fd(name: str, fd: int, cap: int, max_line: int) -> Iterator[tuple[bytes, bool]]:
    _check_regular(name, fd, cap)
    got = 0
    pending = bytearray()
    cut = False
    while True:
        block = os.read(fd, 1 << 20)
        if not block:
            break
        got += len(block)
        if got > cap:
            raise UnsafeRead(name, "too-large", f"grew past the {cap}-byte cap while read", got)
        start = 0
        while True:
            nl = block.find(b"\n", start)
            piece = block[start:] if nl < 0 else block[start:nl]
            room = max_line - len(pending)
            if len(piece) > room:
                piece, cut = piece[:max(room, 0)], True
            pending += piece
            if nl < 0:
                break
            yield bytes(pending), cut
            pending.clear()
            cut = False
            start = nl + 1
    if pending or cut:
        yield bytes(pending), cut


def _check_regular(name: str, fd: int, cap: float) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeRead(name, "not-regular", f"not a regular file ({kind_of(st.st_mode)})")
    if st.st_size > cap:
        raise UnsafeRead(name, "too-large", f"{st.st_size} bytes, over the {cap}-byte cap", st.st_size)
    return st


def read_head(root: str | os.PathLike, rel: str, limit: int) -> bytes:
    """The first `limit` bytes of the regular file `root/rel` (never through a link anywhere on
    its path): for evidence that sits at the top of a file that may be large (a run log)."""
    name, fd = open_under(root, rel)
    try:
        _check_regular(name, fd, float("inf"))
        return _read_all(fd, limit)
    finally:
        os.close(fd)


def read_tail(root: str | os.PathLike, rel: str, limit: int) -> bytes:
    """The last `limit` bytes of the regular file `root/rel` (never through a link): the end of a
    run log, where the final scores are printed."""
    name, fd = open_under(root, rel)
    try:
        size = _check_regular(name, fd, float("inf")).st_size
        if size > limit:
            os.lseek(fd, size - limit, os.SEEK_SET)
        return _read_all(fd, limit)
    finally:
        os.close(fd)


def read_text_capped(path: str | os.PathLike, cap: int, encoding: str = "utf-8") -> str:
    """`read_capped` decoded with `errors="replace"` (bad bytes never raise)."""
    return read_capped(path, cap).decode(encoding, errors="replace")


def _read_fd(name: str, fd: int, cap: int) -> bytes:
    _check_regular(name, fd, cap)
    data = _read_all(fd, cap + 1)
    if len(data) > cap:
        raise UnsafeRead(name, "too-large", f"grew past the {cap}-byte cap while read", len(data))
    return data


def _read_all(fd: int, limit: int) -> bytes:
    chunks, got = [], 0
    while got < limit:
        block = os.read(fd, min(1 << 20, limit - got))
        if not block:
            break
        chunks.append(block)
        got += len(block)
    return b"".join(chunks)


def _error(name: str, e: OSError, in_path: bool = False) -> UnsafeRead:
    if e.errno in (errno.ELOOP, errno.EMLINK) or (in_path and e.errno == errno.ENOTDIR and lkind(name) == "link"):
        return UnsafeRead(name, "link", "a symbolic link (not followed)" if not in_path else
                          "a folder on the path is a symbolic link (not followed)")
    if e.errno == errno.ENOENT:
        return UnsafeRead(name, "missing", "no such file")
    if e.errno == errno.ENOTDIR and in_path:
        return UnsafeRead(name, "not-regular", "a component of the path is not a folder")
    return UnsafeRead(name, "unreadable", e.strerror or str(e))
