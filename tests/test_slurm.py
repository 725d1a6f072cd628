"""The Slurm runner's parts that need no cluster: the config file and its errors, the batch
script, what each Slurm end state means, the in-job journal (over the real local runner), the
results the queue writes for jobs that left none, and the container command wrappers.
The runs through a real cluster are in test_slurm_cluster.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.queue.config import ClusterConfig, load_config
from harness.queue.plan import plan_record
from harness.reproduce.seeds import ReproConfig, record_fingerprint
from harness.runners.base import RunSpec, StampedLine
from harness.runners.local import LocalRunner
from harness.runners.slurm import JobState, SlurmHandle, SlurmRunner, cfg_from_json, cfg_to_json, end_rule, slurm_time
from harness.runners.slurm_journal import JournalRunner, Superseded, journal_line, read_journal

REPO = Path(__file__).resolve().parent.parent
SLEEPY = Path(__file__).parent / "fixtures" / "slurm" / "sleepy"

GPU_CONFIG = """\
# the organizers' partition
[slurm]
partition = "h100"
account = "pgolf-review"
qos = "normal"
gpus_per_node = 8
gres = "gpu:h100"
mem = "0"
time_margin_s = 270
extra_args = ["--constraint=sxm"]

[container]
mechanism = "docker"
image = "pgolf-gpu:0123456789ab"

