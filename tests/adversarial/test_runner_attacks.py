"""Attacks on the runners, as a hostile submission would make them, against real processes,
the real kernel groupings and the real Docker engine.

Each attack is a record written here. After each one the test reads /proc for any process of
the run (every attack puts a unique marker in its command lines) and checks that the outcome
or the report is complete. Where an attack applies to both runners it runs in both; the Docker
cases skip without an engine or the pinned image (and fail under CI=true, where .ci/run
provides both).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from harness.reproduce.observe import Budgets, judge, observe
from harness.runners import confine, make_runner, proctable
from harness.runners.base import RunSpec
from harness.runners.local import LocalRunner

REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


# ---- helpers ------------------------------------------------------------------------------------
def make_record(tmp: Path, code: str, name: str = "rec") -> Path:
    rec = tmp / name
    rec.mkdir()
    (rec / "train_gpt.py").write_text(textwrap.dedent(code))
    return rec


def marker() -> str:
    return f"pgolf-attack-{uuid.uuid4().hex}"


def with_marker(m: str) -> list[int]:
    """Live host pids whose command line or environment holds `m` (containers' too: we are root
    or the same user)."""
    found = []
    for p in proctable.all_pids():
        for part in ("cmdline", "environ"):
            try:
                if m.encode() in (Path("/proc") / str(p) / part).read_bytes() and proctable.live(p):
                    found.append(p)
                    break
            except OSError:
                continue
    return found


def assert_nothing_left(m: str, wait_s: float = 5.0) -> None:
    end = time.monotonic() + wait_s
    while with_marker(m) and time.monotonic() < end:
        time.sleep(0.05)
    assert with_marker(m) == [], "processes of the run are still alive"


def docker_available() -> None:
    """Skip without an engine or the pinned image; under CI=true (.ci/run provides both), fail."""
    from harness.runners.docker import unavailable

    if why := unavailable():
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"docker runner unavailable: {why}")


def run(kind: str, record: Path, tmp: Path, m: str, timeout: float = 30.0, data: Path | None = None,
        **opts):
    """One seed of `record` through the runner `kind` ("local", "docker" or "local:<confine>"),
    with the marker as its argument; returns (outcome, findings)."""
    name, _, mode = kind.partition(":")
    if name == "docker":
        docker_available()
        argv = ("python", "train_gpt.py", m)
    else:
        argv = (sys.executable, "train_gpt.py", m)
        opts = {"term_grace_s": 1.0, "confine": mode or "auto", "warn": False, **opts}
    runner = make_runner(name, **opts)
    env = {"SEED": "1", "RUN_ID": f"attack-{uuid.uuid4().hex}", "ATTACK_MARKER": m}
    if data is not None:
        env["DATA_PATH"] = str(data)
    spec = RunSpec(record_dir=record, workdir=tmp / "seed_1" / "work", seed=1, env=env, timeout_s=timeout,
                   argv=argv, data_dir=data)
    handle = runner.start(runner.prepare(spec))
    streamed = [ln.text for ln in runner.stream(handle)]
    outcome = runner.collect(handle)
    assert streamed == [ln.text for ln in outcome.lines]  # nothing streamed is lost from the outcome
    obs, log = observe(outcome, record)
    findings = judge(obs, log, outcome, Budgets(), str(tmp / "train_seed1.log"))
    return outcome, findings


def ids(findings) -> set[str]:
    return {f.rule_id for f in findings}


def available_modes() -> list[str]:
    sup = confine.probe()
    modes = ["local"]
    modes += ["local:pidns"] if sup.pidns else []
    modes += ["local:cgroup"] if sup.cgroup else []
    return modes


# ---- 1. a double-forking, setsid daemon that re-executes itself with a clean environment --------
DAEMON = """\
    import os, sys, time
    m = sys.argv[1]
    if os.fork() == 0:
        os.setsid()                     # leave the run's session and process group
        if os.fork() == 0:              # the daemon: orphaned, then a fresh program, no RUN_ID
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", m], {})
        os._exit(0)
    time.sleep(0.5)
    print("main exits, daemon left behind", flush=True)
    """


@pytest.mark.parametrize("kind", available_modes() + ["docker"])
def test_setsid_daemon_with_a_clean_environment_dies_with_the_run(kind, tmp_path):
    m = marker()
    t0 = time.monotonic()
    outcome, findings = run(kind, make_record(tmp_path, DAEMON), tmp_path, m, timeout=60)
    assert time.monotonic() - t0 < 40  # the daemon holds the output pipes: no wait for the deadline
    assert outcome.exit_code == 0 and not outcome.timed_out
    assert [ln.text for ln in outcome.lines] == ["main exits, daemon left behind"]
    assert_nothing_left(m)
    if kind.startswith("local"):
        assert outcome.details["leftovers_killed"]  # the daemon was seen and killed
        assert "PG-RUN-006" in ids(findings) and "PG-RUN-002" not in ids(findings)
        assert outcome.details["isolation"]["processes"] != "sweep"


def test_without_kernel_grouping_the_sweep_is_reported(tmp_path):
    """The fallback (forced here): the report says processes were found by a sweep, which such a
    daemon escapes. (The test kills its daemon itself.)"""
    m = marker()
    code = DAEMON.replace('[sys.executable, "-c"', '[sys.executable, "-c"').replace(
        "time.sleep(600)", "time.sleep(30)")
    try:
        outcome, findings = run("local:sweep", make_record(tmp_path, code), tmp_path, m, timeout=4)
        warn = [f for f in findings if f.rule_id == "PG-RUN-002"]
        assert len(warn) == 1 and warn[0].severity.value == "warning" and "misses a daemon" in warn[0].message
        assert outcome.details["isolation"]["processes"] == "sweep"
    finally:
        proctable.signal_all(with_marker(m), 9)


# ---- 2. a child that closes stdout and stderr, then sleeps ---------------------------------------
CLOSE_AND_SLEEP = """\
    import os, time
    print("closing my output", flush=True)
    os.close(1)
    os.close(2)
    time.sleep(600)
    """


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_closed_output_does_not_hang_the_harness_past_its_deadline(kind, tmp_path):
    m = marker()
    t0 = time.monotonic()
    outcome, findings = run(kind, make_record(tmp_path, CLOSE_AND_SLEEP), tmp_path, m, timeout=4)
    took = time.monotonic() - t0
    assert outcome.timed_out and outcome.stop_reason == "timeout"
    assert 4 <= outcome.wall_seconds < 4 + 8 and took < 30
    assert [ln.text for ln in outcome.lines] == ["closing my output"]
    timeout = next(f for f in findings if f.rule_id == "PG-TIME-106")
    assert "deadline of 4 s" in timeout.message
    assert_nothing_left(m)


# ---- 3. floods: 5 MB of bare newlines, one 100 MB line; the harness's peak RSS -------------------
FLOOD = """\
    import sys
    out = sys.stdout.buffer
    out.write(b"seed:1\\n")
    KIND
    out.write(b"\\nafter the flood\\n")
    out.flush()
    """
NEWLINES = "out.write(b'\\n' * (5 * 1024 * 1024))"
LONG_LINE = "[out.write(b'x' * (1024 * 1024)) for _ in range(100)]"
PEAK = ("import atexit, resource, runpy, sys; "
        "atexit.register(lambda: sys.stderr.write('PEAK_RSS_KB %d\\n' % int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]))); "
        "sys.argv = ['pgolf'] + sys.argv[1:]; runpy.run_module('harness.cli', run_name='__main__')")


def reproduce_peak(record: Path, out: Path, runner: str) -> tuple[int, dict, int]:
    """`pgolf reproduce` in a subprocess; (its own peak RSS in kB, the JSON report, exit code)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", PEAK, "reproduce", str(record), "--seeds", "1", "--launcher", "python",
                        "--runner", runner, "--out", str(out), "--format", "json", "--quiet", "--timeout", "120",
                        "--skip-input-check"],
                       capture_output=True, text=True, env=env, cwd=out.parent, timeout=300)
    peak = int(p.stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0])
    return peak, json.loads(p.stdout), p.returncode


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_output_floods_keep_the_harness_memory_bounded(kind, tmp_path):
    if kind == "docker":
        docker_available()
    quiet = make_record(tmp_path, FLOOD.replace("KIND", "pass"), "quiet")
    base, report, _ = reproduce_peak(quiet, tmp_path / "out-quiet", kind)
    assert report["data"]["seeds"][0]["status"] == "ok"
    for name, kind_code in (("newlines", NEWLINES), ("longline", LONG_LINE)):
        rec = make_record(tmp_path, FLOOD.replace("KIND", kind_code), name)
        peak, report, rc = reproduce_peak(rec, tmp_path / f"out-{name}", kind)
        print(f"{kind} {name}: harness peak RSS {peak / 1024:.0f} MB (quiet run {base / 1024:.0f} MB)")
        # measured here: +17 MB (local) and +19 MB (docker) for the newlines, +0 for the long line;
        # before the capture module, the newlines alone cost the harness 1.3 GB
        assert peak - base < 64 * 1024 and peak < 300 * 1024, (name, peak, base)
        assert report["data"]["seeds"][0]["status"] == "ok" and rc in (0, 1)
        run_id = json.loads((tmp_path / f"out-{name}" / "seed_1" / "result.json").read_text())["run_id"]
        assert proctable.with_env("RUN_ID", run_id) == []  # nothing of the run is left
        found = {f["id"]: f for f in report["findings"]}
        assert "PG-RUN-004" in found  # the cap is reported, with what was dropped
        log = (tmp_path / f"out-{name}" / "seed_1" / "train_seed1.log").read_text()
        assert log.startswith("seed:1\n") and len(log) < 40 * MB
        stamps = (tmp_path / f"out-{name}" / "seed_1" / "stamps_seed1.tsv").read_text().splitlines()
        assert len(stamps) == len(log.splitlines())  # one stamp per kept line
        if name == "longline":  # one cut line, then the line after it intact
            assert "more bytes of this line not kept" in log and log.rstrip("\n").endswith("after the flood")
            assert "104,8" in found["PG-RUN-004"]["message"] or "cut" in found["PG-RUN-004"]["message"]
        else:  # 200,000 lines kept, the rest counted
            assert "not kept" in found["PG-RUN-004"]["message"]


