"""pid 1 of a run's PID namespace: `unshare --pid --fork --kill-child --mount-proc` starts it.

    python -I -S nsinit.py REPORT_FD -- COMMAND [ARG...]

Why an init of our own rather than COMMAND as pid 1: the kernel gives pid 1 of a namespace
special rules. Signals it has no handler for are ignored (a plain `python train_gpt.py` as pid 1
would shrug off SIGTERM), and every orphan of the namespace becomes its child, to be reaped. So:

- COMMAND starts as this process's child, in a process group of its own, with default signal
  dispositions (Python ignores SIGPIPE and SIGXFSZ; a child must not inherit that);
- SIGTERM, SIGINT, SIGHUP and SIGQUIT are forwarded to every process of the namespace
  (`kill(-1, sig)` from pid 1), so a graceful stop reaches the daemons the run started too;
- every orphan is reaped as it dies;
- when COMMAND exits, the processes still alive are listed and one JSON line,
  `{"exit": N, "leftovers": [{"pid", "comm"}...], "leftover_count": M}`, is written to REPORT_FD,
  a pipe that only the harness reads (COMMAND does not inherit it), and only after this process
  exits: so the list is capped (`MAX_LISTED`, a few kB) to fit the pipe's buffer — a run that
  leaves thousands of processes must not block its init on a full pipe (the harness would wait
  for the launcher until the deadline) — and `leftover_count` says how many there were.
  Then this process exits, and with it the kernel
  SIGKILLs every other process of the namespace: nothing a run started outlives it, whatever
  session, group or environment it moved to.

Standard library only: it runs with `-I -S`, outside anything of pgolf and of the run.
"""
import json
import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
# At most ~120 bytes an entry (a comm of 15 control characters, JSON-escaped): 24 kB, well
# inside a pipe's 64 kB buffer.
MAX_LISTED = 200


def _forward(signum, frame):
    try:
        os.kill(-1, signum)
    except OSError:
        pass


def _alive_others():
    """Live processes of the namespace other than this one (its /proc is the namespace's)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == str(os.getpid()):
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                raw = f.read()
        except OSError:
            continue
        if raw[raw.rfind(")") + 2:].split()[:1] == ["Z"]:
            continue
        out.append({"pid": int(name), "comm": raw[raw.find("(") + 1:raw.rfind(")")][:32]})
    return out


def _report(fd, data):
    try:
        os.write(fd, (json.dumps(data) + "\n").encode())
    except OSError:
        pass


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: nsinit.py REPORT_FD -- COMMAND [ARG...]\n")
        return 2
    report_fd, command = int(argv[1]), argv[3:]
    os.set_inheritable(report_fd, False)
    for sig in FORWARDED:
        signal.signal(sig, _forward)
    try:
        child = os.posix_spawnp(command[0], command, os.environ, setpgroup=0,
                                setsigdef=FORWARDED + (signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as e:
        sys.stderr.write("pgolf: cannot run %s: %s\n" % (command[0], e.strerror))
        _report(report_fd, {"exit": 127, "error": str(e), "leftovers": [], "leftover_count": 0})
        return 127
    status = None
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            status = st
    code = os.waitstatus_to_exitcode(status) if status is not None else 255
    others = _alive_others()
    _report(report_fd, {"exit": code, "leftovers": others[:MAX_LISTED], "leftover_count": len(others)})
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    os._exit(main(sys.argv))
