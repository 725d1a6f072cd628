"""Observation: the harness clock and the disk against what a run printed.

Two kinds of tests: real runs of the small fixture scripts in tests/fixtures/repro (a lying
timer, an oversized artifact), and timelines of stamped lines built here, where each stamp is
chosen to sit just inside or just outside a limit.
"""
from __future__ import annotations

import math
import os
import sys
import uuid
from pathlib import Path

import pytest

from harness.reproduce.observe import RULES, Budgets, budgets_for, find_artifact, judge, observe
from harness.runners.base import RunOutcome, RunSpec, StampedLine
from harness.runners.local import LocalRunner

FIXTURES = Path(__file__).parent / "fixtures" / "repro"


def run_fixture(name: str, tmp_path: Path) -> tuple:
    spec = RunSpec(record_dir=FIXTURES / name, workdir=tmp_path / "work", seed=1,
                   env={"SEED": "1", "RUN_ID": f"test-{uuid.uuid4().hex}", "DATA_PATH": str(tmp_path)},
                   argv=(sys.executable, "train_gpt.py"), timeout_s=60)
    runner = LocalRunner()
    outcome = runner.collect(runner.start(runner.prepare(spec)))
    obs, log = observe(outcome, FIXTURES / name)
    return outcome, obs, log, judge(obs, log, outcome, Budgets(), "train_seed1.log")


def ids(findings) -> list[str]:
    return sorted(f.rule_id for f in findings)


def timeline(rows: list[tuple[float, str]], written: dict[str, int] | None = None, timed_out=False,
             exit_code=0) -> RunOutcome:
    lines = [StampedLine(t, text) for t, text in rows]
    return RunOutcome(seed=1, exit_code=exit_code, timed_out=timed_out, stop_reason="timeout" if timed_out else None,
                      started_utc="", wall_seconds=rows[-1][0] if rows else 0.0, lines=lines,
                      files=dict(written or {}), details={"written": sorted(written or {})})


def judged(outcome: RunOutcome, record: Path, budgets: Budgets = Budgets(), scored: str | None = None):
    obs, log = observe(outcome, record)
    return obs, judge(obs, log, outcome, budgets, "x.log", scored_phase=scored)


def honest_rows(train_s: float = 580.0, eval_s: float = 400.0, val_pause_s: float = 3.0) -> list[tuple[float, str]]:
    """A record-like run: 5 s start-up, train lines every 100 s of training, validation pauses
    that the printed train_time leaves out, then serialization and two eval phases."""
    t0 = 5.0
    rows = [(t0, "step:0/9000 val_loss:6.93 val_bpb:4.10 train_time:0ms step_avg:0.01ms")]
    t, ms = t0, 0.0
    for step in range(1000, 6000, 1000):
        t += 100.0
        ms += 100_000
        rows.append((t, f"step:{step}/9000 train_loss:2.5 train_time:{ms:.0f}ms step_avg:100ms"))
        if step == 3000:
            t += val_pause_s  # validation, timer paused
            rows.append((t, f"step:{step}/9000 val_loss:2.1 val_bpb:1.25 train_time:{ms:.0f}ms step_avg:100ms"))
    t += train_s - ms / 1000
    ms = train_s * 1000
    rows.append((t, f"step:5800/9000 val_loss:1.92 val_bpb:1.138 train_time:{ms:.0f}ms step_avg:100ms"))
    rows.append((t, f"stopping_early: wallclock_cap train_time:{ms:.0f}ms step:5800/9000"))
    t += 8.0
    rows += [(t, "Serialized model int6+lzma: 15887928 bytes"), (t, "Code size: 436 bytes"),
             (t, "Total submission size int6+lzma: 15888364 bytes")]
    t += 10.0
    rows.append((t, "final_int6_roundtrip val_loss:1.93 val_bpb:1.145 eval_time:10000ms"))
    rows.append((t, "final_int6_roundtrip_exact val_loss:1.93358885 val_bpb:1.14518023"))
    t += eval_s
    rows.append((t, f"legal_ttt val_loss:1.8898 val_bpb:1.1192 eval_time:{eval_s * 1000:.0f}ms"))
    rows.append((t, "legal_ttt_exact val_loss:1.88976776 val_bpb:1.11922988"))
    return rows


ARTIFACT = {"final_model.int6.ptz": 15887928, "logs/run.txt": 2000}  # what an honest run writes


@pytest.fixture
def record(tmp_path: Path) -> Path:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_bytes(b"#" * 436)
    return rec