def test_line_breaks_the_parser_knows_cannot_shift_its_line_numbers(tmp_path):
    """A line full of \\x1c, \\f and \\r (str.splitlines breaks at each) stays one line, so the
    parser's line N is the stamp file's line N."""
    m = marker()
    code = """\
        import time
        print("seed:1" + "\\x1c\\x0c\\r\\u2028" * 50, flush=True)
        t0 = time.monotonic()
        print("step:0/2 val_loss:6.9 val_bpb:4.1 train_time:0ms step_avg:0ms", flush=True)
        time.sleep(1.0)
        print(f"step:2/2 val_loss:3.0 val_bpb:1.8 train_time:{(time.monotonic() - t0) * 1000:.0f}ms step_avg:1ms", flush=True)
        """
    outcome, findings = run("local", make_record(tmp_path, code), tmp_path, m)
    assert len(outcome.lines) == 3
    obs, log = observe(outcome, tmp_path / "rec")
    assert [s.line for s in log.steps] == [2, 3] and obs.train_stop_s == outcome.lines.stamp(2)
    assert "PG-TIME-101" not in ids(findings)


# ---- 4. a run that ignores SIGTERM ---------------------------------------------------------------
IGNORE_TERM = """\
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("SIGTERM is ignored here", flush=True)
    time.sleep(600)
    """


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_a_sigterm_ignoring_run_is_killed_and_its_message_names_the_real_deadline(kind, tmp_path):
    from harness.reproduce.report import build_report, render_text
    from harness.reproduce.seeds import ReproConfig, run_seeds

    if kind == "docker":
        docker_available()
    m = marker()
    rec = make_record(tmp_path, IGNORE_TERM)
    cfg = ReproConfig(record_dir=rec, out_dir=tmp_path / "out", seeds=[1], launcher="python", timeout_s=3,
                      runner=kind, env_extra={"ATTACK_MARKER": m})
    runner = make_runner(kind, **({"term_grace_s": 2.0, "warn": False} if kind == "local" else {}))
    results = run_seeds(cfg, runner=runner)
    assert results[0]["status"] == "timeout"
    report = build_report(cfg, results, with_plots=False)
    msg = next(f.message for f in report.findings if f.rule_id == "PG-TIME-106")
    assert "deadline of 3 s (set for this reproduction (--timeout))" in msg and "1230" not in msg
    sent = {name: float(t) for name, t in re.findall(r"(SIG[A-Z]+) at ([\d.]+) s", msg)}
    if kind == "local":  # SIGTERM at the deadline, ignored; SIGKILL after the 2 s grace
        assert 3.0 <= sent["SIGTERM"] < 4.5 and sent["SIGKILL"] - sent["SIGTERM"] >= 1.9, msg
        assert "outlived SIGTERM" in msg
    else:  # the budget is spent: the container is killed outright
        assert 3.0 <= sent["SIGKILL"] < 4.5 and "SIGTERM" not in sent, msg
    assert "PG-TIME-106" in render_text(report)
    assert_nothing_left(m)


