"""When a run touched its training data and wrote its artifact, by the harness clock, two ways.

Rules say training data may only be read inside the training budget (rules.md, Timing; the
organizers' PR #1868 compliance re-run). A reproduction therefore records when the run last
opened or read a training shard and when its files appeared, through two channels whose
weaknesses differ:

- **kernel** (`Inotify`): inotify watches on the data folder (`IN_OPEN`, `IN_ACCESS`) and on the
  work folder (`IN_CREATE`, `IN_MOVED_TO`, `IN_CLOSE_WRITE`), read by a harness thread. The
  submission cannot forge or suppress these events: they come from the kernel for any process,
  native code, child or container (a bind mount is the same inode). Blind spots: reads through a
  memory mapping (page faults make no event), a copy of the data made earlier (reading the copy
  touches other files), and attribution — an event names the file, not the process, so another
  job reading the same data folder at the same time would look like the run. A kernel queue
  overflow is recorded (the channel is then incomplete).
- **hook** (`AuditListener`): the in-process audit hook (`audithook/sitecustomize.py`) reports
  opens and mmaps of files under the data folder, with the pid and path, as datagrams to a socket
  the harness owns; each is stamped on arrival. It sees paths as the process named them and sees
  mappings being made. Blind spots: native code, processes started without it, tampering by the
  submission's Python (see the hook's docstring).

Both feed one bounded `AccessLog`: per data file the last time seen, counts, the last 64
training-shard events (the late ones are what a finding quotes), and per work file its first
appearance and last completed write (at most `MAX_WORK_FILES`). Nothing grows with the run.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import select
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runners import proctable

HOOK_DIR = Path(__file__).with_name("audithook")
CONTAINER_HOOK_DIR = "/opt/pgolf/audithook"  # where the Docker runner mounts HOOK_DIR (read-only)
CONTAINER_SOCKET_DIR = "/run/pgolf-audit"
SOCKET_NAME = "s"
MAX_DATA_FILES = 1_000
MAX_WORK_FILES = 5_000
MAX_WATCHES = 256
RECENT = 64

IN_ACCESS, IN_MODIFY, IN_CLOSE_WRITE, IN_OPEN = 0x1, 0x2, 0x8, 0x20
IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x80, 0x100, 0x4000, 0x8000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_EVENT = struct.Struct("iIII")
_TRAIN = re.compile(r"train", re.IGNORECASE)
_VAL = re.compile(r"(?<![a-z])val", re.IGNORECASE)


def is_training_shard(name: str) -> bool:
    """A data file that is training data: its name says `train` (upstream: fineweb_train_*.bin)
    and not validation (fineweb_val_*.bin)."""
    base = os.path.basename(name)
    return bool(_TRAIN.search(base)) and not _VAL.search(base)


def data_roots(data_dir: Path | None, env: dict[str, str]) -> list[Path]:
    """The folders whose files are the run's data: the data folder and DATA_PATH (when a folder)."""
    roots: list[Path] = []
    for cand in ([data_dir] if data_dir else []) + ([Path(env["DATA_PATH"])] if env.get("DATA_PATH") else []):
        if cand.is_dir():
            for p in (cand.absolute(), cand.resolve()):
                if p not in roots:
                    roots.append(p)
    return roots


def with_hook_env(env: dict[str, str], hook_env: dict[str, str]) -> dict[str, str]:
    """`env` plus the audit hook's variables (`DataWatch.env`); the hook's folder goes first on
    PYTHONPATH."""
    out = dict(env)
    for k, v in hook_env.items():
        out[k] = v + os.pathsep + out[k] if k == "PYTHONPATH" and out.get(k) else v
    return out


# ---- the bounded record -------------------------------------------------------------------------
@dataclass
class FileSeen:
    first_s: float
    last_s: float
    train: bool = False  # `is_training_shard(name)`, decided once (not on every kernel event)
    opens: int = 0
    reads: int = 0
    maps: int = 0


@dataclass
class WorkFile:
    created_s: float | None = None
    last_write_s: float | None = None