# --- fixture scripts, run for real ------------------------------------------------------------
def test_halftime_script_is_flagged_for_understating_train_time(tmp_path):
    outcome, obs, log, findings = run_fixture("halftime", tmp_path)
    assert outcome.exit_code == 0
    assert obs.train_ratio == pytest.approx(0.5, abs=0.08)
    assert obs.observed_train_s == pytest.approx(2.0, abs=0.4)
    f = [x for x in findings if x.rule_id == "PG-TIME-101"]
    assert len(f) == 1 and f[0].severity.value == "error" and not f[0].undecided
    assert f[0].location.line == log.stop.line


def test_twenty_megabyte_artifact_fails_the_byte_check_by_measurement(tmp_path):
    outcome, obs, log, findings = run_fixture("bigartifact", tmp_path)
    assert log.artifact.total.bytes < 16_000_000  # what it printed would pass `pgolf check`
    assert obs.artifact_path == "final_model.int8.ptz" and obs.artifact_bytes == 20_000_000
    assert obs.measured_total == 20_000_000 + (FIXTURES / "bigartifact" / "train_gpt.py").stat().st_size
    assert {"PG-BYTES-101", "PG-BYTES-102"} <= set(ids(findings))
    over = next(f for f in findings if f.rule_id == "PG-BYTES-101")
    assert over.data["measured"] > over.data["cap"] == 16_000_000


# --- timelines --------------------------------------------------------------------------------
def test_honest_record_like_run_has_no_findings(record):
    obs, findings = judged(timeline(honest_rows(), written=ARTIFACT), record, scored="legal_ttt")
    assert findings == []
    assert obs.artifact_path == "final_model.int6.ptz" and obs.measured_total == obs.printed_total
    assert obs.observed_train_s == pytest.approx(580.0, rel=1e-6)  # validation pause not counted
    assert obs.clean_segments >= 5
    assert [p.name for p in obs.phases] == ["final_int6_roundtrip", "legal_ttt"]
    assert obs.phases[1].observed_s == pytest.approx(400.0)
    assert obs.observed_eval_s == pytest.approx(8 + 10 + 400)


def test_training_observed_past_the_budget_is_an_error_even_if_printed_within(record):
    rows = [(r[0] * (620 / 580) if "train_time" in r[1] and not r[1].startswith("step:0/") else r[0], r[1])
            for r in honest_rows()]
    obs, findings = judged(timeline(rows), record)
    assert "PG-TIME-102" in ids(findings) and "PG-TIME-101" in ids(findings)


def test_scored_phase_over_the_eval_budget_by_the_clock(record):
    rows = honest_rows(eval_s=400.0)
    rows[-2] = (rows[-2][0] + 210.0, rows[-2][1])  # printed 400 s, arrived 610 s after the last boundary
    rows[-1] = (rows[-1][0] + 210.0, rows[-1][1])
    obs, findings = judged(timeline(rows), record, scored="legal_ttt")
    assert {"PG-TIME-103", "PG-TIME-104", "PG-TIME-105"} <= set(ids(findings))
    sev = {f.rule_id: f.severity.value for f in findings}
    assert sev["PG-TIME-103"] == "warning" and sev["PG-TIME-104"] == "error" and sev["PG-TIME-105"] == "warning"


def test_a_small_clock_difference_is_not_flagged(record):
    rows = honest_rows()
    rows[-2] = (rows[-2][0] + 0.3, rows[-2][1])  # 0.3 s of pipe jitter on a 400 s phase
    _, findings = judged(timeline(rows, written=ARTIFACT), record, scored="legal_ttt")
    assert findings == []


def test_without_clean_segments_the_train_finding_is_undecided(record):
    rows = [(1.0, "step:0/10 val_loss:6.9 val_bpb:4.1 train_time:0ms step_avg:0ms"),
            (11.0, "step:10/10 val_loss:3.0 val_bpb:1.8 train_time:5000ms step_avg:500ms")]
    obs, findings = judged(timeline(rows), record)
    f = next(x for x in findings if x.rule_id == "PG-TIME-101")
    assert f.undecided and f.severity.value == "warning"


def test_timeout_and_missing_stop(record):
    _, findings = judged(timeline([(3.0, "seed:1")], timed_out=True, exit_code=-15), record)
    assert ids(findings) == ["PG-TIME-106"]
    _, findings = judged(timeline([(3.0, "hello")]), record)
    assert ids(findings) == ["PG-TIME-107"] and findings[0].undecided


def test_printed_code_size_is_compared_with_the_files(record):
    rows = honest_rows()
    rows = [(t, "Code size: 999 bytes" if s.startswith("Code size") else s) for t, s in rows]
    outcome = timeline(rows, written=ARTIFACT)
    obs, findings = judged(outcome, record, scored="legal_ttt")
    assert ids(findings) == ["PG-BYTES-103"]
    assert obs.code_bytes == 436 and obs.measured_total == 15887928 + 436 == obs.printed_total