# ---- 5. a fork bomb, bounded by pids.max in the container ----------------------------------------
FORK_BOMB = """\
    import errno, os, sys, time
    limit = "?"
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
        if os.path.exists(path):
            limit = open(path).read().strip()
    print(f"pids.max {limit}", flush=True)
    if sys.argv[2:] == ["bomb"]:
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                n += 1
        except OSError as e:
            print(f"fork failed after {n} children: {errno.errorcode.get(e.errno)}", flush=True)
    """


def test_a_fork_bomb_meets_the_pids_limit_in_docker(tmp_path):
    docker_available()
    from harness.runners.docker import DEFAULT_PIDS_LIMIT, DockerRunner

    assert DockerRunner().pids_limit == DEFAULT_PIDS_LIMIT == 4096
    m = marker()
    rec = make_record(tmp_path, FORK_BOMB)
    outcome, _ = run("docker", rec, tmp_path / "default", m)  # the default limit, seen from inside
    assert outcome.lines[0].text == "pids.max 4096"
    spec_dir = tmp_path / "bomb"
    runner = make_runner("docker", pids_limit=64)
    spec = RunSpec(record_dir=rec, workdir=spec_dir / "work", seed=1, env={"SEED": "1", "ATTACK_MARKER": m},
                   timeout_s=60, argv=("python", "train_gpt.py", m, "bomb"))
    handle = runner.start(runner.prepare(spec))
    outcome = runner.collect(handle)
    texts = [ln.text for ln in outcome.lines]
    assert texts[0] == "pids.max 64"
    failed = next(t for t in texts if t.startswith("fork failed"))
    n = int(failed.split()[3])
    assert 40 <= n < 64 and failed.endswith("EAGAIN")  # init, python and the children share 64
    assert outcome.exit_code == 0 and not outcome.timed_out
    assert_nothing_left(m)


