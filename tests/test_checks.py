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


def _sum_hides_breach(r):  # the printed total fits; model + code does not
    edit(log(r, 42), "Serialized model int6+lzma: 15917247", "Serialized model int6+lzma: 15940000")


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


def _bytes_claim_hides_breach(r):  # the claim fits the cap; seed 42's log does not
    _over_cap(r)


def _seed_bytes_claim(r):
    edit(r / "submission.json", '"artifact_bytes": 15984850', '"artifact_bytes": 15978439')


def _seed_steps_claim(r):
    edit(r / "submission.json", '"steps": 6935', '"steps": 6940')


def _bpb_string(r):
    edit_json(r / "submission.json", val_bpb="1.1147")


def _bytes_list(r):
    edit_json(r / "submission.json", bytes_total=[15984850])


def _calib_after_clock(r):  # GPTQ on training shards after the clock: 599.987 + 3.5 s
    edit(log(r, 42), "peak memory allocated", "GPTQ:collecting Hessians from calibration data...\n"
         "GPTQ:collected 67 Hessians in 3.5s\npeak memory allocated")


def _calib_within_allowance(r):  # 599.987 + 0.6 s: over by 0.587 s
    edit(log(r, 42), "seed:42\n", "seed:42\ngptq:reserving 0s, effective=599500ms\n")
    edit(log(r, 42), "peak memory allocated", "gptq:calibrating with 64 batches (training data)...\n"
         "gptq:calibrated 66 layers in 0.6s\npeak memory allocated")


def _extra_run_2400(r):  # a first attempt of seed 42 that trained 2,400 s, shipped beside the scored run
    text = log(r, 42).read_text().replace("train_time:599987ms", "train_time:2400107ms")
    (r / "train_seed42_first.log").write_text(text)


def _extra_run_truncated(r):
    text = log(r, 42).read_text()
    (r / "train_seed42_retry.log").write_text(text[: text.index("final_int6_roundtrip ")])


def _wrong_denominator(r):  # 75 M tokens with the same loss and bpb: 182.7 M bytes
    edit(log(r, 42), "tokens:62021632", "tokens:75000000")


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
    ("PG-BYTES-002", Severity.WARNING, _sum_off, ("train_seed42.log", 22)),
    ("PG-BYTES-002", Severity.ERROR, _sum_hides_breach, ("train_seed42.log", 22)),
    ("PG-BYTES-003", Severity.WARNING, _no_total, ("train_seed42.log", None)),
    ("PG-BYTES-004", Severity.WARNING, _packed_code, ("train_seed42.log", 21)),
    ("PG-TIME-001", Severity.ERROR, _train_over, ("train_seed42.log", 17)),
    ("PG-TIME-001", Severity.WARNING, _train_warn, ("train_seed42.log", 17)),
    ("PG-TIME-002", Severity.ERROR, _eval_617, ("train_seed42.log", 25)),
    ("PG-TIME-003", Severity.WARNING, _all_eval, ("train_seed42.log", 25)),
    ("PG-TIME-004", Severity.WARNING, _no_eval_time, ("train_seed42.log", 26)),
    ("PG-TIME-005", Severity.ERROR, _calib_after_clock, ("train_seed42.log", 19)),
    ("PG-TIME-005", Severity.WARNING, _calib_within_allowance, ("train_seed42.log", 20)),
    ("PG-SEEDS-001", Severity.ERROR, _two_seeds, ("record", None)),
    ("PG-SEEDS-002", Severity.WARNING, _seed_name, ("train_seed9.log", 9)),
    ("PG-SEEDS-003", Severity.WARNING, _extra_run_2400, ("train_seed42_first.log", 17)),
    ("PG-CLAIMS-001", Severity.ERROR, _best_seed_claim, ("submission.json", 7)),
    ("PG-CLAIMS-002", Severity.WARNING, _bytes_claim, ("submission.json", 9)),
    ("PG-CLAIMS-002", Severity.ERROR, _bytes_claim_hides_breach, ("submission.json", 9)),
    ("PG-CLAIMS-003", Severity.ERROR, _seed_result, ("submission.json", 23)),
    ("PG-CLAIMS-003", Severity.WARNING, _seed_bytes_claim, ("submission.json", 23)),
    ("PG-CLAIMS-003", Severity.WARNING, _seed_steps_claim, ("submission.json", 23)),
    ("PG-CLAIMS-004", Severity.WARNING, _claimed_no_log, ("submission.json", None)),
    ("PG-CLAIMS-005", Severity.WARNING, _no_submission, ("record", None)),
    ("PG-CLAIMS-006", Severity.ERROR, _bpb_string, ("submission.json", 7)),
    ("PG-CLAIMS-006", Severity.WARNING, _bytes_list, ("submission.json", 9)),
    ("PG-SCORE-001", Severity.ERROR, _wrong_denominator, ("train_seed42.log", 26)),
    ("PG-PARSE-001", Severity.ERROR, _garbage_only, ("train.log", 3)),  # its last line
    ("PG-PARSE-001", Severity.ERROR, _truncated, ("train_seed2025.log", 22)),
    ("PG-PARSE-001", Severity.WARNING, _extra_run_truncated, ("train_seed42_retry.log", 22)),
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
    roles = {r["file"]: r["role"] for r in check_record(load_record(rec)).data["logs"]}
    assert roles["rerun/seed_42.log"] == "scored" and roles["train_seed42.log"] == "training run of seed 42"


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


