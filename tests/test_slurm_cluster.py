"""The Slurm runner and `pgolf queue` against a real single-node Slurm cluster on this machine
(Debian's munge, slurmctld and slurmd, started by containers/ci-setup-slurm.sh).

Each test runs the real CLI in a child process, so the harness can be interrupted, killed and
restarted like a user's. The cluster is configured to declare a silent slurmd dead within seconds
(SlurmdTimeout=6), so a killed slurmd is a NODE_FAIL the test can wait for. Without the cluster
these tests skip with the reason, except under CI=true, where .ci/run has started it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.runners import proctable

REPO = Path(__file__).resolve().parent.parent
SLEEPY = Path(__file__).parent / "fixtures" / "slurm" / "sleepy"
SETUP = REPO / "containers" / "ci-setup-slurm.sh"

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

TEST_CONFIG = """\
[slurm]
exclusive = false      # two CPUs: let two seeds share the node
cpus_per_task = 1
poll_s = 0.2
state_poll_s = 0.5
settle_grace_s = 1.0
time_margin_s = 60
"""


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and p.stdout.strip() != ""


@pytest.fixture
def cluster() -> None:
    """The cluster up, slurmd alive and the node usable before each test (a test kills slurmd)."""
    if not _cluster_answers():
        msg = "no Slurm cluster answers: run `bash containers/ci-setup-slurm.sh` (root, Debian)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    subprocess.run(["bash", str(SETUP)], check=True, capture_output=True, timeout=120)
    yield
    subprocess.run(["bash", str(SETUP), "--start-slurmd"], capture_output=True, timeout=60)


@pytest.fixture
def sleepy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The test record, its data folder (which steers it), and a cluster config for the tests."""
    rec = tmp_path / "sleepy"
    shutil.copytree(SLEEPY, rec)
    data = tmp_path / "data"
    data.mkdir()
    conf = tmp_path / "pgolf.toml"
    conf.write_text(TEST_CONFIG)
    return rec, data, conf