[paths]
results = "/shared/pgolf"
python = "/shared/venv/bin/python"
pgolf = "/shared/pgolf-src"
"""


def write(tmp_path: Path, text: str, name: str = "pgolf.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --- config -----------------------------------------------------------------------------------
def test_no_config_file_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGOLF_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.source is None and cfg.slurm.gpus_per_node == 0 and cfg.slurm.exclusive is True
    assert cfg.container.mechanism == "none" and cfg.python() == sys.executable
    assert Path(cfg.pgolf_root(), "harness", "cli.py").is_file()


def test_config_file_is_read(tmp_path):
    cfg = load_config(write(tmp_path, GPU_CONFIG))
    assert (cfg.slurm.partition, cfg.slurm.gpus_per_node, cfg.slurm.time_margin_s) == ("h100", 8, 270.0)
    assert cfg.container.image == "pgolf-gpu:0123456789ab" and cfg.paths.python == "/shared/venv/bin/python"


@pytest.mark.parametrize("text, line, words", [
    ("[slurm]\npartition = 'a'\npartitoin = 'b'\n", 3, "unknown key slurm.partitoin"),
    ("[slurm]\n\ngpus_per_node = 'eight'\n", 3, "expected an integer"),
    ("[slurm]\nexclusive = 1\n", 2, "expected true or false"),
    ("[slurm]\ntime_margin_s = -5\n", 2, "must be >= 0"),
    ("[cluster]\nx = 1\n", 1, "unknown section [cluster]"),
    ("[container]\nmechanism = 'singularity'\n", 2, "is not one of none, docker, pyxis, apptainer"),
    ("[slurm]\npartition = \n", 2, "not valid TOML"),
])
def test_config_errors_name_the_file_and_line(tmp_path, text, line, words):
    p = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}:{line}: ") and words in str(e.value)


def test_a_bad_config_is_exit_2_and_submits_nothing(tmp_path):
    p = write(tmp_path, "[slurm]\npartition = 'a'\npartitoin = 'b'\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "queue", str(SLEEPY), "--out", str(tmp_path / "q"),
                           "--config", str(p)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and f"{p}:3: unknown key slurm.partitoin" in proc.stderr
    assert not (tmp_path / "q").exists()


def test_queue_checks_each_records_inputs_before_submitting(tmp_path):
    """`pgolf queue` checks --data/--tokenizer as `pgolf reproduce` does: a usage mistake is exit 2
    before any job is submitted, not a queue of seeds that crash on the nodes."""
    conf = write(tmp_path, "[slurm]\npartition = \"no-such-partition-pgolf-test\"\n")
    out = tmp_path / "q"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "queue", str(SLEEPY), "--out", str(out), "--config",
                           str(conf), "--data", str(tmp_path / "nope"), "--submit-only"],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "--data: no such folder" in proc.stderr, proc.stderr
    assert not (out / "queue.json").exists()


def test_help_teaches_with_examples():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "queue", "--help"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0
    for words in ("pgolf queue --out /shared/pgolf/week12 --cancel", "gpus_per_node = 8", "NODE_FAIL", "--skip-input-check",
                  "--partition", "exit codes"):
        assert words in proc.stdout


# --- planning and the batch script ------------------------------------------------------------
def repro_cfg(tmp_path: Path, **kw) -> ReproConfig:
    rec = tmp_path / "sleepy"
    if not rec.exists():
        shutil.copytree(SLEEPY, rec)
    return ReproConfig(record_dir=rec, out_dir=tmp_path / "out", seeds=[1, 2], launcher="python",
                       data_path=str(tmp_path), runner="slurm", **kw)


def test_gpu_nodes_ask_for_the_tracks_gpus_and_the_deadline_plus_margin(tmp_path):
    cluster = load_config(write(tmp_path, GPU_CONFIG))
    entry = plan_record(repro_cfg(tmp_path), "sleepy", cluster)
    assert entry.gpus == 8 and entry.job_cfg().nproc == 8  # hardware_gpus of track_10min_16mb
    assert entry.time_limit_s == 1230 + 270
    assert entry.inner == {"name": "docker", "image": "pgolf-gpu:0123456789ab", "gpus": 8, "mounts": []}
    job = entry.jobs()[0]
    runner = SlurmRunner(cluster)
    prepared = runner.prepare(job)
    script = prepared.script.read_text()
    for opt in ("--gres=gpu:h100:8", "--time=0-00:25:00", "--signal=B:USR1@120", "--no-requeue", "--export=NONE",
                "--exclusive", "--partition=h100", "--account=pgolf-review", "--qos=normal", "--mem=0",
                "--constraint=sxm", "--nodes=1", f"--comment=pgolf:{prepared.token}",
                f"--output={job.slurm_dir}/slurm-%j.out"):
        assert f"#SBATCH {opt}\n" in script, opt
    assert script.rstrip().endswith(f"exec /shared/venv/bin/python -m harness.runners.slurm_job {prepared.spec}")
    assert "PYTHONPATH=/shared/pgolf-src" in script
    assert subprocess.run(["bash", "-n", str(prepared.script)]).returncode == 0
    spec = json.loads(prepared.spec.read_text())
    assert spec["fingerprint"] == entry.fingerprint and spec["attempt"] == 1
    assert Path(spec["repro"]["record_dir"]) == Path(entry.out) / "slurm" / "record"  # the frozen copy


def test_the_frozen_copy_has_the_records_fingerprint_and_a_changed_record_is_refused(tmp_path):
    cfg = repro_cfg(tmp_path)
    entry = plan_record(cfg, "sleepy", ClusterConfig())
    assert entry.gpus == 0 and entry.job_cfg().nproc == 1  # CPU nodes: --nproc, no --gres
    assert record_fingerprint(entry.job_cfg()) == entry.fingerprint
    (Path(cfg.record_dir) / "train_gpt.py").write_text("print('changed')\n")
    with pytest.raises(InputError, match="changed since it was queued"):
        plan_record(cfg, "sleepy", ClusterConfig())


def test_a_record_name_cannot_inject_lines_into_the_batch_script(tmp_path):
    """The record's folder name comes from a pull request and git allows a newline in it: the
    batch script, the job name and the results folder carry a cleaned name, never the raw one."""
    from harness.commands.queue import record_names

    evil = "rec\ntouch pwned #"
    assert record_names([tmp_path / evil, tmp_path / "rec_touch_pwned__"]) == ["rec_touch_pwned__", "rec_touch_pwned__-2"]
    entry = plan_record(repro_cfg(tmp_path), evil, load_config(write(tmp_path, GPU_CONFIG)))
    script = SlurmRunner(load_config(write(tmp_path, GPU_CONFIG))).prepare(entry.jobs()[0]).script.read_text()
    assert not any(line.startswith("touch") for line in script.splitlines())
    assert "#SBATCH --job-name=pgolf-rec_touch_pwned__-s" in script


def test_a_slurm_option_with_white_space_is_refused(tmp_path):
    cfg = repro_cfg(tmp_path)
    cfg.out_dir = tmp_path / "results with space"
    entry = plan_record(cfg, "sleepy", load_config(write(tmp_path, GPU_CONFIG)))
    with pytest.raises(InputError, match="white space"):
        SlurmRunner(load_config(write(tmp_path, GPU_CONFIG))).prepare(entry.jobs()[0])


def test_a_track_needing_more_gpus_than_a_node_has_is_refused(tmp_path):
    cluster = ClusterConfig()
    cluster.slurm.gpus_per_node = 4
    with pytest.raises(InputError, match="runs on 8 GPUs but slurm.gpus_per_node is 4"):
        plan_record(repro_cfg(tmp_path), "sleepy", cluster)


def test_no_deadline_no_time_limit(tmp_path):
    entry = plan_record(repro_cfg(tmp_path, ruleset="track_non_record_16mb"), "sleepy", ClusterConfig())
    assert entry.time_limit_s is None
    script = SlurmRunner(ClusterConfig()).prepare(entry.jobs()[0]).script.read_text()
    assert "--time=" not in script and "--gres" not in script


def test_slurm_time_rounds_up_to_minutes():
    assert [slurm_time(s) for s in (1, 60, 61, 1500, 90000)] == ["0-00:01:00", "0-00:01:00", "0-00:02:00",
                                                                 "0-00:25:00", "1-01:00:00"]


def test_repro_config_survives_the_job_spec(tmp_path):
    cfg = repro_cfg(tmp_path, against=tmp_path, env_extra={"A": "1"})
    cfg.budgets = cfg.resolved_budgets()
    back = cfg_from_json(json.loads(json.dumps(cfg_to_json(cfg))))
    assert back == cfg


# --- what Slurm's end states mean ----------------------------------------------------------------
@pytest.mark.parametrize("state, status, retry", [
    ("NODE_FAIL", "lost", True), ("PREEMPTED", "lost", True), ("BOOT_FAIL", "lost", True), ("LOST", "lost", True),
    ("TIMEOUT", "timeout", False), ("CANCELLED", "cancelled", False), ("FAILED", "failed", False),
    ("OUT_OF_MEMORY", "failed", False), ("COMPLETED", "failed", False), ("SOMETHING_NEW", "failed", False),
])
def test_end_states(state, status, retry):
    r = end_rule(state)
    assert (r.status, r.retry) == (status, retry)


# --- the journal, inside the job ---------------------------------------------------------------
SCRIPT = """\
import sys, time
print("step:0/4 val_loss:5.0 val_bpb:3.0 train_time:0ms step_avg:0.01ms", flush=True)
time.sleep(float(sys.argv[1]))
print("step:4/4 val_loss:4.0 val_bpb:2.5 train_time:100ms step_avg:25ms", flush=True)
print("stopping_early: wallclock_cap train_time:100ms step:4/4", flush=True)
print("final_int8_zlib_roundtrip val_loss:4.0 val_bpb:2.5000 eval_time:1ms", flush=True)
"""


def spec_for(tmp_path: Path, sleep: float = 0.1) -> RunSpec:
    rec = tmp_path / "rec"
    rec.mkdir(exist_ok=True)
    (rec / "train_gpt.py").write_text(SCRIPT)
    return RunSpec(record_dir=rec, workdir=tmp_path / "work", seed=1, env={"SEED": "1"},
                   argv=(sys.executable, "train_gpt.py", str(sleep)), timeout_s=60)


def drive(runner, spec):
    handle = runner.start(runner.prepare(spec))
    seen = list(runner.stream(handle))
    return seen, runner.collect(handle)


def test_the_journal_holds_every_line_with_the_inner_runners_stamp(tmp_path):
    journal = tmp_path / "journal.tsv"
    runner = JournalRunner(LocalRunner(), journal, "77", {"node": "n1"})
    seen, outcome = drive(runner, spec_for(tmp_path))
    j = read_journal(journal)
    rounded = [StampedLine(round(ln.t, 6), ln.text, ln.stream) for ln in seen]  # microseconds, as stamps_seed*.tsv
    assert j.job_id == "77" and j.lines == rounded and list(outcome.lines) == seen and len(seen) == 4
    assert abs(j.start_unix - time.time()) < 30
    assert outcome.runner == "slurm" and outcome.details["inner_runner"] == "local"
    assert outcome.details["slurm"] == {"node": "n1"} and outcome.exit_code == 0 and not outcome.timed_out


def test_a_journal_is_read_by_complete_lines_only(tmp_path):
    p = tmp_path / "j.tsv"
    p.write_text("#start\t100.5\t1970-01-01T00:01:40.500+00:00\t9\n" + journal_line(StampedLine(0.5, "a\tb", "stdout")) + "1.0\tstd")
    j = read_journal(p)
    assert j.start_unix == 100.5 and j.lines == [StampedLine(0.5, "a\tb", "stdout")]
    with open(p, "a") as f:
        f.write("err\tlate\n")
    read_journal(p, j)
    assert j.lines[-1] == StampedLine(1.0, "late", "stderr")


def test_slurms_time_limit_warning_stops_the_run_and_it_reads_timeout(tmp_path):
    near = threading.Event()
    runner = JournalRunner(LocalRunner(term_grace_s=1), tmp_path / "j.tsv", "5", {}, time_limit_near=near)
    threading.Timer(1.0, near.set).start()  # what SIGUSR1 from --signal=B:USR1@N does in slurm_job
    t0 = time.monotonic()
    _, outcome = drive(runner, spec_for(tmp_path, sleep=60))
    assert time.monotonic() - t0 < 20
    assert outcome.timed_out and outcome.stop_reason == "slurm-time-limit"


def test_a_superseded_job_stops_and_writes_nothing(tmp_path):
    flag = {"on": False}
    runner = JournalRunner(LocalRunner(term_grace_s=1), tmp_path / "j.tsv", "5", {}, superseded=lambda: flag["on"])
    threading.Timer(1.0, lambda: flag.update(on=True)).start()
    with pytest.raises(Superseded):
        drive(runner, spec_for(tmp_path, sleep=60))


# --- results for jobs that left none ---------------------------------------------------------
def settled(tmp_path: Path, state: str, attempts: int = 1, cancel_by: str | None = None) -> dict:
    from harness.queue.loop import SeedTrack, settle
    from harness.runners.slurm import save_attempts

    entry = plan_record(repro_cfg(tmp_path), "sleepy", ClusterConfig())
    job = entry.jobs()[0]
    job.slurm_dir.mkdir(parents=True)
    save_attempts(job.slurm_dir, [{"attempt": i + 1, "job_id": str(40 + i), "cancel_requested": cancel_by}
                                  for i in range(attempts)])
    job_id = str(40 + attempts - 1)
    (job.slurm_dir / f"journal-{job_id}.tsv").write_text(
        "#start\t1000.0\t-\t%s\n" % job_id + "0.1\tstdout\tseed:1\n"
        "0.2\tstdout\tstep:0/10 val_loss:6.9000 val_bpb:4.1000 train_time:0ms step_avg:0.01ms\n")
    (job.slurm_dir / f"slurm-{job_id}.out").write_text("pgolf slurm job\nTraceback: boom\n")
    handle = SlurmHandle(job, job_id, attempts, state=JobState(job_id, state, "", "n7", "0:15"))
    res = settle(SlurmRunner(ClusterConfig()), SeedTrack(entry, job, handle))
    assert json.loads(job.result_path.read_text()) == json.loads(json.dumps(res))
    assert (Path(entry.out) / "seed_1" / "train_seed1.log").read_text().startswith("seed:1\nstep:0/10")
    return res


def ids(res: dict) -> list[str]:
    return [f["id"] for f in res["findings"]]


def test_a_job_slurm_killed_at_its_time_limit_reads_timeout(tmp_path):
    res = settled(tmp_path, "TIMEOUT")
    assert res["status"] == "timeout" and "PG-TIME-106" in ids(res) and "PG-SLURM-005" in ids(res)


def test_a_cancelled_job_is_not_blamed_on_the_submission(tmp_path):
    res = settled(tmp_path, "CANCELLED", cancel_by="pgolf queue --cancel")
    assert res["status"] == "cancelled" and "PG-REPRO-001" not in ids(res)
    f = next(f for f in res["findings"] if f["id"] == "PG-SLURM-003")
    assert "by `pgolf queue --cancel`" in f["message"] and f["undecided"]


def test_a_seed_lost_twice_reads_lost(tmp_path):
    res = settled(tmp_path, "NODE_FAIL", attempts=2)
    f = next(f for f in res["findings"] if f["id"] == "PG-SLURM-002")
    assert res["status"] == "lost" and "job 41 on n7 ended NODE_FAIL" in f["message"]


def test_a_job_that_failed_outside_its_run_points_at_its_output(tmp_path):
    res = settled(tmp_path, "FAILED")
    f = next(f for f in res["findings"] if f["id"] == "PG-SLURM-004")
    assert res["status"] == "failed" and "PG-REPRO-001" not in ids(res) and "(exit 0:15)" in f["message"]
    assert "PG-REPRO-004" not in ids(res)  # a signal ended it: no exit 0 that "printed no score"
    assert [e["message"] for e in f["evidence"]] == ["pgolf slurm job", "Traceback: boom"]


@pytest.mark.parametrize("text, words", [("{not json", "unreadable result"),
                                           ('{"schema": "other/1", "status": "ok"}', "not a pgolf.seed-result/1")])
def test_the_queue_reads_a_seeds_result_as_reproduce_does(tmp_path, text, words):
    """A corrupt result.json is not "no result yet" (the queue would resubmit over it): the one
    reader of results refuses it by name, for the queue as for `pgolf reproduce`."""
    from harness.queue.loop import build_tracks

    entry = plan_record(repro_cfg(tmp_path), "sleepy", ClusterConfig())
    job = entry.jobs()[0]
    job.result_path.parent.mkdir(parents=True)
    job.result_path.write_text(text)
    with pytest.raises(InputError, match=words) as e:
        build_tracks([entry], SlurmRunner(ClusterConfig()))
    assert e.value.path == str(job.result_path)


def test_a_record_with_seeds_lost_to_the_cluster_is_not_judged_on_the_others(tmp_path):
    """Seed 1 cancelled, seed 2 reproduced: the mean against the claim, significance and the checks
    on the reproduced logs are not made (not computed and then stripped: the summary's Δ too)."""
    from dataclasses import replace

    from harness.queue.loop import SeedTrack, write_record_report
    from harness.reproduce.claims import load_claims
    from harness.reproduce.seeds import run_seed
    from harness.progress import NullProgress

    base = tmp_path / "baseline"
    base.mkdir()
    for seed in (1, 2, 3):
        (base / f"train_seed{seed}.log").write_text(f"seed:{seed}\nfinal_int8_zlib_roundtrip_exact val_loss:2.9{seed} "
                                                    f"val_bpb:1.85{seed}\n")
    cancelled = settled(tmp_path, "CANCELLED")
    assert not {"PG-REPRO-001", "PG-REPRO-004"} & set(ids(cancelled))
    entry = plan_record(repro_cfg(tmp_path, against=base), "sleepy", ClusterConfig())
    j1, j2 = entry.jobs()
    ok = run_seed(replace(j2.cfg, runner="local"), LocalRunner(), 2, load_claims(j2.cfg.record_dir), j2.fingerprint,
                  NullProgress(), 1, 1)
    assert ok["status"] == "ok" and ok["reproduced"]["val_bpb"] == pytest.approx(1.8002)
    report = write_record_report(entry, [SeedTrack(entry, j1, status="cancelled", result=cancelled),
                                         SeedTrack(entry, j2, status="ok", result=ok)], with_plots=False)
    assert report.children == [] and "delta_mean_bpb" not in report.data["aggregate"]
    assert report.data["significance"] == {"skipped": "not evaluated: seed(s) 1 (cancelled) not reproduced"}
    mean = [f for f in report.findings if f.rule_id == "PG-REPRO-003"]
    assert [f.severity.value for f in mean] == ["note"] and "not evaluated" in mean[0].message
    assert "PG-SLURM-006" in {f.rule_id for f in report.findings}


# --- container mechanisms ----------------------------------------------------------------------
def test_pyxis_and_apptainer_wrap_the_command_with_the_data_read_only(tmp_path):
    from harness.runners.slurm_job import apptainer_prefix, pyxis_prefix

    spec = RunSpec(record_dir=tmp_path, workdir=Path("/r/seed_1/work"), seed=1,
                   env={"SEED": "1", "DATA_PATH": "/data/fw", "TOKENIZER_PATH": "/data/tok.model"}, data_dir=Path("/data/fw"))
    px = pyxis_prefix(spec, "/img/pgolf.sqsh", ["/extra"], gpus=True)
    assert px[0] == "srun" and "--container-image=/img/pgolf.sqsh" in px
    assert "--container-mounts=/r/seed_1/work:/r/seed_1/work,/data/fw:/data/fw:ro,/data/tok.model:/data/tok.model:ro,/extra:/extra:ro" in px
    ap = apptainer_prefix(spec, "/img/pgolf.sif", [], gpus=True)
    assert ap[:4] == ["apptainer", "exec", "--containall", "--cleanenv"] and ap[-1] == "/img/pgolf.sif"
    assert "--nv" in ap and "/data/fw:/data/fw:ro" in ap and "SEED=1" in ap and "PYTHONUNBUFFERED=1" in ap


# --- the live view and the summary -------------------------------------------------------------
def tracks_for(tmp_path: Path) -> list:
    from harness.queue.loop import SeedTrack

    entry = plan_record(repro_cfg(tmp_path), "sleepy", ClusterConfig())
    t1, t2 = (SeedTrack(entry, job) for job in entry.jobs())
    j = t1.job.slurm_dir
    j.mkdir(parents=True)
    (j / "journal-7.tsv").write_text(f"#start\t{time.time() - 65:.3f}\t-\t7\n0.5\tstdout\tstep:3/10 train_loss:4.2\n")
    t1.handle = SlurmHandle(t1.job, "7", 1, state=JobState("7", "RUNNING", "", "gpu-node-3"))
    SlurmRunner(ClusterConfig()).poll(t1.handle)
    t1.status, t1.last_line = "running", t1.handle.journal.lines[-1]
    t2.status, t2.result = "ok", {"reproduced": {"val_bpb": 1.8002}}
    return [t1, t2]


@pytest.mark.parametrize("rich", [False, True])
def test_the_live_view_shows_states_per_record_and_elapsed_against_the_deadline(tmp_path, rich):
    import io

    from harness.queue.view import QueueView, RichQueueView

    out = io.StringIO()
    view = RichQueueView(out) if rich else QueueView(out, every_s=0)
    tracks = tracks_for(tmp_path)
    view.start(tracks)
    view.tick(tracks)
    view.changed(tracks[1], "running")
    view.close()
    text = out.getvalue()
    assert "sleepy seed 2: running -> ok, val_bpb 1.8002" in text
    assert "1:0" in text and "20:30" in text and "step:3/10" in text  # 1:05 elapsed of the 1,230 s deadline
    if rich:
        assert "pending" in text and "running" in text and "gpu-node-3" in text
    else:
        assert "queue: 0 pending, 1 running, 1 done, 0 failed (2 seeds)" in text
        assert "sleepy seed 1: job 7 on gpu-node-3  1:0" in text


@pytest.mark.parametrize("rich", [False, True])
def test_the_live_view_strips_terminal_escapes_from_a_runs_output(tmp_path, rich):
    """The running line quotes what the seed printed last: an OSC title or a screen clear in it
    never reaches the reviewer's terminal."""
    import io

    from harness.queue.view import QueueView, RichQueueView

    from dataclasses import replace

    tracks = tracks_for(tmp_path)
    line = tracks[0].last_line
    tracks[0].last_line = replace(line, text="step:3/10 \x1b]0;owned\x07\x1b[2Jx")
    out = io.StringIO()
    view = RichQueueView(out) if rich else QueueView(out, every_s=0)
    view.start(tracks)
    view.tick(tracks)
    view.close()
    text = out.getvalue()
    assert "step:3/10" in text and "\x1b]" not in text and "\x1b[2J" not in text and "\x07" not in text


@pytest.mark.parametrize("rich", [False, True])
def test_the_live_views_messages_are_escaped_like_its_table(rich):
    """A message quoting what a job printed (a state, a node name) is escaped on both views."""
    import io

    from harness.queue.view import QueueView, RichQueueView

    out = io.StringIO()
    view = RichQueueView(out) if rich else QueueView(out)
    view.message("seed 1: node \x1b]0;owned\x07gpu-3\x1b[2J [bold]x[/]")
    view.close()
    text = out.getvalue()
    assert "gpu-3" in text and "[bold]x[/]" in text
    assert "\x1b]" not in text and "\x1b[2J" not in text and "\x07" not in text


def test_the_summary_table_in_three_formats(tmp_path):
    from harness.queue.summary import RENDER, rows

    tracks = tracks_for(tmp_path)
    table = rows([tracks[0].entry], tracks, {})
    assert (table[0]["running"], table[0]["done"], table[0]["verdict"]) == (1, 1, None)
    assert "sleepy" in RENDER["text"](table) and "(running)" in RENDER["text"](table)
    assert RENDER["markdown"](table).splitlines()[0].startswith("| record | seeds | pending | running | done | failed |")
    assert json.loads(RENDER["json"](table))["records"][0]["statuses"] == {"1": "running", "2": "ok"}


def test_one_harness_follows_a_queue_at_a_time(tmp_path):
    from harness.commands.queue import lock_queue

    held = lock_queue(tmp_path)
    with pytest.raises(InputError, match=f"another pgolf follows this queue \\(pid {os.getpid()}\\)"):
        lock_queue(tmp_path)
    held.close()
    lock_queue(tmp_path).close()  # released with the file: a killed harness never leaves it held


# --- the job's own process, run directly (as the batch script's last line does) ----------------
def job_process(tmp_path: Path, sleep: str) -> tuple[subprocess.Popen, Path, Path]:
    cfg = repro_cfg(tmp_path)
    (tmp_path / "sleep_1").write_text(sleep)
    job = plan_record(cfg, "sleepy", ClusterConfig()).jobs()[0]
    prepared = SlurmRunner(ClusterConfig()).prepare(job)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_JOB_ID": "901"}
    p = subprocess.Popen([sys.executable, "-m", "harness.runners.slurm_job", str(prepared.spec)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = job.slurm_dir / "journal-901.tsv"
    end = time.monotonic() + 60
    while not (journal.exists() and len(journal.read_text().splitlines()) >= 3):
        assert time.monotonic() < end and p.poll() is None, p.stderr.read() if p.poll() is not None else "slow"
        time.sleep(0.1)
    return p, job.result_path, job.slurm_dir


def test_usr1_before_the_time_limit_stops_the_run_and_the_seed_reads_timeout(tmp_path):
    import signal

    p, result, sdir = job_process(tmp_path, "120")
    p.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@N sends
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    res = json.loads(result.read_text())
    assert res["status"] == "timeout" and res["stop_reason"] == "slurm-time-limit" and "PG-TIME-106" in ids(res)
    assert json.loads((sdir / "started-901.json").read_text())["attempt"] == 1


def test_sigterm_stops_the_run_and_writes_no_result(tmp_path):
    import signal

    p, result, _ = job_process(tmp_path, "120")
    run_id = json.loads((result.parent / "running.json").read_text())["run_id"]
    p.send_signal(signal.SIGTERM)  # scancel, preemption, the time limit itself
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 143 and "no result written" in stderr
    assert not result.exists()
    from harness.runners import proctable

    assert proctable.with_env("RUN_ID", run_id) == []
