"""pgolf's audit hook on file opens, imported by every Python process of a reproduced run.

The runner puts this folder first on PYTHONPATH (mounted read-only in a container), so Python
imports it at start-up, before the submission's code. It adds an audit hook (PEP 578), which no
Python code can remove once added, and reports each open or mmap of a file under the data
folder as one datagram, `KIND\\tPID\\tPATH`, to a socket that the harness owns and reads; the
harness stamps each datagram with its own clock when it arrives. The submission can add
datagrams (it can only make itself look worse) but not take back one that was sent.

What it cannot see — and why the harness also watches the data folder with inotify from
outside: opens by native code that bypasses Python's `open` (C++ `fopen`, `ctypes` syscalls),
reads through a file descriptor or a mapping already made, processes started without this
module (`python -I`, `-S`, a cleared PYTHONPATH, another language), and a submission that
patches the objects this hook closes over. Standard library only; a failure here never breaks
the run.
"""
import sys


def _install():
    import os
    import socket

    target = os.environ.get("PGOLF_AUDIT_SOCKET")
    roots = tuple(os.fsencode(r.rstrip("/") + "/") for r in os.environ.get("PGOLF_AUDIT_PATHS", "").split(os.pathsep) if r)
    if not target or not roots:
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sendto, getpid, fspath, fsencode = sock.sendto, os.getpid, os.fspath, os.fsencode
    abspath, readlink = os.path.abspath, os.readlink
    from time import sleep

    def send(kind, path):
        # A full queue (the run itself may flood the socket to push a real sighting out) is
        # waited out for up to 2 s, so a flood delays the run's own open instead of hiding it;
        # a harness that is gone is never waited for.
        msg = b"%s\t%d\t%s" % (kind, getpid(), path[:4096])
        for _ in range(2000):
            try:
                sendto(msg, target)
                return
            except BlockingIOError:
                sleep(0.001)
            except OSError:
                return

    def under(path):
        return path.startswith(roots) or path + b"/" in roots

    def hook(event, args):
        if event == "open":
            path = args[0]
            if isinstance(path, int) or path is None:
                return
            try:
                p = fsencode(abspath(fspath(path)))  # `/d/../d/x` and `x` alike
            except Exception:
                return
            if under(p):
                send(b"open", p)
        elif event == "mmap.__new__":
            fileno = args[0]
            if not isinstance(fileno, int) or fileno < 0:
                return
            try:
                p = fsencode(readlink("/proc/self/fd/%d" % fileno))
            except OSError:
                return
            if under(p):
                send(b"mmap", p)

    sys.addaudithook(hook)
    argv = getattr(sys, "argv", None) or [sys.executable or "python"]
    send(b"hello", fsencode(str(argv[0] or sys.executable)))


try:
    _install()
except Exception:  # noqa: BLE001 - the run goes on without the hook; the kernel channel remains
    pass
del _install