def test_registry_refuses_duplicate_ids_unknown_clauses_and_rules_without_rationale():
    def documented(r, c, p):
        """why"""
        return []

    with pytest.raises(ValueError, match="registered twice"):
        rule("PG-BYTES-001", "again", "BYTES", "error", "dup", policy="limit")(documented)
    with pytest.raises(ValueError, match="policy clause"):
        rule("PG-TEST-901", "x", "BYTES", "error", "x", policy="because")(documented)
    with pytest.raises(ValueError, match="docstring"):
        rule("PG-TEST-902", "x", "BYTES", "error", "x", policy="limit")(lambda r, c, p: [])
    assert "PG-TEST-901" not in RULES and "PG-TEST-902" not in RULES


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
    assert hit.severity is Severity.WARNING and "fits the 16,000,000-byte cap" in hit.message  # policy: `figure`


# --- the severity policy (harness/rulesets/README.md) ---------------------------------------------
POLICY_DOC = Path(__file__).resolve().parent.parent / "harness" / "rulesets" / "README.md"


def _policy_table() -> dict[str, list[str]]:
    rows = {}
    for line in POLICY_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith("PG-") and len(cells) == 6:
            rows[cells[0]] = cells
    return rows


def test_every_rule_is_in_the_policy_with_its_clause_and_scope():
    from harness.checks.registry import POLICY

    table = _policy_table()
    assert set(table) == set(RULES)
    for rid, r in RULES.items():
        _, name, _, _, clauses, scope = table[rid]
        assert name == r.name, rid
        assert {c.strip() for c in clauses.split(",")} == set(r.policy), rid
        assert scope == r.scope, rid
        assert set(r.policy) <= set(POLICY)
        assert "policy" in (r.fn.__doc__ or ""), f"{rid}: the rationale does not cite its clause"
    text = POLICY_DOC.read_text()
    for clause in POLICY:
        assert f"| `{clause}` |" in text, clause


def test_policy_a_misreported_figure_within_the_cap_is_a_warning_and_the_record_passes(tmp_path):
    rec = copy_record(tmp_path)
    edit_json(rec / "submission.json", bytes_total=15900000)  # a rounded figure, every seed under the cap
    _seed_bytes_claim(rec)
    _seed_steps_claim(rec)
    report = check_record(load_record(rec))
    assert report.verdict is Verdict.PASS
    assert _ids(report.findings, Severity.WARNING) == ["PG-CLAIMS-002", "PG-CLAIMS-003"]
    msg = [f.message for f in report.findings if f.rule_id == "PG-CLAIMS-002"][0]
    assert "a rounded figure" in msg


def test_policy_the_same_claims_over_the_cap_are_errors(tmp_path):
    rec = copy_record(tmp_path)
    _over_cap(rec)  # seed 42's log: 16,000,001; the claims still say 15,984,850
    errors = {f.rule_id: f for f in _check(rec) if f.severity is Severity.ERROR}
    assert set(errors) == {"PG-BYTES-001", "PG-CLAIMS-002", "PG-CLAIMS-003"}
    assert "over the 16,000,000-byte cap the claim fits under" in errors["PG-CLAIMS-003"].message
    assert errors["PG-CLAIMS-002"].data["max"] == 16000001