def test_sizes_printed_but_no_artifact_written(record):
    _, findings = judged(timeline(honest_rows(), written={"logs/run.txt": 10}), record, scored="legal_ttt")
    assert ids(findings) == ["PG-BYTES-104"] and findings[0].undecided


# --- pieces -----------------------------------------------------------------------------------
def test_find_artifact_prefers_the_printed_size_then_packed_files_and_skips_raw_checkpoints():
    written = {"final_model.pt": 106_000_000, "final_model.int6.ptz": 15_887_928, "logs/x.txt": 5,
               "notes.bin": 99}
    assert find_artifact(written, 15_887_928)[0] == "final_model.int6.ptz"
    assert find_artifact(written, None)[0] == "final_model.int6.ptz"  # largest packed file
    assert find_artifact({"final_model.pt": 5, "train.log": 3}, None)[0] is None
    assert find_artifact({"model.weights": 7}, None)[0] == "model.weights"


def test_rule_ids_are_unique_and_do_not_collide_with_the_checks():
    from harness.checks import RULES as CHECK_RULES

    assert not set(RULES) & set(CHECK_RULES)
    assert all(r.startswith(("PG-TIME-1", "PG-BYTES-1", "PG-REPRO-", "PG-RUN-")) for r in RULES)


def test_budgets_come_from_the_rule_sets():
    b = budgets_for(ruleset="track_10min_16mb")
    assert (b.train_s, b.eval_s, b.byte_cap, b.kill_after_s) == (600.0, 600.0, 16_000_000, 1230.0)
    nr = budgets_for(ruleset="track_non_record_16mb")
    assert math.isinf(nr.train_s) and nr.byte_cap == 16_000_000


def test_a_result_printed_twice_is_one_phase_for_the_clock(record):
    """Upstream TTT prints `ttt_sliding:done … elapsed=` then `legal_ttt … eval_time:` for one
    result; the scored phase must be timed from before the TTT, not from the done line."""
    rows = honest_rows(eval_s=400.0)
    t_end = rows[-2][0] + 300.0  # TTT really took 700 s
    rows[-2:] = [(t_end, "ttt_sliding:done val_loss=1.889768 val_bpb=1.119230 elapsed=400.0s"),
                 (t_end + 0.1, "legal_ttt val_loss:1.8898 val_bpb:1.1192 eval_time:400000ms"),
                 (t_end + 0.1, "legal_ttt_exact val_loss:1.88976776 val_bpb:1.11922988")]
    obs, findings = judged(timeline(rows, written=ARTIFACT), record, scored="legal_ttt")
    ttt = next(p for p in obs.phases if p.name == "legal_ttt")
    assert ttt.observed_s == pytest.approx(700.1)
    assert "PG-TIME-104" in ids(findings)


def replay(log_text: str, slow: float = 1.0) -> RunOutcome:
    """Stamp a real upstream log as the harness would have seen an honest run print it: 5 s of
    start-up, training at its printed train_time (times `slow`), 1 s per validation pause,
    and each evaluation result after its printed eval_time (a result printed twice, once)."""
    from harness.logs import parse_log

    lines = log_text.splitlines()
    log = parse_log(log_text)
    steps = {s.line: s for s in log.steps}
    phases = {p.line: p for p in log.phases}
    t, pauses, last_bpb, rows = 5.0, 0.0, None, []
    for i, text in enumerate(lines, 1):
        s, p = steps.get(i), phases.get(i)
        if s is not None and s.train_time_ms is not None:
            pauses += 1.0 if s.val_loss is not None else 0.0
            t = max(t, 5.0 + slow * s.train_time_ms / 1000 + pauses)
        elif log.stop is not None and i == log.stop.line and log.stop.train_time_ms is not None:
            t = max(t, 5.0 + slow * log.stop.train_time_ms / 1000 + pauses)
        elif p is not None and p.eval_time_ms is not None and round(p.val_bpb, 4) != last_bpb:
            t += p.eval_time_ms / 1000
        if p is not None:
            last_bpb = round(p.val_bpb, 4)
        rows.append((t, text))
    return timeline(rows or [(0.0, "")])