@dataclass
class AccessLog:
    """Everything both channels saw, bounded (see the module docstring). Thread-safe."""

    data: dict[str, dict[str, FileSeen]] = field(default_factory=lambda: {"kernel": {}, "hook": {}})
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    work: dict[str, WorkFile] = field(default_factory=dict)
    work_truncated: int = 0
    hook_processes: int = 0
    kernel_overflow: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def data_event(self, channel: str, kind: str, name: str, t: float) -> None:
        with self.lock:
            files = self.data[channel]
            seen = files.get(name)
            if seen is None:
                if len(files) >= MAX_DATA_FILES:
                    name = "(other files)"
                    seen = files.get(name)
                if seen is None:
                    seen = files[name] = FileSeen(t, t, is_training_shard(name))
            seen.last_s = max(seen.last_s, t)
            if kind == "open":
                seen.opens += 1
            elif kind == "read":
                seen.reads += 1
            elif kind == "mmap":
                seen.maps += 1
            if seen.train:
                self.recent.append((round(t, 6), channel, kind, name))

    def work_event(self, rel: str, created: bool, t: float) -> None:
        with self.lock:
            w = self.work.get(rel)
            if w is None:
                if len(self.work) >= MAX_WORK_FILES:
                    self.work_truncated += 1
                    return
                w = self.work[rel] = WorkFile()
            if created:
                w.created_s = t if w.created_s is None else w.created_s
            else:
                w.last_write_s = t
                if w.created_s is None:
                    w.created_s = t

    def hello(self) -> None:
        with self.lock:
            self.hook_processes += 1

    def summary(self) -> dict[str, Any]:
        with self.lock:
            train = {}
            for channel, files in self.data.items():
                shards = {n: s for n, s in files.items() if s.train}
                last = max(shards.items(), key=lambda kv: kv[1].last_s, default=None)
                train[channel] = {
                    "files": len(shards), "opens": sum(s.opens for s in shards.values()),
                    "reads": sum(s.reads for s in shards.values()), "maps": sum(s.maps for s in shards.values()),
                    "first_s": min((s.first_s for s in shards.values()), default=None),
                    "last_s": last[1].last_s if last else None, "last_file": last[0] if last else None,
                    "other_data_files": len(files) - len(shards),
                }
            return {"train": train, "recent": list(self.recent), "hook_processes": self.hook_processes,
                    "kernel_overflow": self.kernel_overflow,
                    "work": {k: {"created_s": v.created_s, "last_write_s": v.last_write_s} for k, v in self.work.items()},
                    "work_truncated": self.work_truncated}