def test_policy_a_score_claim_is_an_error_even_when_worse_than_the_logs(tmp_path):
    rec = copy_record(tmp_path)
    edit_json(rec / "submission.json", val_bpb=1.1151)  # worse than the mean 1.11473428
    assert "PG-CLAIMS-001" in _ids(_check(rec), Severity.ERROR)


@pytest.mark.parametrize("field,value", [
    ("val_bpb", "1.1147"), ("val_bpb", [1.1147]), ("val_bpb", {"mean": 1.1147}), ("val_bpb", True),
    ("val_bpb", float("nan")), ("val_bpb", float("inf")), ("val_bpb", 1e300), ("val_loss", "low"),
    ("bytes_total", "15.9MB"), ("bytes_total", [15984850]), ("bytes_total", -float("inf")),
    ("seeds", ["1337", "fortytwo", None]), ("seed_results", {"42": "fast", "1337": {"val_bpb": "1.115"}}),
    ("seed_results", [{"seed": 42, "val_bpb": float("nan"), "steps": "many"}, 7]),
])
def test_non_numbers_in_submission_json_are_findings_in_every_format(tmp_path, field, value):
    import json

    from harness.report import render

    rec = copy_record(tmp_path)
    data = json.loads((rec / "submission.json").read_text())
    data[field] = value
    (rec / "submission.json").write_text(json.dumps(data, indent=2))  # NaN/Infinity as Python's json writes them
    report = check_record(load_record(rec))
    hits = [f for f in report.findings if f.rule_id == "PG-CLAIMS-006"]
    assert hits, [(f.rule_id, f.message) for f in report.findings]
    assert all("not a number" in f.message for f in hits)
    if field in ("val_bpb", "val_loss") or (field == "seed_results" and "val_bpb" in str(value)):
        assert any(f.severity is Severity.ERROR for f in hits)
    for fmt in ("text", "markdown", "json"):
        out = render(fmt, report)
        assert "PG-CLAIMS-006" in out
    doc = json.loads(render("json", report))
    assert doc["data"]["claimed_val_bpb"] is None or isinstance(doc["data"]["claimed_val_bpb"], float)


# --- every log accounted for ----------------------------------------------------------------------
def test_every_file_has_a_role_and_an_extra_run_over_a_limit_is_named(tmp_path):
    import json

    from harness.report import render

    rec = copy_record(tmp_path)
    _extra_run_2400(rec)
    text = log(rec, 42).read_text()
    (rec / "train_seed42_rerun.log").write_text(text)  # a faithful rerun: an extra run, no warning
    (rec / "requirements.txt").write_text("torch\n")
    (rec / "notes.txt").write_text("tried three learning rates, see README\n")
    report = check_record(load_record(rec))
    assert report.verdict is Verdict.PASS
    roles = {r["file"]: r["role"] for r in report.data["logs"]}
    assert roles == {
        "train_seed1337.log": "scored", "train_seed42.log": "scored", "train_seed2025.log": "scored",
        "train_seed42_first.log": "extra run of seed 42", "train_seed42_rerun.log": "extra run of seed 42",
        "requirements.txt": "other file: not a log (by its name)",
        "notes.txt": "other file: text that does not read like a train log",
        "submission.json": "the claims (submission.json)",
    }
    warn = [f for f in report.findings if f.rule_id == "PG-SEEDS-003"]
    assert len(warn) == 1 and warn[0].severity is Severity.WARNING
    assert "train_seed42_first.log" in warn[0].message and "2400.107 s" in warn[0].message
    for fmt in ("text", "markdown"):
        out = render(fmt, report)
        assert "train_seed42_first.log" in out and "extra run of seed 42" in out and "requirements.txt" in out
    doc = json.loads(render("json", report))
    assert {r["file"] for r in doc["data"]["logs"]} == set(roles)


# --- the byte denominator -------------------------------------------------------------------------
def test_implied_bytes_formula_and_rounding_slack():
    from harness.checks.denominator import implied_val_bytes, rounding_slack
    from harness.logs import parse_log

    assert implied_val_bytes(1.88156874, 62021632, 1.11437394) == pytest.approx(151_079_963, abs=2)
    assert implied_val_bytes(0.0, 62021632, 1.1) is None and implied_val_bytes(2.0, 0, 1.1) is None
    run = parse_log("final val_loss:1.8816 val_bpb:1.1144 eval_time:1ms\nfinal_exact val_loss:1.88156874 val_bpb:1.11437394\n")
    coarse, fine = run.phases
    assert (coarse.loss_decimals, coarse.bpb_decimals, fine.loss_decimals) == (4, 4, 8)
    assert rounding_slack(coarse) == pytest.approx(0.5e-4 / 1.8816 + 0.5e-4 / 1.1144)
    assert rounding_slack(fine) < 1e-8


