"""The Docker runner against a real engine and the pinned CPU image.

A probe script runs inside the container (through torchrun, as a submission would) and reports
what it could do; the tests assert the isolation from its report and the runner's outcome.
Without a reachable engine or the pinned image these tests skip with the reason, except under
CI=true, where .ci/run has set both up (containers/ci-setup-docker.sh) and their absence fails.
"""
from __future__ import annotations

import json
import os
import socket
import textwrap
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.runners import make_runner
from harness.runners.base import RunSpec

PROBE = textwrap.dedent(
    """
    import errno, json, os, socket, sys, time
    host_addrs = json.loads(os.environ["PROBE_HOST_ADDRS"])
    report = {"uid": os.getuid(), "gid": os.getgid(), "interfaces": sorted(os.listdir("/sys/class/net"))}
    status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    report["cap_eff"] = status["CapEff"].strip()
    report["cap_bnd"] = status["CapBnd"].strip()
    report["no_new_privs"] = status["NoNewPrivs"].strip()
    connects = {}
    for host, port in host_addrs:
        try:
            socket.create_connection((host, port), timeout=3).close()
            connects[f"{host}:{port}"] = "connected"
        except OSError as e:
            connects[f"{host}:{port}"] = errno.errorcode.get(e.errno, str(e))
    report["connects"] = connects
    try:
        socket.getaddrinfo("pypi.org", 443)
        report["dns"] = "resolved"
    except OSError as e:
        report["dns"] = type(e).__name__
    def try_write(path):
        try:
            with open(path, "w") as f:
                f.write("x")
            return "written"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e))
    report["read_data"] = open(os.path.join(os.environ["DATA_PATH"], "shard.bin"), "rb").read().decode()
    report["write_data"] = try_write(os.path.join(os.environ["DATA_PATH"], "planted.txt"))
    report["write_rootfs"] = try_write("/opt/planted.txt")
    report["write_tmp"] = try_write("/tmp/scratch.txt")
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
        if os.path.exists(path):
            report["pids_max"] = open(path).read().strip()
    st = os.statvfs(".")
    report["work_fs_bytes"] = st.f_blocks * st.f_frsize
    report["audit_hook"] = "sitecustomize" in sys.modules and bool(os.environ.get("PGOLF_AUDIT_SOCKET"))
    import torch
    report["torch"] = torch.__version__
    report["seed"] = os.environ["SEED"]
    with open("artifact.bin", "wb") as f:
        f.write(b"\\0" * 12345)
    print("probe-first", flush=True)
    time.sleep(1.0)
    print("probe-second", flush=True)
    print("probe-stderr", file=sys.stderr, flush=True)
    print("PROBE " + json.dumps(report), flush=True)
    """
)

SLEEPER = textwrap.dedent(
    """
    import time
    print("sleeper-started", flush=True)
    time.sleep(120)
    print("sleeper-finished", flush=True)
    """
)