# ---- 6. writing past the work folder's bound in the container ------------------------------------
FILL = """\
    import errno
    written = 0
    try:
        with open("fill.bin", "wb") as f:
            block = b"\\1" * (1 << 20)
            while written < (256 << 20):
                f.write(block)
                f.flush()
                written += len(block)
        print(f"wrote {written} bytes", flush=True)
    except OSError as e:
        print(f"stopped after {written} bytes: {errno.errorcode.get(e.errno)}", flush=True)
    """


def test_writes_past_the_work_folder_bound_fail_inside_the_container(tmp_path):
    docker_available()
    from harness.runners.docker import DockerRunner
    from harness.runners.workdir import loop_unavailable

    assert DockerRunner().work_size == 8 * 1024**3
    if loop_unavailable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no loop-mounted work folder under CI: {loop_unavailable()}")
        pytest.skip(loop_unavailable())
    m = marker()
    outcome, findings = run("docker", make_record(tmp_path, FILL), tmp_path, m, work_size="32m")
    text = outcome.lines[-1].text
    assert text.startswith("stopped after") and text.endswith("ENOSPC"), text
    assert int(text.split()[2]) <= 32 * MB
    usage = outcome.details["work_bound"]
    assert usage["bound_bytes"] == 32 * MB and usage["used_bytes"] <= 32 * MB
    work = tmp_path / "seed_1" / "work"
    assert (work / "fill.bin").stat().st_size == outcome.files["fill.bin"] <= 32 * MB  # copied back, measured
    assert not (tmp_path / "seed_1" / ".work.img").exists() and not os.path.ismount(tmp_path / "seed_1" / ".work.bound")
    assert "PG-RUN-003" not in ids(findings)
    assert_nothing_left(m)