@pytest.mark.parametrize("tokens,fires", [
    (62021632, False),   # 151,079,963: the merged SP-1024 figure
    (62050000, False),   # +0.046 %: inside the 0.05 % tolerance
    (62060000, True),    # +0.062 %
    (61997056, False),   # -0.040 %: the 32 K-context trim of the GDN study (merged)
    (61985000, True),    # -0.059 %
])
def test_denominator_tolerance_boundary(tmp_path, tokens, fires):
    rec = copy_record(tmp_path)
    for seed in (1337, 42, 2025):
        edit(log(rec, seed), "tokens:62021632", f"tokens:{tokens}")
    hits = [f for f in _check(rec) if f.rule_id == "PG-SCORE-001" and f.severity is Severity.ERROR]
    assert bool(hits) == fires
    if hits:
        assert "the score's byte denominator is wrong" in hits[0].message and hits[0].data["val_tokens"] == tokens


def test_denominator_not_printed_is_one_note(tmp_path):
    rec = copy_record(tmp_path)
    for seed in (1337, 42, 2025):
        edit(log(rec, seed), " tokens:62021632", "")
    hits = [f for f in _check(rec) if f.rule_id == "PG-SCORE-001"]
    assert [f.severity for f in hits] == [Severity.NOTE] and hits[0].data["seeds"] == ["42", "1337", "2025"]


# --- significance across tokenizers --------------------------------------------------------------
def _baseline(losses, bpbs, name, tokens):
    from harness.checks import Baseline
    from harness.checks.tokenizer import TokenizerId

    return Baseline(losses, f"fixture {name}", bpbs, TokenizerId(name, None, tokens, ""))


def test_same_tokenizer_compares_per_token(tmp_path):
    rec = load_record(copy_record(tmp_path))
    base = _baseline([1.8950, 1.8960, 1.8955], [1.1222, 1.1228, 1.1225], "fineweb_1024_bpe.model", 62021632)
    hit = [f for f in run_checks(rec, None, base) if f.rule_id == "PG-STATS-001"][0]
    assert hit.data["unit"] == "nats per token" and "nats per token" in hit.message
    assert "same tokenizer fineweb_1024_bpe.model" in hit.message and hit.data["significant"]


