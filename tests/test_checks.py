"""harness.checks: every rule fires on a one-edit variant of the passing fixture record, at the
line that shows it, and stays silent on the passing record. Plus the rule registry and rule sets.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from check_support import FIX, copy_record, edit, edit_json, log
from harness.checks import RULES, baseline_from_losses, check_record, run_checks, seed_table
from harness.checks.registry import rule
from harness.errors import InputError
from harness.findings import Severity, Verdict
from harness.records import load_record
from harness.rulesets import builtin_names, load_ruleset


def _ids(findings, severity=None):
    return sorted({f.rule_id for f in findings if severity is None or f.severity is severity})


def _check(rec: Path, ruleset="track_10min_16mb", against=None):
    return run_checks(load_record(rec), ruleset, against)


def test_passing_record(tmp_path):
    report = check_record(load_record(copy_record(tmp_path)))
    assert report.verdict is Verdict.PASS
    assert _ids(report.findings, Severity.ERROR) == [] and _ids(report.findings, Severity.WARNING) == []
    notes = {f.rule_id: f for f in report.findings}
    # seed 1337 stopped 51 ms past 600 s with 86.6 ms steps: within the one-step grace
    assert "within one step" in notes["PG-TIME-001"].message and notes["PG-TIME-001"].location.line == 17
    assert "significance not tested" in notes["PG-STATS-001"].message
    assert report.stamp["ruleset"] == "track_10min_16mb@" + load_ruleset("track_10min_16mb").version
    rows = {r["seed"]: r for r in report.data["seeds"]}
    assert rows[42]["scored_phase"] == "final_int6_sliding_window_exact"
    assert rows[42]["val_bpb"] == 1.11437394 and rows[42]["bytes_total"] == 15984850
    assert rows[42]["train_s"] == 599.987 and rows[42]["scored_eval_s"] == 77.178
    assert rows[42]["all_eval_s"] == pytest.approx(6.812 + 77.178)
    assert "matches the claimed 1.11437394" in rows[42]["why_scored"]


# (rule that must fire, severity, edit to the passing record, (file, line) where it must land)
def _over_cap(r):
    edit(log(r, 42), "Total submission size int6+lzma: 15984850", "Total submission size int6+lzma: 16000001")
    edit(log(r, 42), "Serialized model int6+lzma: 15917247", "Serialized model int6+lzma: 15932398")


def _sum_off(r):
    edit(log(r, 42), "Serialized model int6+lzma: 15917247", "Serialized model int6+lzma: 15917000")


def _no_total(r):
    edit(log(r, 42), "Total submission size int6+lzma: 15984850 bytes\n", "")


def _packed_code(r):
    edit(log(r, 42), "Code size: 67603 bytes", "Code size (uncompressed): 167603 bytes\nCode size (compressed): 67603 bytes")


def _train_over(r):
    edit(log(r, 42), "train_time:599987ms step:6935", "train_time:600300ms step:6935")


def _train_warn(r):
    edit(log(r, 42), "train_time:599987ms step:6935", "train_time:600150ms step:6935")


def _eval_617(r):
    edit(log(r, 42), "stride:64 eval_time:77178ms", "stride:64 eval_time:617000ms")


def _all_eval(r):
    edit(log(r, 42), "stride:64 eval_time:77178ms", "stride:64 eval_time:595000ms")


def _no_eval_time(r):
    edit(log(r, 42), " stride:64 eval_time:77178ms", "")
    edit(log(r, 42), "final_int6_sliding_window val_loss", "final_int6_sliding_window_x val_loss")


def _two_seeds(r):
    log(r, 2025).unlink()
    edit_json(r / "submission.json", val_bpb=1.11472757, bytes_total=15984850, seeds=[1337, 42],
              seed_results=None)


def _seed_name(r):
    edit(log(r, 2025), "seed:2025", "seed:7")
    (r / "train_seed2025.log").rename(r / "train_seed9.log")


def _best_seed_claim(r):
    edit_json(r / "submission.json", val_bpb=1.11437394)


def _bytes_claim(r):
    edit_json(r / "submission.json", bytes_total=15863278)


def _seed_result(r):
    edit(r / "submission.json", '"val_loss": 1.88156874', '"val_loss": 1.88056874')


def _claimed_no_log(r):
    edit_json(r / "submission.json", seeds=[1337, 42, 2025, 7])


def _no_submission(r):
    (r / "submission.json").unlink()


def _garbage_only(r):
    for s in (1337, 42, 2025):
        log(r, s).unlink()
    (r / "train.log").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\n")


def _truncated(r):
    text = log(r, 2025).read_text()
    log(r, 2025).write_text(text[: text.index("final_int6_roundtrip ")])


def _non_utf8(r):
    with open(log(r, 42), "ab") as fh:
        fh.write(b"\xff\xfe\n")


def _fallback(r):
    edit_json(r / "submission.json", seed_results=None, seeds=None, val_bpb=1.1147)


CASES = [
    ("PG-BYTES-001", Severity.ERROR, _over_cap, ("train_seed42.log", 22)),
    ("PG-BYTES-002", Severity.ERROR, _sum_off, ("train_seed42.log", 22)),
    ("PG-BYTES-003", Severity.WARNING, _no_total, ("train_seed42.log", None)),
    ("PG-BYTES-004", Severity.WARNING, _packed_code, ("train_seed42.log", 21)),
    ("PG-TIME-001", Severity.ERROR, _train_over, ("train_seed42.log", 17)),
    ("PG-TIME-001", Severity.WARNING, _train_warn, ("train_seed42.log", 17)),
    ("PG-TIME-002", Severity.ERROR, _eval_617, ("train_seed42.log", 25)),
    ("PG-TIME-003", Severity.WARNING, _all_eval, ("train_seed42.log", 25)),
    ("PG-TIME-004", Severity.WARNING, _no_eval_time, ("train_seed42.log", 26)),
    ("PG-SEEDS-001", Severity.ERROR, _two_seeds, ("record", None)),
    ("PG-SEEDS-002", Severity.WARNING, _seed_name, ("train_seed9.log", 9)),
    ("PG-CLAIMS-001", Severity.ERROR, _best_seed_claim, ("submission.json", 7)),
    ("PG-CLAIMS-002", Severity.ERROR, _bytes_claim, ("submission.json", 9)),
    ("PG-CLAIMS-003", Severity.ERROR, _seed_result, ("submission.json", 23)),
    ("PG-CLAIMS-004", Severity.WARNING, _claimed_no_log, ("submission.json", None)),
    ("PG-CLAIMS-005", Severity.WARNING, _no_submission, ("record", None)),
    ("PG-PARSE-001", Severity.ERROR, _garbage_only, ("train.log", 3)),  # its last line
    ("PG-PARSE-001", Severity.ERROR, _truncated, ("train_seed2025.log", 22)),
    ("PG-PARSE-002", Severity.NOTE, _non_utf8, ("train_seed42.log", None)),
    ("PG-PARSE-003", Severity.NOTE, _fallback, None),
]


@pytest.mark.parametrize("rule_id,severity,mutate,where", CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in CASES])
def test_rule_fires_where_it_should(tmp_path, rule_id, severity, mutate, where):
    rec = copy_record(tmp_path)
    mutate(rec)
    findings = _check(rec)
    hits = [f for f in findings if f.rule_id == rule_id and f.severity is severity]
    assert hits, f"{rule_id} did not fire as {severity.value}: {[(f.rule_id, f.severity.value, f.message) for f in findings]}"
    if where is not None:
        name, line = where
        assert any(Path(f.location.path).name == name and f.location.line == line for f in hits), \
            [(str(f.location), f.message) for f in hits]


def test_every_rule_has_a_case():
    covered = {c[0] for c in CASES} | {"PG-STATS-001"}  # significance: tests below
    assert covered == set(RULES)


def test_fail_messages_say_what_the_files_show(tmp_path):
    rec = copy_record(tmp_path)
    _best_seed_claim(rec)
    _eval_617(rec)
    report = check_record(load_record(rec))
    assert report.verdict is Verdict.FAIL
    msgs = {f.rule_id: f.message for f in report.findings if f.severity is Severity.ERROR}
    assert "best seed's score, not the mean" in msgs["PG-CLAIMS-001"]
    assert "617.0 s" in msgs["PG-TIME-002"] and "final_int6_sliding_window_exact" in msgs["PG-TIME-002"]


def test_stray_non_train_log_beside_scored_logs_is_a_warning(tmp_path):
    rec = copy_record(tmp_path)
    (rec / "summary.log").write_text("=== all seeds done ===\nmean 1.1147\n")
    findings = _check(rec)
    hit = [f for f in findings if f.rule_id == "PG-PARSE-001"]
    assert [f.severity for f in hit] == [Severity.WARNING]


def test_eval_only_rerun_takes_bytes_and_train_time_from_the_training_log(tmp_path):
    rec = copy_record(tmp_path)
    (rec / "rerun").mkdir()
    (rec / "rerun" / "seed_42.log").write_text(
        "seed:42\nquantized_ttt_phased val_loss:1.88150000 val_bpb:1.11437000 eval_time:500000ms\n")
    edit_json(rec / "submission.json", seed_results={"42": {"val_bpb": 1.11437, "val_loss": 1.8815}})
    findings = _check(rec)
    assert _ids(findings, Severity.ERROR) == [] and _ids(findings, Severity.WARNING) == []
    rows = {r["seed"]: r for r in seed_table(load_record(rec), "track_10min_16mb")}
    assert rows[42]["log"].endswith("rerun/seed_42.log") and rows[42]["scored_eval_s"] == 500.0
    assert rows[42]["bytes_total"] == 15984850 and rows[42]["train_log"].endswith("train_seed42.log")


# --- significance ---------------------------------------------------------------------------------
def test_significance_against_losses(tmp_path):
    rec = load_record(copy_record(tmp_path))
    good = run_checks(rec, None, baseline_from_losses("1.8950,1.8960,1.8955"))
    hit = [f for f in good if f.rule_id == "PG-STATS-001"][0]
    assert hit.severity is Severity.NOTE and hit.data["significant"] and hit.data["p"] < 0.01
    close = run_checks(rec, None, baseline_from_losses("1.8860,1.8870,1.8865"))
    hit = [f for f in close if f.rule_id == "PG-STATS-001"][0]
    assert hit.severity is Severity.ERROR and "not significant" in hit.message
    one = check_record(rec, None, baseline_from_losses("1.9"))
    hit = [f for f in one.findings if f.rule_id == "PG-STATS-001"][0]
    assert hit.undecided and one.verdict is Verdict.REVIEW


def test_significance_against_a_record_folder(tmp_path):
    from harness.checks import baseline_from_record

    base = copy_record(tmp_path, "base")
    for s, old in ((1337, "1.88276292"), (42, "1.88156874"), (2025, "1.88219921")):
        edit(log(base, s), f"val_loss:{old}", f"val_loss:{float(old) + 0.02:.8f}")
    b = baseline_from_record(base)
    assert b.val_losses == pytest.approx([1.88156874 + 0.02, 1.88276292 + 0.02, 1.88219921 + 0.02])
    res = [f for f in run_checks(load_record(copy_record(tmp_path)), None, b) if f.rule_id == "PG-STATS-001"][0]
    assert res.data["improvement"] == pytest.approx(0.02) and res.data["significant"]


def test_bad_against_losses():
    with pytest.raises(InputError):
        baseline_from_losses("1.9,abc")


# --- rule sets and the registry -------------------------------------------------------------------
def test_builtin_rulesets_load_and_differ():
    assert {"track_10min_16mb", "track_non_record_16mb"} <= set(builtin_names())
    rec_rs, non = load_ruleset("track_10min_16mb"), load_ruleset("track_non_record_16mb")
    assert rec_rs.params("PG-BYTES-001").cap_bytes == 16_000_000 == non.params("PG-BYTES-001").cap_bytes
    assert rec_rs.params("PG-TIME-001").limit_seconds == 600.0
    assert rec_rs.params("PG-TIME-001").grace_max_seconds == 1.0
    assert rec_rs.params("PG-SEEDS-001").min_seeds == 3
    assert rec_rs.params("PG-STATS-001").min_improvement_nats == 0.005 and rec_rs.params("PG-STATS-001").alpha == 0.01
    assert "PG-TIME-001" not in non.checks and "PG-SEEDS-001" not in non.checks
    assert rec_rs.version and non.version


def test_non_record_ruleset_skips_time_and_seeds(tmp_path):
    rec = copy_record(tmp_path / "track_non_record_16mb")
    _two_seeds(rec)
    _eval_617(rec)
    assert _ids(_check(rec, None), Severity.ERROR) == []


@pytest.mark.parametrize("body,needle", [
    ("name: x\nversion: '1'\nchecks:\n  PG-NOPE-001: {}\n", "unknown check id"),
    ("name: x\nversion: '1'\nchecks:\n  PG-BYTES-001: {cap: 5}\n", "unknown setting"),
    ("name: x\nversion: '1'\nchecks:\n  PG-BYTES-001: {cap_bytes: lots}\n", "expected int"),
    ("name: x\nchecks: {}\n", "missing `version`"),
    ("name: x\nversion: '1'\nchecks: [1, 2\n", "invalid YAML"),
])
def test_bad_rulesets_are_input_errors(tmp_path, body, needle):
    p = tmp_path / "rs.yaml"
    p.write_text(body)
    with pytest.raises(InputError, match=needle):
        load_ruleset(p)


def test_custom_ruleset_sets_numbers(tmp_path):
    p = tmp_path / "tight.yaml"
    p.write_text("name: tight\nversion: '7'\nchecks:\n  PG-BYTES-001: {cap_bytes: 15900000}\n")
    findings = _check(copy_record(tmp_path), p)
    assert _ids(findings) == ["PG-BYTES-001"]
    assert len(findings) == 1 and "seed 42" in findings[0].message  # only seed 42 is over 15.9 MB


def test_registry_refuses_duplicate_ids():
    with pytest.raises(ValueError, match="registered twice"):
        rule("PG-BYTES-001", "again", "BYTES", "error", "dup")(lambda r, c, p: [])


def test_rules_declare_typed_params():
    for r in RULES.values():
        assert r.id.startswith("PG-") and r.summary and dataclasses.is_dataclass(r.params)


def test_unknown_ruleset_name():
    with pytest.raises(InputError, match="no such rule set"):
        load_ruleset("track_1h_1gb")


def test_fixture_logs_are_hand_written():
    # the fixtures imitate upstream shapes; none is a corpus file (those are never copied)
    assert (FIX / "record_3seed" / "submission.json").read_text().count("pgolf tests") == 1


def test_headline_equal_to_mean_of_rounded_seed_claims_is_consistent(tmp_path):
    # per-seed claims at 5 decimals average 1.1147333; the logs average 1.1147343, 1.3e-6 off the 6-decimal headline
    rec = copy_record(tmp_path)
    edit_json(rec / "submission.json", val_bpb=1.114733, seed_results={
        "1337": {"val_bpb": 1.11508}, "42": {"val_bpb": 1.11437}, "2025": {"val_bpb": 1.11475}})
    assert "PG-CLAIMS-001" not in _ids(_check(rec))
    edit_json(rec / "submission.json", val_bpb=1.11480)
    assert "PG-CLAIMS-001" in _ids(_check(rec), Severity.ERROR)


def test_bytes_total_that_is_the_mean_says_so(tmp_path):
    rec = copy_record(tmp_path)
    edit_json(rec / "submission.json", bytes_total=round((15863278 + 15984850 + 15876310) / 3))
    hit = [f for f in _check(rec) if f.rule_id == "PG-CLAIMS-002"][0]
    assert "mean of the per-seed totals" in hit.message