def test_real_logs_replayed_honestly_are_not_flagged_and_slowed_ones_are(corpus, tmp_path):
    from harness.logs import parse_log, read_text

    rec = tmp_path / "rec"
    rec.mkdir()
    logs = sorted((corpus / "track_10min_16mb").glob("*/*.log"))
    assert len(logs) > 50
    flagged_slow = honest_checked = several_runs = 0
    for path in logs:
        text = read_text(path)[0]
        log = parse_log(text)
        times = [s.train_time_ms for s in log.steps if s.train_time_ms is not None]
        if times != sorted(times) or any(p.line < (log.steps[-1].line if log.steps else 0) for p in log.phases):
            several_runs += 1  # a file holding several runs; a reproduction's log is always one run
            continue
        obs, findings = judged(replay(text), rec)
        assert "PG-TIME-101" not in ids(findings), path
        assert "PG-TIME-103" not in ids(findings), path
        if obs.clean_segments >= 2 and (obs.printed_train_s or 0) > 60:
            honest_checked += 1
            obs, findings = judged(replay(text, slow=1.5), rec)
            flagged_slow += "PG-TIME-101" in ids(findings)
            assert obs.train_ratio == pytest.approx(1 / 1.5, rel=0.05), path
    assert honest_checked > 40 and flagged_slow == honest_checked and several_runs < 10


# --- training data read after the training budget (PG-TIME-108), real runs ---------------------
CALIBRATING = '''\
"""A tiny record whose GPTQ-style calibration reads training shards after its loop; CALIB says
when: "late" waits 3 s past the loop (outside a 2 s budget), "inside" calibrates at once."""
import glob, os, time
CALIB = "{calib}"
shards = sorted(glob.glob(os.path.join(os.environ["DATA_PATH"], "fineweb_train_*.bin")))
with open(shards[0], "rb") as f:  # warm-up before the training clock starts: allowed
    f.read()
time.sleep(0.5)
seed = int(os.environ["SEED"])
print(f"seed:{{seed}}", flush=True)
t0 = time.monotonic()
print("step:0/4 val_loss:6.9000 val_bpb:4.1000 train_time:0ms step_avg:0.01ms", flush=True)
for step in range(1, 5):
    with open(shards[step % len(shards)], "rb") as f:
        f.read()
    time.sleep(0.2)
    ms = (time.monotonic() - t0) * 1000
    print(f"step:{{step}}/4 train_loss:3.0 train_time:{{ms:.0f}}ms step_avg:{{ms / step:.1f}}ms", flush=True)
print(f"stopping_early: wallclock_cap train_time:{{ms:.0f}}ms step:4/4", flush=True)
if CALIB == "late":
    time.sleep(3.0)
for s in shards:  # calibration batches drawn from the training shards
    with open(s, "rb") as f:
        f.read(1024)
with open("final_model.int6.ptz", "wb") as f:
    f.write(bytes(5000))
code = os.path.getsize(__file__)
print("Serialized model int6+lzma: 5000 bytes", flush=True)
print(f"Code size: {{code}} bytes", flush=True)
print(f"Total submission size int6+lzma: {{5000 + code}} bytes", flush=True)
bpb = 1.8 + (seed % 7) / 10000
print(f"final_int6_roundtrip val_loss:{{bpb * 1.6:.4f}} val_bpb:{{bpb:.4f}} eval_time:1ms", flush=True)
print(f"final_int6_roundtrip_exact val_loss:{{bpb * 1.6:.8f}} val_bpb:{{bpb:.8f}}", flush=True)
'''


def calibrating_record(tmp_path: Path, calib: str) -> tuple[Path, Path]:
    import json

    rec, data = tmp_path / f"rec-{calib}", tmp_path / "data"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(CALIBRATING.format(calib=calib))
    seeds = {str(s): {"val_bpb": round(1.8 + (s % 7) / 10000, 4)} for s in (1, 2, 3)}
    (rec / "submission.json").write_text(json.dumps({
        "name": f"calibration {calib}", "author": "pgolf tests", "github_id": "pgolf", "date": "2026-11-21",
        "val_bpb": 1.8002, "seeds": [1, 2, 3], "seed_results": seeds}))
    if not data.exists():
        data.mkdir()
        for i in range(3):
            (data / f"fineweb_train_{i:06d}.bin").write_bytes(os.urandom(4096))
        (data / "fineweb_val_000000.bin").write_bytes(os.urandom(4096))
    return rec, data


