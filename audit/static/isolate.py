"""Each file's audit in a worker process of its own, so that nothing in one file loses a report.

libcst's parser is native code: a file it cannot handle can kill the process (a segfault on
deeply nested brackets), or stall it. The pre-screen (audit.static.prescreen) refuses the shapes
we know; this module makes any other crash a finding instead of an empty output. Every file is
audited in a forked child that sends back its `FileResult`; a child that dies or overruns its
deadline becomes a PG-PARSE-001 finding (REVIEW) for that file, and the other files' results are
kept, whatever `--jobs` is. Forking a process that has already imported libcst costs a few
milliseconds, small next to a parse.
"""
from __future__ import annotations

import faulthandler
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

FILE_DEADLINE_S = 300.0  # the merged records take under 2 s each; a 5 MB file about 60 s


def _child(conn, fn, path) -> None:
    faulthandler.disable()  # a crash is reported by the parent as a finding, not as a dump
    try:
        result = fn(path)
    except BaseException as e:  # noqa: BLE001 - reported as a finding by the parent
        result = ("error", f"{type(e).__name__}: {str(e)[:200]}")
    try:
        conn.send(result)
    finally:
        conn.close()
        os._exit(0)


def run_isolated(files: list[Path], fn: Callable, failed: Callable, jobs: int = 1,
                 deadline_s: float = FILE_DEADLINE_S) -> list:
    """`fn(file)` for every file in a child process, at most `jobs` at a time, results in the
    order of `files`. `failed(file, problem)` makes the result of a child that died, overran
    `deadline_s` or raised. Without `fork` (not Linux), runs in this process."""
    if "fork" not in mp.get_all_start_methods():
        return [_guarded(fn, failed, f) for f in files]
    ctx = mp.get_context("fork")
    order = sorted(range(len(files)), key=lambda i: -_size(files[i])) if jobs > 1 else list(range(len(files)))
    out: list = [None] * len(files)
    running: dict = {}  # reader connection -> (index, process, started)
    pending = list(order)
    while pending or running:
        while pending and len(running) < max(1, jobs):
            i = pending.pop(0)
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(w, fn, files[i]), daemon=True)
            p.start()
            w.close()
            running[r] = (i, p, time.monotonic())
        now = time.monotonic()
        timeout = max(0.0, min(st + deadline_s for _, _, st in running.values()) - now)
        ready = wait(list(running), timeout=timeout)
        for r in ready:
            i, p, _ = running.pop(r)
            try:
                got = r.recv()
            except (EOFError, OSError):
                got = None
            r.close()
            p.join(5)
            if got is None:
                out[i] = failed(files[i], _death(p))
            elif isinstance(got, tuple) and got[:1] == ("error",):
                out[i] = failed(files[i], f"internal error {got[1]}")
            else:
                out[i] = got
        now = time.monotonic()
        for r, (i, p, st) in list(running.items()):
            if now - st >= deadline_s:
                p.kill()
                p.join(5)
                r.close()
                running.pop(r)
                out[i] = failed(files[i], f"the analysis did not finish within {deadline_s:.0f} s (stopped)")
    return out


def _death(p) -> str:
    code = p.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the parser crashed ({name}) on this file"
    return f"the analysis process exited ({code}) without a result"


def _guarded(fn, failed, path):
    try:
        return fn(path)
    except Exception as e:  # noqa: BLE001
        return failed(path, f"internal error {type(e).__name__}: {str(e)[:200]}")


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0
