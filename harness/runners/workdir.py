"""A seed's work folder: a copy of the record that follows no link, and (docker) a size bound.

Copying. A record comes from a stranger's pull request. A symbolic link inside it is not copied:
recreated as a link, it would resolve in the run's view — on the host, a path outside the record
(`data -> /home/reviewer/.ssh`); in a container, whatever host folder is mounted at that path —
and a record whose behaviour depends on the reviewer's machine is not a record. So links (to
files or folders) and special files (FIFOs, devices, sockets) are skipped and listed; the
reproduction reports each one (PG-RUN-005), and a run that needed one fails visibly. Regular files
are opened with O_NOFOLLOW and copied by descriptor, so a file swapped for a link mid-copy is not
followed either. The copy is capped (`MAX_RECORD_BYTES`): a record is code and logs, not data.

Bounding. `LoopBound` gives the Docker runner a work folder of fixed size: an ext4 filesystem in
a sparse image file, loop-mounted by the harness (root only). Writes past the bound fail with
ENOSPC inside the run, and what the run wrote is measured on that filesystem and copied back
(regular files and folders only, never links) when it ends.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InputError
from harness.runners.base import RunSpec

MAX_RECORD_BYTES = 2 * 1024**3
_RDONLY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass
class Skipped:
    rel: str
    kind: str  # "link" | "other"
    target: str | None = None  # a link's text (never resolved)

    def to_dict(self) -> dict[str, str | None]:
        return {"path": self.rel, "kind": self.kind, "target": self.target}


def _make_writable(dst: Path) -> None:
    for root, dirs, _ in os.walk(dst):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)


def clear(dst: Path) -> None:
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)


def _copy_file(src: Path, dst: Path, mode: int) -> int:
    fd = os.open(src, _RDONLY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            with os.fdopen(os.dup(fd), "rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
        os.chmod(dst, (mode & 0o777) | 0o600)
        return dst.stat().st_size
    finally:
        os.close(fd)


def copy_tree(src: Path, dst: Path, max_bytes: int | None = MAX_RECORD_BYTES,
              only: set[str] | None = None) -> list[Skipped]:
    """Copy `src` into `dst` (created), following no link; returns what was skipped.
    `only`: copy just these relative file paths (and the folders that hold them)."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    skipped: list[Skipped] = []
    total = 0
    for root, dirs, files in os.walk(src):
        rel_root = Path(root).relative_to(src)
        for name in sorted(dirs + files):
            s, rel = Path(root) / name, (rel_root / name).as_posix()
            try:
                st = os.lstat(s)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                skipped.append(Skipped(rel, "link", os.readlink(s)))
                if name in dirs:
                    dirs.remove(name)
            elif stat.S_ISDIR(st.st_mode):
                if only is None or any(o == rel or o.startswith(rel + "/") for o in only):
                    d = dst / rel
                    if d.is_symlink() or (d.exists() and not d.is_dir()):
                        clear(d)  # the run made a file (or link) a folder
                    d.mkdir(exist_ok=True)
                else:
                    dirs.remove(name)
            elif stat.S_ISREG(st.st_mode):
                if only is not None and rel not in only:
                    continue
                total += st.st_size
                if max_bytes is not None and total > max_bytes:
                    raise InputError(f"the record folder holds over {max_bytes:,} bytes: not a record "
                                     "(code and logs), refusing to copy it for every seed", str(src))
                d = dst / rel
                if d.exists() or d.is_symlink():
                    clear(d)  # a file, a link, or a folder the run made a file
                try:
                    _copy_file(s, d, st.st_mode)
                except OSError:
                    skipped.append(Skipped(rel, "other"))
            else:
                skipped.append(Skipped(rel, "other"))
    return skipped


def copy_record(src: Path, dst: Path) -> list[Skipped]:
    """A fresh, writable copy of a record folder (records may be read-only); links and special
    files are not copied and come back as `Skipped`."""
    clear(Path(dst))
    return copy_tree(Path(src), Path(dst))


def snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file (symlinks not followed)."""
    out: dict[str, tuple[int, int]] = {}
    for root, dirs, files in os.walk(workdir):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[os.path.relpath(p, workdir)] = (st.st_size, st.st_mtime_ns)
    return out


def read_only_inputs(spec: RunSpec, workdir: Path, must_exist: bool = True) -> list[Path]:
    """What an isolating runner mounts read-only, at the same path: the data folder, plus
    DATA_PATH and TOKENIZER_PATH where they lie outside it (a tokenizer file often sits beside,
    not inside, the dataset folder); each once, none inside another or inside the writable work
    folder, in that order. Paths stay as named (absolute, not resolved): the run opens the path
    its environment names, so that is where the mount must be. `must_exist`: leave out a DATA_PATH or TOKENIZER_PATH that is not
    there (Docker refuses to bind a missing path; the run then fails on it visibly). The Slurm
    container launchers build their mounts on the node, whose paths these are, and pass False.
    """
    candidates = [spec.data_dir] if spec.data_dir is not None else []
    for key in ("DATA_PATH", "TOKENIZER_PATH"):
        value = spec.env.get(key)
        if value and os.path.isabs(value) and (os.path.exists(value) or not must_exist):
            candidates.append(Path(value))
    works = {Path(os.path.abspath(workdir)), Path(workdir).resolve()}
    paths = list(dict.fromkeys(Path(os.path.abspath(c)) for c in candidates))

    def within(p: Path, q: Path) -> bool:
        return p == q or q in p.parents

    return [p for p in paths
            if not any(within(p, w) for w in works) and not any(q != p and within(p, q) for q in paths)]


# ---- a size-bounded work folder (Docker runner) ----------------------------------------------
def parse_size(value: str | int) -> int:
    """'8g', '512m', '64k' or a byte count."""
    if isinstance(value, int):
        return value
    v = value.strip().lower().removesuffix("b")
    mult = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}.get(v[-1:], 1)
    try:
        return int(float(v[:-1] if mult > 1 else v) * mult)
    except ValueError:
        raise InputError(f"not a size: {value!r} (e.g. 8g, 512m)") from None


def loop_unavailable() -> str | None:
    """Why a loop-mounted work folder cannot be made here (None when it can)."""
    if os.geteuid() != 0:
        return "mounting a size-bounded filesystem needs root"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"no {tool} command"
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control)"
    return None


@dataclass
class LoopBound:
    """An ext4 filesystem of `size` bytes in a sparse image, mounted at `mountpoint`."""

    image: Path
    mountpoint: Path
    size: int
    owner: tuple[int, int] = (0, 0)
    mounted: bool = False
    errors: list[str] = field(default_factory=list)

    def create(self) -> None:
        self.release()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        uid, gid = self.owner
        steps = [["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", f"root_owner={uid}:{gid}",
                  "-L", "pgolf-work", str(self.image)],
                 ["mount", "-o", "loop,nosuid,nodev", str(self.image), str(self.mountpoint)]]
        for argv in steps:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                self.release()
                raise OSError(f"{' '.join(argv[:1])} failed: {(p.stderr or p.stdout).strip()[-300:]}")
        self.mounted = True
        lost = self.mountpoint / "lost+found"
        if lost.is_dir():
            lost.rmdir()

    def usage(self) -> dict[str, int]:
        st = os.statvfs(self.mountpoint)
        return {"bound_bytes": self.size, "capacity_bytes": st.f_blocks * st.f_frsize,
                "used_bytes": (st.f_blocks - st.f_bfree) * st.f_frsize}

    def release(self) -> None:
        if self.mounted or os.path.ismount(self.mountpoint):
            p = subprocess.run(["umount", str(self.mountpoint)], capture_output=True, text=True, timeout=60)
            if p.returncode != 0:  # still busy: detach now, the kernel frees it when unused
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, timeout=60)
            self.mounted = False
        for p in (self.image,):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        try:
            self.mountpoint.rmdir()
        except OSError:
            pass