def test_issue_example_1118_vs_1061_is_worse_per_byte_not_043_nats_better(tmp_path):
    """A record at 1.118 bpb (SP-1024, val_loss 1.89) against one at 1.061 bpb (CaseOps SP-8192,
    val_loss 2.32): per token it read "0.43 nats better, p = 3e-06"; per byte it is worse."""
    rec = copy_record(tmp_path)
    for seed, (loss, bpb) in {1337: (1.88820000, 1.11840000), 42: (1.88760000, 1.11810000),
                              2025: (1.88790000, 1.11820000)}.items():
        text = log(rec, seed).read_text()
        old = [ln for ln in text.splitlines() if ln.startswith("final_int6_sliding_window_exact")][0]
        edit(log(rec, seed), old, f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    edit_json(rec / "submission.json", seed_results=None, val_bpb=1.11823333)
    base = _baseline([2.32247803, 2.32157310, 2.32449303], [1.06128183, 1.06086831, 1.06220261],
                     "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model", 47851520)
    hit = [f for f in run_checks(load_record(rec), None, base) if f.rule_id == "PG-STATS-001"][0]
    assert hit.data["unit"] == "nats per byte" and "never per token across tokenizers" in hit.message
    assert hit.data["improvement"] == pytest.approx((1.06145092 - 1.11823333) * 0.6931471805599453, abs=1e-6)
    assert hit.data["improvement"] < 0 and hit.severity is Severity.ERROR and "not significant" in hit.message
    assert hit.data["comparison"]["margin"] == pytest.approx(0.005 * 47851520 / 151_080_000)


def test_per_byte_needs_the_baselines_token_count(tmp_path):
    rec = load_record(copy_record(tmp_path))
    base = _baseline([2.32, 2.33, 2.31], [1.061, 1.062, 1.060], "other.model", None)
    report = check_record(rec, None, base)
    hit = [f for f in report.findings if f.rule_id == "PG-STATS-001"][0]
    assert hit.undecided and "no validation token count" in hit.message and report.verdict is Verdict.REVIEW


def test_tokenizer_identity_from_printed_facts():
    from harness.checks.tokenizer import TokenizerId, same_tokenizer

    sp1024 = TokenizerId("fineweb_1024_bpe.model", None, 62021632)
    assert same_tokenizer(sp1024, TokenizerId("fineweb_1024_bpe.model", 1024, 62013440))[0]  # trimmed tail
    assert same_tokenizer(sp1024, TokenizerId(None, None, 62021632))[0]
    assert not same_tokenizer(sp1024, TokenizerId("fineweb_1024_bpe.model", None, 63779840))[0]  # another export
    assert not same_tokenizer(TokenizerId(None, 8192, 40540160), TokenizerId(None, 8192, 47851520))[0]  # CaseOps
    assert not same_tokenizer(TokenizerId(None, 8192, None), TokenizerId(None, 8192, None))[0]  # too little printed
    assert not same_tokenizer(sp1024, None)[0]


# --- a subset of seeds ---------------------------------------------------------------------------
def test_subset_reports_record_level_rules_as_not_evaluated(tmp_path):
    rec = copy_record(tmp_path)
    log(rec, 1337).unlink()
    log(rec, 2025).unlink()
    full = check_record(load_record(rec))
    assert {"PG-SEEDS-001", "PG-CLAIMS-001"} <= set(_ids(full.findings, Severity.ERROR))
    sub = check_record(load_record(rec), subset="ran 42 of 1337, 42, 2025")
    assert sub.verdict is Verdict.PASS
    skipped = {f.rule_id: f for f in sub.findings if f.data.get("not_evaluated")}
    assert set(skipped) == {r.id for r in RULES.values() if r.scope == "record" and r.id in load_ruleset("track_10min_16mb").checks}
    assert all(f.severity is Severity.NOTE and f.message == "not evaluated: subset of seeds (ran 42 of 1337, 42, 2025)"
               for f in skipped.values())
    assert sub.data["subset"] == "ran 42 of 1337, 42, 2025"


def test_ruleset_setting_is_the_sets_value_else_the_rules_default(tmp_path):
    """Rules read another rule's number (the byte cap, the validation bytes) through
    `Ruleset.setting`: the set's value when it selects the rule, else the rule's own default."""
    from harness.checks.denominator import FINEWEB_VAL_BYTES

    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nversion: '1'\ntrack: track_10min_16mb\nchecks:\n  PG-BYTES-001: {cap_bytes: 15000000}\n")
    rs = load_ruleset(str(path))
    assert rs.setting("PG-BYTES-001", "cap_bytes") == 15_000_000
    assert rs.params("PG-SCORE-001") is None and rs.setting("PG-SCORE-001", "val_bytes") == FINEWEB_VAL_BYTES
    (tmp_path / "bare.yaml").write_text("name: bare\nversion: '1'\ntrack: track_10min_16mb\nchecks: {PG-SCORE-001: {}}\n")
    bare = load_ruleset(str(tmp_path / "bare.yaml"))
    assert bare.setting("PG-BYTES-001", "cap_bytes") == RULES["PG-BYTES-001"].params().cap_bytes == 16_000_000
    with pytest.raises(AttributeError):
        rs.setting("PG-BYTES-001", "no_such_setting")


def test_a_non_number_in_seed_results_points_at_its_own_line(tmp_path):
    """PG-CLAIMS-006 for `seed_results["42"].val_bpb` names the line of that field, not the
    top-level `val_bpb`."""
    rec = copy_record(tmp_path)
    edit(rec / "submission.json", '"val_bpb": 1.11437394', '"val_bpb": "about 1.114"')
    text = (rec / "submission.json").read_text()
    want = text[:text.index('"about 1.114"')].count("\n") + 1
    hits = [f for f in check_record(load_record(rec)).findings if f.rule_id == "PG-CLAIMS-006"]
    assert [(f.data["field"], f.location.line) for f in hits] == [("seed_results['42'].val_bpb", want)]
    assert want != text[:text.index('"val_bpb"')].count("\n") + 1  # not the top-level claim's line