@pytest.mark.parametrize("runner", ["local", "docker"])
def test_calibrating_on_training_shards_after_the_budget_fails_and_inside_passes(runner, tmp_path):
    """Issue 12 item 9: by the harness clock, the last training-shard read must fall inside the
    training budget counted from the training clock's start (2 s + 0.5 s grace here)."""
    from harness.reproduce.report import build_report, render_markdown
    from harness.reproduce.seeds import ReproConfig, run_seeds
    from harness.runners import make_runner

    if runner == "docker":
        docker_or_skip()
    budgets = Budgets(train_s=2.0, eval_s=30.0, grace_s=30.0, train_grace_s=0.5)
    reports = {}
    for calib, seeds in (("late", [1]), ("inside", [1, 2, 3])):
        rec, data = calibrating_record(tmp_path, calib)
        cfg = ReproConfig(record_dir=rec, out_dir=tmp_path / f"out-{calib}", seeds=seeds, data_path=str(data),
                          launcher="python", budgets=budgets, runner=runner)
        opts = {"warn": False} if runner == "local" else {}
        results = run_seeds(cfg, runner=make_runner(runner, **opts))
        reports[calib] = (build_report(cfg, results, with_plots=False), results)
    late, late_results = reports["late"]
    f = next(x for x in late.findings if x.rule_id == "PG-TIME-108")
    assert f.severity.value == "error" and late.verdict.value == "FAIL"
    o = late_results[0]["observed"]
    # the warm-up read came before the training clock; the calibration 3 s after the loop
    assert o["train_data_first_s"] < o["train_start_s"] < o["train_data_deadline_s"] < o["train_data_last_s"]
    assert o["train_data_last_s"] - o["train_start_s"] > 3.0
    assert f.data["deadline_s"] == pytest.approx(o["train_start_s"] + 2.5, abs=1e-3)
    assert {"kernel", "hook"} <= set(o["train_data_seen"]) and o["hook_processes"] >= 1
    assert all(seen["opens"] >= 8 for seen in o["train_data_seen"].values())  # 1 warm-up + 4 steps + 3 calibration
    assert o["artifact_appeared_s"] is not None and o["artifact_appeared_s"] >= o["train_data_last_s"] - 0.1
    inside, inside_results = reports["inside"]
    assert not [x for x in inside.findings if x.rule_id in ("PG-TIME-108", "PG-TIME-109")]
    assert inside.verdict.value == "PASS", [(x.rule_id, x.message) for x in inside.findings + inside.children[0].findings]
    for r in inside_results:
        o = r["observed"]
        assert o["train_start_s"] < o["train_data_last_s"] <= o["train_data_deadline_s"]
    # the report shows both times per seed
    md = render_markdown(late)
    row = next(ln for ln in md.splitlines() if ln.startswith("| 1 |"))
    assert f"{late_results[0]['observed']['train_data_last_s']:.1f} / " in row
    assert f"/ {late_results[0]['observed']['artifact_appeared_s']:.1f} |" in row


def docker_or_skip() -> None:
    """Skip without an engine or the pinned image; under CI=true (.ci/run provides both), fail."""
    from harness.runners.docker import unavailable

    if why := unavailable():
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"docker runner unavailable: {why}")


def test_reads_before_the_clock_and_without_a_training_start(record):
    """Timelines: warm-up reads before the training clock never count; with no timed line the
    verdict is undecided, not an error."""
    rows = honest_rows()
    start = rows[0][0]  # step:0 at 5 s, train_time 0
    access = {"roots": ["/data"], "channels": {"kernel": "inotify on /data", "hook": "audit hook"},
              "train": {"kernel": {"files": 2, "opens": 3, "reads": 9, "maps": 0, "first_s": 1.0,
                                   "last_s": start + 600.9, "last_file": "fineweb_train_000001.bin"}},
              "recent": [[start + 600.9, "kernel", "read", "fineweb_train_000001.bin"]]}
    outcome = timeline(rows, written=ARTIFACT)
    outcome.details["data_access"] = access
    obs, findings = judged(outcome, record, scored="legal_ttt")
    assert "PG-TIME-108" not in ids(findings)  # within 600 + 1 s of the training start
    assert obs.train_start_s == 5.0 and obs.train_data_deadline_s == 606.0
    access["train"]["kernel"]["last_s"] = start + 602.0
    access["recent"] = [[start + 602.0, "kernel", "read", "fineweb_train_000001.bin"]]
    _, findings = judged(outcome, record, scored="legal_ttt")
    late = next(f for f in findings if f.rule_id == "PG-TIME-108")
    assert late.severity.value == "error" and "hook saw no such read" in late.message
    assert any("607.00 s: read of fineweb_train_000001.bin (kernel)" in e.message for e in late.evidence)
    untimed = timeline([(3.0, "hello"), (700.0, "bye")])
    untimed.details["data_access"] = access
    _, findings = judged(untimed, record)
    f = next(f for f in findings if f.rule_id == "PG-TIME-108")
    assert f.undecided and f.severity.value == "warning"
