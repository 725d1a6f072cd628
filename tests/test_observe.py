"""Observation: the harness clock and the disk against what a run printed.

Two kinds of tests: real runs of the small fixture scripts in tests/fixtures/repro (a lying
timer, an oversized artifact), and timelines of stamped lines built here, where each stamp is
chosen to sit just inside or just outside a limit.
"""
from __future__ import annotations

import math
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