def _require(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: containers/ci-setup-docker.sh should have provided it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def client():
    try:
        import docker

        c = docker.from_env(timeout=120)
        c.ping()
    except Exception as e:  # noqa: BLE001
        _require(f"no Docker engine reachable ({type(e).__name__}); run `bash containers/ci-setup-docker.sh`")
    return c


@pytest.fixture(scope="module")
def pinned(client) -> str:
    from harness.containers import pinned_image

    tag = pinned_image("cpu")
    if not client.images.list(name=tag):
        _require(f"pinned image {tag} not built; run `pgolf containers build --cpu`")
    return tag


def _run(tmp: Path, script: str, seed: int, timeout_s: float, env: dict | None = None, argv: tuple = ()):
    record, data = tmp / "record", tmp / "data"
    record.mkdir()
    data.mkdir()
    (record / "train_gpt.py").write_text(script)
    (data / "shard.bin").write_bytes(b"data")
    spec = RunSpec(record_dir=record, workdir=tmp / f"seed_{seed}", seed=seed,
                   env={"SEED": str(seed), "DATA_PATH": str(data), **(env or {})},
                   data_dir=data, timeout_s=timeout_s, argv=argv)
    runner = make_runner("docker")
    handle = runner.start(runner.prepare(spec))
    streamed = list(runner.stream(handle))
    return runner.collect(handle), streamed, spec


def _host_addresses() -> list[str]:
    """The host's own non-loopback address (the route to the outside), if it has one."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        return [s.getsockname()[0]]
    except OSError:
        return []
    finally:
        s.close()


@pytest.fixture(scope="module")
def probe(pinned, client, tmp_path_factory):
    """One container run of PROBE while the host listens on a port of its own."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    targets = [["127.0.0.1", port], ["1.1.1.1", 53], ["151.101.0.223", 443]]
    targets += [[a, port] for a in _host_addresses()]
    try:
        outcome, streamed, spec = _run(tmp_path_factory.mktemp("probe"), PROBE, seed=7, timeout_s=120,
                                       env={"PROBE_HOST_ADDRS": json.dumps(targets)})
    finally:
        listener.close()
    reports = [json.loads(l.text[len("PROBE "):]) for l in outcome.lines if l.text.startswith("PROBE ")]
    assert outcome.exit_code == 0, "\n".join(l.text for l in outcome.lines[-30:])
    assert len(reports) == 1
    return {"outcome": outcome, "streamed": streamed, "spec": spec, "report": reports[0],
            "targets": targets}


def test_no_network_only_loopback(probe):
    report = probe["report"]
    assert report["interfaces"] == ["lo"]
    assert len(report["connects"]) == len(probe["targets"]) >= 3
    for target, result in report["connects"].items():
        assert result != "connected", target
    # the host listens on this port; inside, 127.0.0.1 is the container's own loopback
    assert report["connects"][f"127.0.0.1:{probe['targets'][0][1]}"] == "ECONNREFUSED"
    assert report["dns"] == "gaierror"


def test_data_mount_and_root_fs_are_read_only(probe):
    report = probe["report"]
    assert report["read_data"] == "data"  # readable by the sandbox user
    assert report["write_data"] == "EROFS"
    assert report["write_rootfs"] == "EROFS"
    assert report["write_tmp"] == "written"
    assert not (probe["spec"].data_dir / "planted.txt").exists()


def test_no_capabilities_non_root(probe):
    report = probe["report"]
    assert int(report["cap_eff"], 16) == 0
    assert int(report["cap_bnd"], 16) == 0
    assert report["no_new_privs"] == "1"
    assert report["uid"] != 0 and report["gid"] != 0


def test_lines_streamed_with_harness_stamps(probe):
    outcome, streamed = probe["outcome"], probe["streamed"]
    assert [l.text for l in streamed] == [l.text for l in outcome.lines]
    by_text = {l.text: l for l in outcome.lines}
    first, second = by_text["probe-first"], by_text["probe-second"]
    # stamped on arrival: the sleep between the prints shows in the stamps
    assert 0.9 <= second.t - first.t < 5.0
    assert by_text["probe-stderr"].stream == "stderr" and first.stream == "stdout"
    stamps = [l.t for l in outcome.lines]
    assert stamps == sorted(stamps) and 0 < stamps[0] <= outcome.wall_seconds


def test_real_default_limits_seen_from_inside(probe):
    """pids.max is 4,096, not the host's pid_max; the work folder is its own 8 GiB filesystem
    (where the harness is root); the audit hook is installed in the run's Python."""
    from harness.runners.workdir import loop_unavailable

    report, details = probe["report"], probe["outcome"].details
    assert report["pids_max"] == "4096" and details["limits"]["pids"] == 4096
    assert 0 < details["limits"]["memory_bytes"] < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if loop_unavailable() is None:
        assert 7.5 * 1024**3 < report["work_fs_bytes"] <= 8 * 1024**3
        assert details["work_bound"]["bound_bytes"] == 8 * 1024**3 and details["work_bound_missing"] is None
    else:
        assert details["work_bound"] is None and details["work_bound_missing"] == loop_unavailable()
    assert report["audit_hook"] is True
    assert details["data_access"]["train"]["hook"]["files"] == 0  # shard.bin is not a training shard


def test_collects_files_written_to_workdir(probe):
    outcome = probe["outcome"]
    assert outcome.files["artifact.bin"] == 12345
    assert "artifact.bin" in outcome.details["files_written"]
    assert "train_gpt.py" not in outcome.details["files_written"]
    assert outcome.runner == "docker" and not outcome.timed_out and outcome.stop_reason is None


def test_image_is_the_pinned_one(probe, client, pinned):
    from harness.containers import RECIPES

    image = client.images.get(pinned)
    assert probe["outcome"].details["image"] == image.id
    assert image.labels["org.pgolf.recipe-digest"] == RECIPES["cpu"].digest()
    locked_torch = next(w["version"] for w in RECIPES["cpu"].lock()["wheels"] if w["name"] == "torch")
    assert probe["report"]["torch"] == locked_torch == image.labels["org.pgolf.torch"]


def test_over_budget_is_killed_and_container_removed(pinned, client, tmp_path):
    # plain python (no torchrun) so that the first line comes well inside the budget on a busy machine
    marker = f"pgolf-sleeper-{os.getpid()}-{tmp_path.name}"  # an argument to find it in the process table
    outcome, streamed, _ = _run(tmp_path, SLEEPER, seed=3, timeout_s=8, argv=("python", "train_gpt.py", marker))
    assert outcome.timed_out and outcome.stop_reason == "timeout"
    assert outcome.exit_code == 137  # SIGKILL
    assert 8 <= outcome.wall_seconds < 40
    texts = [l.text for l in streamed]
    assert "sleeper-started" in texts and "sleeper-finished" not in texts
    name = outcome.details["container"]
    assert client.containers.list(all=True, filters={"name": name}) == []
    assert _processes_with(marker) == []


def _processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains marker (containers' processes are visible here)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_interrupt_stops_the_container(pinned, client, tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    (record / "train_gpt.py").write_text(SLEEPER)
    spec = RunSpec(record_dir=record, workdir=tmp_path / "w", seed=4, env={"SEED": "4"}, timeout_s=120)
    runner = make_runner("docker", stop_grace_s=3)
    handle = runner.start(runner.prepare(spec))
    for line in runner.stream(handle):
        if line.text == "sleeper-started":
            runner.stop(handle, "interrupt")  # what reproduce does on Ctrl-C
    outcome = runner.collect(handle)
    assert outcome.stop_reason == "interrupt" and not outcome.timed_out
    assert outcome.exit_code not in (0, None)
    assert outcome.wall_seconds < 60
    assert client.containers.list(all=True, filters={"name": outcome.details["container"]}) == []


def test_no_run_containers_left(probe, client):
    from harness.runners.docker import RUN_LABEL

    mine = [c for c in client.containers.list(all=True, filters={"label": RUN_LABEL})
            if c.labels.get("org.pgolf.harness-pid") == str(os.getpid())]
    assert mine == []


def test_make_runner_names():
    assert make_runner("docker").name == "docker"
    with pytest.raises(InputError, match="unknown runner"):
        make_runner("kubernetes")


def test_missing_image_is_an_input_error(client, tmp_path):
    (tmp_path / "rec").mkdir()
    spec = RunSpec(record_dir=tmp_path / "rec", workdir=tmp_path / "w", seed=1, env={})
    with pytest.raises(InputError, match="pgolf containers build"):
        make_runner("docker", image="pgolf-cpu:000000000000").prepare(spec)


def test_containers_list_marks_pinned(pinned, capsys):
    from harness.cli import main

    assert main(["containers", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["tag"] == pinned and r["pinned"] and r["kind"] == "cpu" for r in rows)


def test_read_only_inputs_cover_data_and_tokenizer(tmp_path):
    from harness.runners.docker import read_only_inputs

    data, tok, work = tmp_path / "data" / "ds", tmp_path / "tok" / "sp.model", tmp_path / "work"
    data.mkdir(parents=True)
    tok.parent.mkdir()
    tok.write_text("m")
    (work / "local").mkdir(parents=True)
    env = {"DATA_PATH": str(data), "TOKENIZER_PATH": str(tok)}
    spec = RunSpec(record_dir=tmp_path, workdir=work, seed=1, env=env, data_dir=data.parent)
    assert read_only_inputs(spec, work) == [data.parent, tok]  # DATA_PATH lies inside data_dir
    inside = RunSpec(record_dir=tmp_path, workdir=work, seed=1, env={"DATA_PATH": str(work / "local")})
    assert read_only_inputs(inside, work) == []  # already in the writable work directory


def test_prune_removes_containers_of_dead_harnesses(pinned, client, capsys):
    from harness.cli import main
    from harness.runners.docker import RUN_LABEL

    dead_pid = 4_194_303  # above pid_max's default range: no such process
    assert not Path(f"/proc/{dead_pid}").exists()
    orphan = client.containers.create(pinned, ["true"], network_mode="none",
                                      labels={RUN_LABEL: "1", "org.pgolf.harness-pid": str(dead_pid)})
    alive = client.containers.create(pinned, ["true"], network_mode="none",
                                     labels={RUN_LABEL: "1", "org.pgolf.harness-pid": str(os.getpid())})
    try:
        assert main(["containers", "prune"]) == 0
        assert f"removed {orphan.name}" in capsys.readouterr().out
        names = [c.name for c in client.containers.list(all=True, filters={"label": RUN_LABEL})]
        assert orphan.name not in names and alive.name in names  # a live harness's run is kept
    finally:
        for c in (orphan, alive):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - already removed by the prune
                pass


SHAPE_SHIFTER = textwrap.dedent(
    """
    import os, shutil
    shutil.rmtree("ckpt")              # a folder becomes a file
    open("ckpt", "w").write("now a file")
    os.remove("notes.txt")             # a file becomes a folder
    os.mkdir("notes.txt")
    open("notes.txt/part0", "w").write("p0")
    print("reshaped", flush=True)
    """
)


def test_a_run_that_turns_files_into_folders_is_collected_and_its_mount_released(pinned, tmp_path):
    from harness.runners.workdir import loop_unavailable

    if loop_unavailable():
        _require(f"no loop-mounted work folder: {loop_unavailable()}")
    record = tmp_path / "record"
    (record / "ckpt").mkdir(parents=True)
    (record / "ckpt" / "old.pt").write_bytes(b"old")
    (record / "notes.txt").write_text("notes")
    (record / "train_gpt.py").write_text(SHAPE_SHIFTER)
    work = tmp_path / "seed_5"
    spec = RunSpec(record_dir=record, workdir=work, seed=5, env={"SEED": "5"}, timeout_s=120,
                   argv=("python", "train_gpt.py"))
    runner = make_runner("docker", work_size="64m")
    handle = runner.start(runner.prepare(spec))
    assert os.path.ismount(handle.prepared.bound.mountpoint)
    outcome = runner.collect(handle)
    assert outcome.exit_code == 0 and [ln.text for ln in outcome.lines] == ["reshaped"]
    assert (work / "ckpt").read_text() == "now a file"
    assert (work / "notes.txt" / "part0").read_text() == "p0"
    assert {"ckpt", "notes.txt/part0"} <= set(outcome.details["files_written"])
    assert not os.path.ismount(tmp_path / ".seed_5.bound") and not (tmp_path / ".seed_5.img").exists()


@pytest.mark.parametrize("gpus", ["two", "0", -1, "1.5"])
def test_a_bad_gpu_count_is_refused_when_the_runner_is_made(gpus):
    with pytest.raises(InputError, match="gpus must be 'all' or a count"):
        make_runner("docker", gpus=gpus)
    assert make_runner("docker", gpus="2").gpu_count == 2 and make_runner("docker", gpus="all").gpu_count == -1


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_prepare_that_fails_after_mounting_releases_the_mount_and_the_watch(pinned, tmp_path, monkeypatch):
    """A failure late in prepare (here the import of reference_impl, which prepare mounts on
    request) must not leave the loop-mounted work folder or its image behind, nor a descriptor."""
    import sys

    from harness.runners.workdir import loop_unavailable

    if loop_unavailable():
        _require(f"no loop-mounted work folder: {loop_unavailable()}")
    record, data = tmp_path / "record", tmp_path / "data"
    record.mkdir()
    data.mkdir()
    (record / "train_gpt.py").write_text("print('never')\n")
    spec = RunSpec(record_dir=record, workdir=tmp_path / "w", seed=1, env={"DATA_PATH": str(data)}, data_dir=data)
    runner = make_runner("docker", work_size="16m", share_reference_impl=True)
    runner._release(runner.prepare(spec))  # once, so that lazily opened descriptors (the engine's connection) are open
    monkeypatch.setitem(sys.modules, "reference_impl", None)  # `import reference_impl` now raises ImportError
    fds = _open_fds()
    sockets = set(Path("/tmp").glob(f"pgolf-audit-{os.getpid()}-*"))
    with pytest.raises(ImportError):
        runner.prepare(spec)
    assert not os.path.ismount(tmp_path / ".w.bound") and not (tmp_path / ".w.img").exists()
    assert set(Path("/tmp").glob(f"pgolf-audit-{os.getpid()}-*")) <= sockets
    assert _open_fds() <= fds


def test_env_added_is_what_the_runner_set_beyond_the_spec(probe):
    added = probe["outcome"].details["env_added"]
    assert set(added) == {"PYTHONPATH", "PGOLF_AUDIT_SOCKET", "PGOLF_AUDIT_PATHS"}  # the audit hook's, no more
    assert not set(added) & set(probe["spec"].env)  # SEED, DATA_PATH, PROBE_HOST_ADDRS: set on purpose, not added