def queue(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "queue", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def queue_args(rec: Path, data: Path, conf: Path, out: Path, seeds: str = "1,2") -> list[str]:
    return [str(rec), "--seeds", seeds, "--launcher", "python", "--data", str(data), "--out", str(out),
            "--config", str(conf), "--format", "json", "--skip-input-check"]  # the data folder only steers the fixture


def starts(data: Path) -> list[str]:
    p = data / "starts.txt"
    return p.read_text().split() if p.exists() else []


def attempts(out: Path, seed: int) -> list[dict]:
    p = out / "sleepy" / "slurm" / f"seed_{seed}" / "jobs.json"
    return json.loads(p.read_text())["attempts"] if p.exists() else []


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def running_with_a_line(out: Path, seed: int) -> bool:
    a = attempts(out, seed)
    if not a or not a[-1].get("job_id"):
        return False
    journal = out / "sleepy" / "slurm" / f"seed_{seed}" / f"journal-{a[-1]['job_id']}.tsv"
    return journal.exists() and len(journal.read_text().splitlines()) >= 3


def start_with_slow_seed_1(sleepy, tmp_path: Path, seconds: float = 120) -> tuple[subprocess.Popen, Path]:
    """`pgolf queue` on seeds 1 and 2, seed 1 sleeping `seconds` mid-run; returns once seed 1's
    job runs and has stamped its first lines."""
    rec, data, conf = sleepy
    (data / "sleep_1").write_text(str(seconds))
    out = tmp_path / "q"
    p = queue(*queue_args(rec, data, conf, out))
    wait_for(lambda: running_with_a_line(out, 1), what="seed 1 running")
    return p, out


def job_state(job_id: str) -> str:
    p = subprocess.run(["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return p.stdout.strip()


def report(out: Path) -> dict:
    return json.loads((out / "sleepy" / "report.json").read_text())


def finding_ids(rep: dict) -> list[str]:
    return [f["id"] for f in rep["findings"]]


def errors(rep: dict) -> set[str]:
    """Error ids of a report and its children (the checks on the reproduced logs)."""
    found = {f["id"] for f in rep["findings"] if f["severity"] == "error"}
    return found | {f["id"] for c in rep.get("children", []) for f in c["findings"] if f["severity"] == "error"}


def test_a_seed_that_exits_1_fails_once_and_is_not_retried(cluster, sleepy, tmp_path):
    rec, data, conf = sleepy
    (data / "exit_2").write_text("1")
    out = tmp_path / "q"
    p = queue(*queue_args(rec, data, conf, out))
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr  # the record's report FAILs: seed 2's script exited 1
    assert "PG-REPRO-001" in errors(report(out))
    summary = json.loads(stdout)["records"][0]
    assert summary["statuses"] == {"1": "ok", "2": "failed"} and summary["resubmitted"] == 0
    assert sorted(starts(data)) == ["1", "2"]  # seed 2 ran once
    assert len(attempts(out, 2)) == 1
    rep = report(out)
    failed = [f for f in rep["findings"] if f["id"] == "PG-REPRO-001"]
    assert len(failed) == 1 and "seed 2: exited with status 1" in failed[0]["message"]
    assert "PG-SLURM-001" not in finding_ids(rep)
    assert json.loads((out / "sleepy" / "seed_2" / "result.json").read_text())["exit_code"] == 1


def test_a_job_cancelled_from_outside_reads_cancelled_and_leaves_nothing(cluster, sleepy, tmp_path):
    data = sleepy[1]
    p, out = start_with_slow_seed_1(sleepy, tmp_path)
    run_id = json.loads((out / "sleepy" / "seed_1" / "running.json").read_text())["run_id"]
    assert proctable.with_env("RUN_ID", run_id)
    job_id = attempts(out, 1)[0]["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr  # nothing failed; the cancelled seed is REVIEW
    assert job_state(job_id) == "CANCELLED"
    assert json.loads(stdout)["records"][0]["statuses"] == {"1": "cancelled", "2": "ok"}
    assert len(attempts(out, 1)) == 1 and starts(data).count("1") == 1  # not retried
    wait_for(lambda: not proctable.with_env("RUN_ID", run_id), timeout=20, what="the run's processes to end")
    rep = report(out)
    cancelled = [f for f in rep["findings"] if f["id"] == "PG-SLURM-003"]
    assert len(cancelled) == 1 and "from outside pgolf" in cancelled[0]["message"] and cancelled[0].get("undecided")
    assert "PG-REPRO-001" not in finding_ids(rep) and rep["verdict"] == "REVIEW"
    log = (out / "sleepy" / "seed_1" / "train_seed1.log").read_text()
    assert log.startswith("seed:1\nstep:0/10")  # the lines the job stamped before it was cancelled


def test_a_killed_slurmd_is_a_node_failure_and_the_seed_is_resubmitted_once(cluster, sleepy, tmp_path):
    data = sleepy[1]
    p, out = start_with_slow_seed_1(sleepy, tmp_path)
    first = attempts(out, 1)[0]["job_id"]
    wait_for(lambda: (out / "sleepy" / "seed_2" / "result.json").exists(), what="seed 2 to finish first")
    os.kill(int(Path("/run/slurmd.pid").read_text()), signal.SIGKILL)
    (data / "sleep_1").unlink()  # the resubmitted run is quick
    # slurmctld declares the node down after SlurmdTimeout (10 s): about 20 s here, up to ~80 s when
    # its ping of the dead slurmd happens to hang for a minute first (seen 1 time in 5)
    wait_for(lambda: len(attempts(out, 1)) == 2 and attempts(out, 1)[1].get("job_id"), timeout=180,
             what="the resubmission after NODE_FAIL")
    subprocess.run(["bash", str(SETUP), "--start-slurmd"], check=True, capture_output=True, timeout=60)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1 and errors(report(out)) == {"PG-SEEDS-001"}, stderr  # two seeds of the three asked
    a = attempts(out, 1)
    assert a[0]["job_id"] == first and a[0]["end_state"] == "NODE_FAIL" and len(a) == 2
    summary = json.loads(stdout)["records"][0]
    assert summary["statuses"] == {"1": "ok", "2": "ok"} and summary["resubmitted"] == 1
    assert len(attempts(out, 2)) == 1 and sorted(starts(data)) == ["1", "1", "2"]
    rep = report(out)
    resub = [f for f in rep["findings"] if f["id"] == "PG-SLURM-001"]
    assert len(resub) == 1 and f"job {first}" in resub[0]["message"] and "NODE_FAIL" in resub[0]["message"]
    assert rep["data"]["seeds"][0]["reproduced_bpb"] == 1.8001
    assert "resubmitting once" in stderr


def test_a_killed_harness_reattaches_to_its_jobs_on_restart(cluster, sleepy, tmp_path):
    data, conf = sleepy[1], sleepy[2]
    p, out = start_with_slow_seed_1(sleepy, tmp_path, seconds=6)
    p.kill()  # SIGKILL: the harness cannot say goodbye
    p.communicate(timeout=10)
    job_id = attempts(out, 1)[0]["job_id"]
    assert job_state(job_id) in ("RUNNING", "COMPLETING", "COMPLETED")  # the job does not depend on the harness
    p = queue("--out", str(out), "--config", str(conf), "--format", "json")  # follow the queue on disk
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1 and errors(report(out)) == {"PG-SEEDS-001"}, stderr  # two seeds of the three asked
    assert json.loads(stdout)["records"][0]["statuses"] == {"1": "ok", "2": "ok"}
    assert [len(attempts(out, s)) for s in (1, 2)] == [1, 1] and sorted(starts(data)) == ["1", "2"]
    assert attempts(out, 1)[0]["job_id"] == job_id
    rep = report(out)
    assert [s["reproduced_bpb"] for s in rep["data"]["seeds"]] == [1.8001, 1.8002]
    assert rep["data"]["seeds"][0]["observed_train_s"] >= 6.0  # the job's own clock saw the whole run


def test_queue_cancel_stops_every_job_it_submitted(cluster, sleepy, tmp_path):
    rec, data, conf = sleepy
    for s in (1, 2):
        (data / f"sleep_{s}").write_text("120")
    out = tmp_path / "q"
    p = queue(*queue_args(rec, data, conf, out), "--submit-only")
    p.communicate(timeout=60)
    ids = [attempts(out, s)[0]["job_id"] for s in (1, 2)]
    wait_for(lambda: all(job_state(i) == "RUNNING" for i in ids), what="both jobs running")
    p = queue("--out", str(out), "--config", str(conf), "--cancel", "--format", "json")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert f"cancelled 2 job(s): {' '.join(ids)}" in stderr
    assert [job_state(i) for i in ids] == ["CANCELLED", "CANCELLED"]
    assert json.loads(stdout)["records"][0]["statuses"] == {"1": "cancelled", "2": "cancelled"}
    msgs = [f["message"] for f in report(out)["findings"] if f["id"] == "PG-SLURM-003"]
    assert len(msgs) == 2 and all("by `pgolf queue --cancel`" in m for m in msgs)


def test_a_submission_whose_job_id_was_never_written_is_found_by_its_token(cluster, tmp_path):
    """A harness killed between `sbatch` and writing the job id: the next one finds the job by the
    token in its comment; a token Slurm never saw means sbatch never ran: submit again."""
    from harness.queue.plan import plan_record
    from harness.queue.config import ClusterConfig
    from harness.reproduce.seeds import ReproConfig
    from harness.runners.slurm import SlurmRunner, load_attempts, save_attempts

    shutil.copytree(SLEEPY, tmp_path / "sleepy")
    cfg = ReproConfig(record_dir=tmp_path / "sleepy", out_dir=tmp_path / "out", seeds=[1], launcher="python")
    job = plan_record(cfg, "sleepy", ClusterConfig()).jobs()[0]
    runner = SlurmRunner(ClusterConfig())
    prepared = runner.prepare(job)
    save_attempts(job.slurm_dir, [{"attempt": 1, "token": prepared.token, "job_id": None}])
    job_id = subprocess.run(["sbatch", "--parsable", f"--comment=pgolf:{prepared.token}", f"--output={tmp_path}/%j.out",
                             "--wrap", "true"],
                            capture_output=True, text=True, check=True).stdout.strip()
    handle = runner.reattach(job)
    assert handle is not None and handle.job_id == job_id and load_attempts(job.slurm_dir)[0]["job_id"] == job_id
    save_attempts(job.slurm_dir, [{"attempt": 1, "token": "never-submitted", "job_id": None}])
    assert runner.reattach(job) is None and load_attempts(job.slurm_dir) == []


def test_the_runner_protocol_streams_the_jobs_stamped_lines(cluster, sleepy, tmp_path):
    """SlurmRunner as a Runner: prepare, start (sbatch), stream (the job's journal as it grows),
    collect (a RunOutcome with the job's own stamps and Slurm's end state)."""
    from harness.queue.config import load_config
    from harness.queue.plan import plan_record
    from harness.reproduce.seeds import ReproConfig
    from harness.runners.slurm import SlurmRunner

    rec, data, conf = sleepy
    cfg = ReproConfig(record_dir=rec, out_dir=tmp_path / "out", seeds=[2], launcher="python", data_path=str(data))
    job = plan_record(cfg, "sleepy", load_config(conf)).jobs()[0]
    runner = SlurmRunner(load_config(conf))
    handle = runner.start(runner.prepare(job))
    lines = list(runner.stream(handle, poll_s=0.2, state_every_s=0.5))
    outcome = runner.collect(handle)
    stamps = (tmp_path / "out" / "seed_2" / "stamps_seed2.tsv").read_text().splitlines()
    assert [ln.text for ln in lines] == [row.split("\t", 2)[2] for row in stamps] and len(lines) == 6
    assert [f"{ln.t:.6f}" for ln in lines] == [row.split("\t", 1)[0] for row in stamps]  # the job's own stamps
    assert outcome.runner == "slurm" and list(outcome.lines) == lines and outcome.details["slurm"]["job_id"] == handle.job_id


@pytest.mark.docker
def test_a_seed_runs_in_the_pinned_image_through_slurm(cluster, tmp_path):
    """container.mechanism = docker: the job's observer runs on the node and the seed in the
    pinned image with the docker runner's lock-down (no network, non-root, read-only root)."""
    try:
        from harness.containers import docker_client, pinned_image

        docker_client().images.get(pinned_image("cpu"))
    except Exception as e:  # noqa: BLE001 - no engine or no image here
        if os.environ.get("CI") == "true":
            pytest.fail(f"the pinned CPU image is not usable: {e}")
        pytest.skip(f"the pinned CPU image is not usable: {e}")
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(
        "import os, socket\n"
        "print('uid', os.getuid(), 'net', sorted(os.listdir('/sys/class/net')), flush=True)\n"
        "print('step:2/2 val_loss:4.0 val_bpb:2.5 train_time:5ms step_avg:1ms', flush=True)\n"
        "print('stopping_early: wallclock_cap train_time:5ms step:2/2', flush=True)\n"
        "print('final_int8_zlib_roundtrip val_loss:4.0 val_bpb:2.5000 eval_time:1ms', flush=True)\n")
    conf = tmp_path / "pgolf.toml"
    conf.write_text(TEST_CONFIG)
    out = tmp_path / "q"
    p = queue(str(rec), "--seeds", "1", "--launcher", "python", "--out", str(out), "--config", str(conf),
              "--container", "docker", "--format", "json", "--skip-input-check")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode in (0, 1), stderr
    res = json.loads((out / "rec" / "seed_1" / "result.json").read_text())
    assert res["status"] == "ok" and res["runner"] == "slurm" and res["reproduced"]["val_bpb"] == 2.5
    assert res["runner_details"]["network"] == "none" and res["runner_details"]["image_tag"].startswith("pgolf-cpu:")
    first = (out / "rec" / "seed_1" / "train_seed1.log").read_text().splitlines()[0]
    assert first in ("uid 10001 net ['lo']", f"uid {os.getuid()} net ['lo']")


def test_the_demo_record_reproduces_through_slurm_with_the_local_report(cluster, tmp_path):
    """The reference implementation's tiny configuration (torchrun, gloo, CPU), reproduced by
    `pgolf reproduce --runner slurm` and by the local runner: the same scores (CPU runs are
    deterministic), the same findings, the same verdict; only the runner differs."""
    from harness.commands.demo import DATA, build_record
    from reference_impl.synth import synthesize

    data = synthesize(tmp_path / "data", **DATA)
    record = build_record(tmp_path / "record")
    conf = tmp_path / "pgolf.toml"
    conf.write_text(TEST_CONFIG)
    common = [str(record), "--seeds", "1337,42", "--data", str(data.data_path), "--tokenizer", str(data.tokenizer_path),
              "--vocab-size", str(data.vocab_size), "--format", "json", "--quiet", "--config", str(conf)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reports = {}
    for runner in ("slurm", "local"):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "reproduce", *common, "--runner", runner,
                               "--out", str(tmp_path / runner)], capture_output=True, text=True, timeout=1800,
                              env=env, cwd=REPO)
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
        reports[runner] = json.loads(proc.stdout)
    slurm, local = reports["slurm"], reports["local"]
    assert [s["seed"] for s in slurm["data"]["seeds"]] == [1337, 42]
    for s, l in zip(slurm["data"]["seeds"], local["data"]["seeds"]):
        assert s["seed"] == l["seed"] and s["status"] == l["status"] == "ok"
        assert s["reproduced_bpb"] == l["reproduced_bpb"] and s["reproduced_bpb"] is not None  # bit-identical on CPU
        for key in ("scored_phase", "reproduced_loss", "artifact", "artifact_bytes", "measured_total", "printed_total",
                    "claimed_bpb"):  # not the times: they follow the machine's load
            assert s[key] == l[key], key
    assert slurm["data"]["aggregate"]["mean_bpb"] == local["data"]["aggregate"]["mean_bpb"]
    assert slurm["verdict"] == local["verdict"]
    # timing observations (an eval phase's printed time against the clock) follow the machine's
    # load in that minute, and two local runs can differ in them too: everything else is the same
    timing = {"PG-TIME-101", "PG-TIME-103", "PG-TIME-105"}
    assert sorted(set(finding_ids(slurm)) - timing) == sorted(set(finding_ids(local)) - timing)
    assert [sorted(finding_ids(c)) for c in slurm["children"]] == [sorted(finding_ids(c)) for c in local["children"]]
    assert slurm["data"]["runner"] == "slurm" and local["data"]["runner"] == "local"
    assert slurm["data"]["slurm"]["time_limit_s"] == pytest.approx(1230 + 60)
    for seed in (1337, 42):
        stamps = (tmp_path / "slurm" / f"seed_{seed}" / f"stamps_seed{seed}.tsv").read_text().splitlines()
        log = (tmp_path / "slurm" / f"seed_{seed}" / f"train_seed{seed}.log").read_text().splitlines()
        assert [ln.split("\t", 2)[2] for ln in stamps] == log and len(log) > 20