# ---- 7. links inside the record -----------------------------------------------------------------
LINK_READER = """\
    import os
    for name in ("hostname_link", "etc_link/hostname", "fifo"):
        print(name, "present" if os.path.lexists(name) else "absent", flush=True)
    """


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_links_in_a_record_are_not_copied_and_are_findings(kind, tmp_path):
    m = marker()
    rec = make_record(tmp_path, LINK_READER)
    os.symlink("/etc/hostname", rec / "hostname_link")
    os.symlink("/etc", rec / "etc_link")
    os.mkfifo(rec / "fifo")
    (rec / "helper.py").symlink_to("/etc/passwd")  # counted code must not follow it either
    outcome, findings = run(kind, rec, tmp_path, m)
    assert [ln.text for ln in outcome.lines] == ["hostname_link absent", "etc_link/hostname absent", "fifo absent"]
    skipped = [f for f in findings if f.rule_id == "PG-RUN-005"]
    assert sorted(f.data["path"] for f in skipped) == ["etc_link", "fifo", "helper.py", "hostname_link"]
    assert all(f.severity.value == "warning" for f in skipped)
    obs, _ = observe(outcome, rec)
    assert obs.code_files == {"train_gpt.py": (rec / "train_gpt.py").stat().st_size}
    assert_nothing_left(m)


# ---- isolation is said out loud ------------------------------------------------------------------
def test_the_local_runner_warns_on_every_run(tmp_path):
    m = marker()
    rec = make_record(tmp_path, "print('hello', flush=True)\n")
    p = subprocess.run([sys.executable, "-m", "harness.cli", "reproduce", str(rec), "--seeds", "1,2", "--launcher",
                        "python", "--runner", "local", "--out", str(tmp_path / "out"), "--format", "json",
                        "--skip-input-check"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert p.stderr.count("the local runner does not isolate the run") == 2, p.stderr
    assert "runner: local: asked for with --runner local" in p.stderr
    report = json.loads(p.stdout)
    warns = [f for f in report["findings"] if f["id"] == "PG-RUN-001"]
    assert len(warns) == 2 and all(f["severity"] == "warning" for f in warns)
    assert "network" in warns[0]["message"] and "data folder" in warns[0]["message"]
    assert report["data"]["runner_chosen"]["runner"] == "local"


def test_reproduce_chooses_docker_when_an_engine_and_the_image_are_there(tmp_path):
    from harness.runners import choose_runner

    assert choose_runner("local")[0] == "local"

    class NoEngine:
        def ping(self):
            raise ConnectionError("no engine")

    name, why = choose_runner("auto", client=NoEngine())
    assert name == "local" and "no Docker engine answers" in why
    docker_available()
    name, why = choose_runner("auto")
    assert name == "docker" and "pinned image" in why
    name, why = choose_runner("auto", image="pgolf-cpu:000000000000")
    assert name == "local" and "not built" in why


def test_forged_datagrams_to_the_audit_socket_only_add_sightings(tmp_path):
    """The run can write to the harness's audit socket; garbage, huge numbers and a flood are
    read as bounded text and never stop the channel."""
    m = marker()
    data = tmp_path / "data"
    data.mkdir()
    (data / "fineweb_train_000000.bin").write_bytes(b"x" * 100)
    code = """\
        import os, socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        target = os.environ["PGOLF_AUDIT_SOCKET"]
        for msg in (b"garbage", b"open\\t" + b"9" * 5000 + b"\\t/x", b"\\xff\\t1\\t\\xfe" * 100):
            s.sendto(msg, target)
        for i in range(20000):  # a flood of made-up files
            try:
                s.sendto(b"open\\t1\\t/made/up/fineweb_train_%06d.bin" % i, target)
            except BlockingIOError:
                pass
        with open(os.path.join(os.environ["DATA_PATH"], "fineweb_train_000000.bin"), "rb") as f:
            f.read()
        print("done", flush=True)
        """
    outcome, findings = run("local", make_record(tmp_path, code), tmp_path, m, data=data)
    access = outcome.details["data_access"]
    assert "error" not in access["channels"], access["channels"]
    assert access["train"]["kernel"]["files"] == 1  # the kernel saw the one real read
    assert access["train"]["hook"]["files"] == 1  # paths outside the data folder are not the hook's
    assert len(access["recent"]) <= 64
    assert_nothing_left(m)