# ---- kernel channel: inotify ---------------------------------------------------------------------
class Inotify:
    """inotify through libc (ctypes): watches on data folders and on a work folder tree."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self.libc = ctypes.CDLL(name, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.dirs: dict[int, tuple[str, Path]] = {}  # wd -> (role, folder)

    def watch(self, role: str, folder: Path, mask: int) -> bool:
        if len(self.dirs) >= MAX_WATCHES:
            return False
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(folder), mask)
        if wd < 0:
            return False
        self.dirs[wd] = (role, folder)
        return True

    def read(self) -> list[tuple[int, int, str]]:
        try:
            buf = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        out, i = [], 0
        while i + _EVENT.size <= len(buf):
            wd, mask, _cookie, n = _EVENT.unpack_from(buf, i)
            name = buf[i + _EVENT.size:i + _EVENT.size + n].rstrip(b"\0").decode("utf-8", "replace")
            out.append((wd, mask, name))
            i += _EVENT.size + n
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


DATA_MASK = IN_OPEN | IN_ACCESS
WORK_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE


# ---- hook channel: the socket the audit hook reports to ----------------------------------------
class AuditListener:
    """A datagram socket in a fresh private folder (short path: AF_UNIX allows 108 bytes)."""

    PREFIX = "pgolf-audit-"  # + the harness's pid

    def __init__(self, for_uid: int | None = None):
        for stale in Path("/tmp").glob(f"{self.PREFIX}*"):  # left by harnesses killed hard
            if proctable.owner_gone(stale.name, self.PREFIX) and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir="/tmp"))
        self.path = self.dir / SOCKET_NAME
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                break
            except OSError:
                continue
        self.sock.setblocking(False)
        if for_uid is not None:  # another user (the container's) must be able to send
            os.chmod(self.dir, 0o755)
            os.chmod(self.path, 0o777)
        else:
            os.chmod(self.dir, 0o700)

    def close(self) -> None:
        self.sock.close()
        for p in (self.path,):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        try:
            self.dir.rmdir()
        except OSError:
            pass


# ---- both, for one run ---------------------------------------------------------------------------
class DataWatch:
    """Set up before a run (`env` for the child, mounts for a container), `start(t0)` when it
    starts, `stop()` after; `summary()` is the bounded record for the outcome's details."""

    def __init__(self, roots: list[Path], work: Path | None, hook: bool = True, for_uid: int | None = None):
        self.roots = roots
        self._root_prefixes = tuple(str(r).rstrip("/") + "/" for r in roots)  # what the hook may report
        self.work = work
        self.log = AccessLog()
        self.channels: dict[str, str] = {}
        self.inotify: Inotify | None = None
        self.listener: AuditListener | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0
        if not roots:
            self.channels = {"kernel": "off: no data folder given", "hook": "off: no data folder given"}
        try:
            self.inotify = Inotify()
            for r in roots:
                self.inotify.watch("data", r, DATA_MASK)
            if work is not None:
                self._watch_tree(work)
            if roots:
                self.channels["kernel"] = "inotify on " + ", ".join(str(r) for r in roots)
        except (OSError, AttributeError) as e:
            self.inotify = None
            self.channels["kernel"] = f"unavailable: {e}"
        if roots and hook:
            try:
                self.listener = AuditListener(for_uid)
                self.channels["hook"] = "audit hook (sitecustomize on PYTHONPATH) reporting to a harness socket"
            except OSError as e:
                self.channels["hook"] = f"unavailable: {e}"
        elif roots:
            self.channels["hook"] = "off"

    def _watch_tree(self, top: Path) -> None:
        assert self.inotify is not None
        self.inotify.watch("work", top, WORK_MASK)
        for root, dirs, _ in os.walk(top):
            for d in dirs:
                p = Path(root) / d
                if not p.is_symlink():
                    self.inotify.watch("work", p, WORK_MASK)

    def env(self, inside_container: bool = False) -> dict[str, str]:
        """Variables that install the hook in the run's Python processes (PYTHONPATH is joined
        with any the run already sets by the caller)."""
        if self.listener is None:
            return {}
        sock = f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}" if inside_container else str(self.listener.path)
        return {"PYTHONPATH": CONTAINER_HOOK_DIR if inside_container else str(HOOK_DIR),
                "PGOLF_AUDIT_SOCKET": sock,
                "PGOLF_AUDIT_PATHS": os.pathsep.join(dict.fromkeys(str(r) for r in self.roots))}

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pgolf-data-watch")
        self._thread.start()

    def _loop(self) -> None:
        poll = select.poll()
        poll.register(self._stop_r, select.POLLIN)
        if self.inotify:
            poll.register(self.inotify.fd, select.POLLIN)
        if self.listener:
            poll.register(self.listener.sock.fileno(), select.POLLIN)
        while True:
            ready = {fd for fd, _ in poll.poll()}
            now = time.monotonic() - self.t0
            try:
                if self.inotify and self.inotify.fd in ready:
                    self._kernel(now)
                if self.listener and self.listener.sock.fileno() in ready:
                    self._hook(now)
            except Exception as e:  # noqa: BLE001 - the watch must outlive anything the run sends
                self.channels["error"] = f"{type(e).__name__}: {e}"[:300]
                return
            if self._stop_r in ready:
                return

    def _kernel(self, now: float) -> None:
        assert self.inotify is not None
        for wd, mask, name in self.inotify.read():
            if mask & IN_Q_OVERFLOW:
                self.log.kernel_overflow = True
                continue
            role, folder = self.inotify.dirs.get(wd, ("?", Path()))
            if not name or mask & IN_IGNORED:
                continue
            if role == "data":
                if not mask & IN_ISDIR:
                    self.log.data_event("kernel", "open" if mask & IN_OPEN else "read", name, now)
            elif role == "work":
                path = folder / name
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO) and not path.is_symlink():
                        self.inotify.watch("work", path, WORK_MASK)
                    continue
                rel = os.path.relpath(path, self.work)
                self.log.work_event(rel, bool(mask & (IN_CREATE | IN_MOVED_TO)), now)

    def _hook(self, now: float) -> None:
        assert self.listener is not None
        for _ in range(4096):
            try:
                msg = self.listener.sock.recv(8192)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            parts = msg.split(b"\t", 2)
            if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 10:
                continue  # not the hook's format: the run may send anything here
            kind = parts[0].decode("ascii", "replace")
            if kind == "hello":
                self.log.hello()
                continue
            path = parts[2].decode("utf-8", "replace")
            if kind in ("open", "mmap") and path.startswith(self._root_prefixes):
                self.log.data_event("hook", kind, os.path.basename(path), now)

    def stop(self) -> None:
        """Stop after draining what is queued (call once the run has ended). Idempotent: a
        second call (a collect retried after a failed one) finds nothing open and does nothing;
        the record (`log`, `summary`) stays."""
        if self._stop_w < 0:
            return
        if self._thread is not None:
            time.sleep(0.05)  # events of the run's last moments are already queued; let them land
            os.write(self._stop_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None
        now = time.monotonic() - self.t0
        if self.inotify:  # anything still queued
            self._kernel(now)
            self.inotify.close()
            self.inotify = None
        if self.listener:
            self._hook(now)
            self.listener.close()
            self.listener = None
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = -1

    def summary(self) -> dict[str, Any]:
        return {"channels": self.channels, "roots": [str(r) for r in self.roots], **self.log.summary()}
