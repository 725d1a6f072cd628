"""`pgolf reproduce` on the small fixture records: per-seed results, resume, Ctrl-C and hard
kills, claimed vs reproduced, checks on the reproduced logs, significance, report files."""
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

from harness.reproduce.seeds import ReproConfig, run_seeds
from harness.reproduce.report import build_report, render_markdown, render_text, write_report
from harness.runners import proctable

FIXTURES = Path(__file__).parent / "fixtures" / "repro"


@pytest.fixture
def resumable(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the resumable fixture record and a data folder that counts its starts."""
    rec = tmp_path / "record"
    shutil.copytree(FIXTURES / "resumable", rec)
    data = tmp_path / "data"
    data.mkdir()
    return rec, data


def starts(data: Path) -> list[str]:
    p = data / "starts.txt"
    return p.read_text().split() if p.exists() else []


def pgolf(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "reproduce", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def cli_args(rec: Path, data: Path, out: Path, seeds: str = "1,2,3") -> list[str]:
    # the local runner: these fixtures write to their data folder, which a container mounts read-only;
    # they read no shards or tokenizer: the input check would refuse their data folder
    return [str(rec), "--seeds", seeds, "--launcher", "python", "--data", str(data), "--out", str(out),
            "--runner", "local", "--skip-input-check"]


def wait_for(cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_reproduces_seeds_writes_results_and_resumes(resumable, tmp_path):
    rec, data = resumable
    out = tmp_path / "out"
    p = pgolf(*cli_args(rec, data, out), "--format", "json")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["kind"] == "reproduce" and report["schema"] == "pgolf.report/1"
    rows = report["data"]["seeds"]
    assert [r["seed"] for r in rows] == [1, 2, 3] and all(r["status"] == "ok" for r in rows)
    assert [r["reproduced_bpb"] for r in rows] == [1.8001, 1.8002, 1.8003] == [r["claimed_bpb"] for r in rows]
    assert report["data"]["aggregate"]["mean_bpb"] == pytest.approx(1.8002)
    assert report["children"][0]["kind"] == "check"  # `pgolf check` rules on the reproduced logs
    assert sorted(os.listdir(out / "reproduced")) == ["submission.json", "train_gpt.py", "train_seed1.log",
                                                      "train_seed2.log", "train_seed3.log"]
    for name in ("report.md", "report.txt", "report.json", "plots/validation_curves.png", "plots/seed_scores.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "plots/seed_scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert starts(data) == ["1", "2", "3"]
    first = (out / "seed_2" / "result.json").read_text()

    p = pgolf(*cli_args(rec, data, out, "1,2,3,4"))
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert starts(data) == ["1", "2", "3", "4"]  # finished seeds were not redone
    assert "seed 2 [2/4]: finished earlier (ok), skipped" in stderr
    assert (out / "seed_2" / "result.json").read_text() == first

    p = pgolf(*cli_args(rec, data, out, "2"), "--force")
    p.communicate(timeout=60)
    assert starts(data)[-1] == "2" and len(starts(data)) == 5


def test_ctrl_c_stops_the_child_keeps_finished_seeds_and_resume_skips_them(resumable, tmp_path):
    rec, data = resumable
    out = tmp_path / "out"
    (data / "slow_2").touch()  # seed 2 would run for a minute
    p = pgolf(*cli_args(rec, data, out))
    wait_for(lambda: starts(data) == ["1", "2"] and (out / "seed_2" / "running.json").exists())
    run_id = json.loads((out / "seed_2" / "running.json").read_text())["run_id"]
    assert proctable.with_env("RUN_ID", run_id)  # seed 2 is running
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=30)
    assert p.returncode == 130, stderr
    assert (out / "seed_1" / "result.json").exists() and not (out / "seed_2" / "result.json").exists()
    assert proctable.with_env("RUN_ID", run_id) == []  # no process of the run is left
    seed1 = (out / "seed_1" / "result.json").read_text()

    (data / "slow_2").unlink()
    p = pgolf(*cli_args(rec, data, out))
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert starts(data) == ["1", "2", "2", "3"]  # seed 1 ran once, seed 2 again, then seed 3
    assert (out / "seed_1" / "result.json").read_text() == seed1


def test_a_hard_killed_harness_leaves_a_run_that_the_resume_kills(resumable, tmp_path):
    rec, data = resumable
    out = tmp_path / "out"
    (data / "slow_1").touch()
    p = pgolf(*cli_args(rec, data, out, "1"))
    wait_for(lambda: (out / "seed_1" / "running.json").exists() and starts(data) == ["1"])
    run_id = json.loads((out / "seed_1" / "running.json").read_text())["run_id"]
    p.kill()  # SIGKILL: the harness cannot clean up
    p.communicate(timeout=10)
    orphans = proctable.with_env("RUN_ID", run_id)
    assert orphans  # the run lives on in its own session
    try:
        (data / "slow_1").unlink()
        p = pgolf(*cli_args(rec, data, out, "1"))
        _, stderr = p.communicate(timeout=60)
        assert p.returncode in (0, 1), stderr  # 1: one seed is too few for the record track's checks
        assert (out / "seed_1" / "result.json").exists()
        wait_for(lambda: proctable.with_env("RUN_ID", run_id) == [], timeout=5)
    finally:
        proctable.signal_all(orphans, signal.SIGKILL)


def cfg_for(rec: Path, data: Path, out: Path, **kw) -> ReproConfig:
    return ReproConfig(record_dir=rec, out_dir=out, seeds=kw.pop("seeds", [1, 2, 3]), data_path=str(data),
                       launcher="python", **kw)


def test_claims_outside_the_tolerance_are_findings(resumable, tmp_path):
    rec, data = resumable
    sub = json.loads((rec / "submission.json").read_text())
    sub["seed_results"]["1"]["val_bpb"] = 1.8101  # 0.01 better than it reproduces
    sub["val_bpb"] = 1.8035
    (rec / "submission.json").write_text(json.dumps(sub))
    cfg = cfg_for(rec, data, tmp_path / "out")
    report = build_report(cfg, run_seeds(cfg), with_plots=False)
    found = {(f.rule_id, f.data.get("claimed")) for f in report.findings}
    assert ("PG-REPRO-002", 1.8101) in found and ("PG-REPRO-003", 1.8035) in found
    assert report.verdict.value == "FAIL"

    loose = cfg_for(rec, data, tmp_path / "out", tolerance=0.02)
    report = build_report(loose, run_seeds(loose), with_plots=False)  # resumed: nothing reruns
    assert not [f for f in report.findings if f.rule_id.startswith("PG-REPRO")]
    assert starts(data) == ["1", "2", "3"]


def test_resume_refuses_results_of_a_different_record(resumable, tmp_path):
    rec, data = resumable
    out = tmp_path / "out"
    run_seeds(cfg_for(rec, data, out, seeds=[1]))
    (rec / "train_gpt.py").write_text((rec / "train_gpt.py").read_text() + "\n# edited\n")
    p = pgolf(*cli_args(rec, data, out, "1"))
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and "different record or settings" in stderr


def _baseline_record(tmp_path: Path, facts: str) -> Path:
    base = tmp_path / "baseline"
    base.mkdir()
    for seed, loss, bpb in ((1, 2.95, 1.851), (2, 2.96, 1.852), (3, 2.94, 1.850)):
        (base / f"train_seed{seed}.log").write_text(
            f"{facts}seed:{seed}\nstep:10/10 val_loss:3.0 val_bpb:1.9 train_time:1000ms step_avg:100ms\n"
            f"final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}\n")
    return base


def test_significance_against_a_baseline_record_is_per_byte_when_tokenizers_are_not_shown_the_same(resumable, tmp_path):
    rec, data = resumable  # the fixture prints no tokenizer: per token is not sound, per byte is
    base = _baseline_record(tmp_path, "val_loader:shards pattern=x tokens:62021632\n")
    cfg = cfg_for(rec, data, tmp_path / "out", against=base)
    report = build_report(cfg, run_seeds(cfg), with_plots=False)
    sig = report.data["significance"]
    assert sig["baseline_losses"] == [2.95, 2.96, 2.94] and sig["unit"] == "nats per byte"
    assert sig["improvement"] == pytest.approx((1.851 - 1.8002) * 0.6931471805599453, abs=1e-6)
    assert sig["margin"] == pytest.approx(0.005 * 62021632 / 151_080_000) and sig["significant"] is True
    assert "(nats per byte)" in render_text(report)
    check_ids = {f.rule_id for f in report.children[0].findings}
    assert "PG-STATS-001" not in check_ids or all(
        f.severity.value != "error" for f in report.children[0].findings if f.rule_id == "PG-STATS-001")


def test_significance_is_the_checks_own_with_the_rule_sets_margin_alpha_and_bytes(resumable, tmp_path):
    """The report's significance is PG-STATS-001 of the check on the reproduced logs, so a rule set
    that sets another margin, alpha or validation byte count is the one the report applies."""
    rec, data = resumable
    text = (Path(__file__).resolve().parent.parent / "harness" / "rulesets" / "track_10min_16mb.yaml").read_text()
    assert "min_improvement_nats: 0.005" in text and "alpha: 0.01" in text and "val_bytes: 151080000" in text
    ruleset = tmp_path / "strict.yaml"
    ruleset.write_text(text.replace("min_improvement_nats: 0.005", "min_improvement_nats: 0.02")
                       .replace("alpha: 0.01", "alpha: 0.2").replace("val_bytes: 151080000", "val_bytes: 100000000"))
    base = _baseline_record(tmp_path, "val_loader:shards pattern=x tokens:62021632\n")
    cfg = cfg_for(rec, data, tmp_path / "out", against=base, ruleset=str(ruleset))
    report = build_report(cfg, run_seeds(cfg), with_plots=False)
    sig = report.data["significance"]
    assert sig["alpha"] == 0.2 and sig["margin"] == pytest.approx(0.02 * 62021632 / 100_000_000)
    stats = next(f for f in report.children[0].findings if f.rule_id == "PG-STATS-001")
    assert sig["p"] == stats.data["p"] and sig["significant"] is (stats.severity.value == "note")


def test_sleeper_record_times_out_and_the_report_says_so(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cfg = ReproConfig(record_dir=FIXTURES / "sleeper", out_dir=tmp_path / "out", seeds=[1], data_path=str(data),
                      launcher="python", timeout_s=1.5)
    results = run_seeds(cfg)
    assert results[0]["status"] == "timeout"
    report = build_report(cfg, results)
    assert "PG-TIME-106" in {f.rule_id for f in report.findings}
    paths = write_report(report, cfg.out_dir)
    assert "PG-TIME-106" in paths["markdown"].read_text() and "timeout" in render_text(report)
    assert proctable.with_env("RUN_ID", results[0]["run_id"]) == []


def test_markdown_report_has_the_seed_table_and_plots(resumable, tmp_path):
    rec, data = resumable
    cfg = cfg_for(rec, data, tmp_path / "out", seeds=[1, 2])
    md = render_markdown(build_report(cfg, run_seeds(cfg)))
    assert "| seed | status | claimed bpb | reproduced bpb |" in md
    assert "| 1 | ok | 1.8001 | 1.8001 | +0.0000 |" in md
    assert "![plots/validation_curves.png](plots/validation_curves.png)" in md


def test_progress_reads_step_and_phase_from_the_lines():
    import io

    from harness.progress import Progress, RichProgress, make_progress
    from harness.runners.base import StampedLine

    out = io.StringIO()
    prog = make_progress(out)
    assert type(prog) is Progress  # not a terminal: plain lines
    prog.seed_started(1337, 1, 2, 1230.0)
    for text in ["seed:1337", "step:0/20 val_loss:6.9 val_bpb:4.1 train_time:0ms step_avg:0ms",
                 "step:10/20 train_loss:4.0 train_time:100ms step_avg:10ms",
                 "stopping_early: wallclock_cap train_time:200ms step:20/20",
                 "final_int6_sliding_window val_loss:1.9 val_bpb:1.12 stride:64 eval_time:5ms",
                 "final_int6_sliding_window_exact val_loss:1.9 val_bpb:1.12"]:
        prog.line(StampedLine(0.0, text))
    prog.seed_finished(1337, "ok", "val_bpb 1.1200")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("seed 1337 [1/2]  step -  phase start")
    assert any("step 0/20  phase train" in ln for ln in lines)
    assert any("phase final_int6_sliding_window" in ln for ln in lines)
    assert not any("_exact" in ln for ln in lines)
    assert lines[-1].startswith("seed 1337 [1/2]: ok in")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    rich = make_progress(tty)
    assert isinstance(rich, RichProgress)
    rich.seed_started(42, 2, 2, 100.0)
    rich.line(StampedLine(0.0, "step:3/9 train_loss:4.0 train_time:100ms"))
    rich.seed_finished(42, "ok", "val_bpb 1.2")
    rich.close()
    assert "seed 42 [2/2]" in tty.getvalue() and "step 3/9" in tty.getvalue()


def test_plots_cope_with_missing_curves_and_scores(tmp_path):
    from harness.report import plots

    a = plots.validation_curves(tmp_path / "v.png", {1: []}, {}, {1: None}, {1: None}, "nothing printed")
    b = plots.seed_scores(tmp_path / "s.png", [1, 2], [None, 1.2], [1.21, None], 0.003, "half known")
    for p in (a, b):
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
    assert not list(tmp_path.glob(".*.tmp.png"))  # written atomically, no temporary left


def test_a_crashing_record_is_reported_with_its_last_lines(tmp_path):
    rec = tmp_path / "crash"
    rec.mkdir()
    (rec / "train_gpt.py").write_text("print('loading', flush=True)\nraise SystemExit('CUDA not available')\n")
    cfg = ReproConfig(record_dir=rec, out_dir=tmp_path / "out", seeds=[5], launcher="python")
    results = run_seeds(cfg)
    assert results[0]["status"] == "failed" and results[0]["exit_code"] == 1
    report = build_report(cfg, results, with_plots=False)
    failed = next(f for f in report.findings if f.rule_id == "PG-REPRO-001")
    assert [e.message for e in failed.evidence] == ["loading", "CUDA not available"]
    assert report.verdict.value == "FAIL"


def test_claims_of_every_corpus_record_are_read(corpus):
    from harness.reproduce.claims import claimed_for_seed, load_claims

    folders = [d for d in sorted(corpus.glob("track_*/*")) if d.is_dir()]
    read = [load_claims(d) for d in folders]  # no record makes the claims reader fail
    assert sum(1 for c in read if c.per_seed_bpb) >= len(folders) - 8
    c = load_claims(corpus / "track_10min_16mb" / "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon")
    assert sorted(c.per_seed_bpb) == [42, 1337, 2025] and c.mean_bpb == 1.1194
    assert claimed_for_seed(c, 1337)["val_bpb"] == 1.11922988  # the record's own scored legal_ttt_exact
    assert c.scored_name == "legal_ttt_exact" and len(c.curves[1337]) == 3


def test_an_output_folder_inside_the_record_is_refused(resumable):
    from harness.errors import InputError

    rec, data = resumable
    with pytest.raises(InputError, match="inside the record folder"):
        run_seeds(cfg_for(rec, data, rec / "out"))


@pytest.mark.docker
def test_observation_is_the_same_through_the_docker_runner(tmp_path):
    """`--runner docker`: the lying timer and the oversized artifact are caught in a container too."""
    try:
        import docker

        from harness.containers import pinned_image

        client = docker.from_env(timeout=60)
        client.ping()
        if not client.images.list(name=pinned_image("cpu")):
            raise RuntimeError("pinned image not built")
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            pytest.fail(f"docker unavailable under CI: {e}")
        pytest.skip(f"no Docker engine or pinned image ({type(e).__name__}: {e})")
    for name, expected in (("halftime", {"PG-TIME-101"}), ("bigartifact", {"PG-BYTES-101", "PG-BYTES-102"})):
        p = pgolf(str(FIXTURES / name), "--seeds", "1", "--launcher", "python", "--runner", "docker",
                  "--out", str(tmp_path / name), "--format", "json", "--quiet", "--skip-input-check")
        stdout, stderr = p.communicate(timeout=180)
        report = json.loads(stdout)
        assert report["data"]["runner"] == "docker", stderr
        assert expected <= {f["id"] for f in report["findings"]}


def test_significance_is_per_token_when_both_print_the_same_tokenizer(resumable, tmp_path):
    rec, data = resumable
    script = rec / "train_gpt.py"
    script.write_text(script.read_text().replace(
        'print(f"seed:{seed}", flush=True)',
        'print(f"seed:{seed}", flush=True)\nprint("tokenizer_path=./t/fineweb_1024_bpe.model", flush=True)'))
    base = _baseline_record(tmp_path, "tokenizer_path=/x/fineweb_1024_bpe.model\n")
    cfg = cfg_for(rec, data, tmp_path / "out", against=base)
    sig = build_report(cfg, run_seeds(cfg), with_plots=False).data["significance"]
    assert sig["unit"] == "nats per token" and "same tokenizer fineweb_1024_bpe.model" in sig["why"]
    assert sig["improvement"] == pytest.approx(2.95 - 1.6 * 1.8002, abs=1e-6)


# --- a subset of the claimed seeds ----------------------------------------------------------------
def test_a_subset_of_seeds_is_judged_on_what_ran(resumable, tmp_path):
    rec, data = resumable
    p = pgolf(*cli_args(rec, data, tmp_path / "out", "1"), "--format", "json")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["data"]["subset"] == "ran 1 of the claimed 1, 2, 3"
    assert doc["verdict"] != "FAIL"  # REVIEW: the fixture prints no artifact total (PG-BYTES-003)
    assert not [f for f in doc["findings"] + doc["children"][0]["findings"] if f["severity"] == "error"]
    mean = [f for f in doc["findings"] if f["id"] == "PG-REPRO-003"]
    assert [f["severity"] for f in mean] == ["note"] and "not evaluated: subset of seeds" in mean[0]["message"]
    check = doc["children"][0]
    skipped = {f["id"] for f in check["findings"] if f.get("data", {}).get("not_evaluated", "").startswith("subset")}
    assert {"PG-SEEDS-001", "PG-CLAIMS-004", "PG-STATS-001"} <= skipped
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "subset of seeds (ran 1 of the claimed 1, 2, 3)" in text and "verdict is about the seeds that ran" in text

    sub = json.loads((rec / "submission.json").read_text())
    sub["seed_results"]["1"]["val_bpb"] = 1.8101  # seed 1's own claim, off by 0.01
    (rec / "submission.json").write_text(json.dumps(sub))
    p = pgolf(*cli_args(rec, data, tmp_path / "out2", "1"), "--format", "json")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 1 and {f["id"] for f in json.loads(stdout)["findings"] if f["severity"] == "error"} == {"PG-REPRO-002"}


def test_the_reproduced_check_leaves_claim_comparisons_to_the_tolerance(resumable, tmp_path):
    rec, data = resumable
    sub = json.loads((rec / "submission.json").read_text())
    sub["seed_results"]["2"]["val_bpb"] = 1.8004  # 0.0002 off: within the 0.003 tolerance, not exact
    (rec / "submission.json").write_text(json.dumps(sub))
    cfg = cfg_for(rec, data, tmp_path / "out")
    report = build_report(cfg, run_seeds(cfg), with_plots=False)
    errors = [(f.rule_id, f.message) for f in report.all_findings() if f.severity.value == "error"]
    assert report.verdict.value != "FAIL" and not errors, errors  # REVIEW: no artifact total printed
    notes = {f.rule_id: f.message for f in report.children[0].findings if f.data.get("not_evaluated")}
    assert "PG-REPRO-002" in notes["PG-CLAIMS-003"]


# --- inputs checked before any seed runs ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """A real (small) dataset in the upstream layout: SentencePiece-512 and uint16 shards."""
    from reference_impl.synth import synthesize

    res = synthesize(tmp_path_factory.mktemp("data"), vocab_size=512, train_tokens=40_000, val_tokens=8_192)
    return {"data": Path(res.data_path), "tok": Path(res.tokenizer_path)}


def _refused(rec: Path, tmp_path: Path, *extra: str) -> str:
    out = tmp_path / "out"
    p = pgolf(str(rec), "--seeds", "1", "--launcher", "python", "--out", str(out), *extra)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and stdout == "", stderr
    assert not out.exists()  # nothing ran
    return stderr


def test_reproduce_without_data_is_a_usage_error_before_any_seed(resumable, tmp_path):
    rec, data = resumable
    assert "no --data" in _refused(rec, tmp_path)
    assert "--data: no such folder" in _refused(rec, tmp_path, "--data", str(tmp_path / "nope"))
    assert "no fineweb_val_*.bin and fineweb_train_*.bin shards" in _refused(rec, tmp_path, "--data", str(data))
    assert starts(data) == []


def test_tokenizer_and_vocabulary_are_checked_against_each_other_and_the_record(resumable, tmp_path, tiny_data):
    rec, _ = resumable
    d, tok = str(tiny_data["data"]), str(tiny_data["tok"])
    assert "no --tokenizer" in _refused(rec, tmp_path, "--data", d)
    assert "--tokenizer: no such file" in _refused(rec, tmp_path, "--data", d, "--tokenizer", d + "/nope.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    assert "not a SentencePiece model" in _refused(rec, tmp_path, "--data", d, "--tokenizer", str(tmp_path / "junk.model"))
    err = _refused(rec, tmp_path, "--data", d, "--tokenizer", tok, "--vocab-size", "1024")
    assert "the tokenizer has 512 pieces but --vocab-size says 1024" in err
    (rec / "train_seed1.log").write_text("seed:1\nvocab_size:8192\nval_loader:shards tokens:40540160\n"
                                         "final_exact val_loss:2.0 val_bpb:1.1\n")
    err = _refused(rec, tmp_path, "--data", d, "--tokenizer", tok)
    assert "the record's logs print vocab_size 8192 (train_seed1.log:2)" in err


def test_shards_of_another_tokenizer_or_export_are_refused(resumable, tmp_path, tiny_data):
    import numpy as np

    rec, _ = resumable
    data = tmp_path / "fineweb10B_sp512"
    shutil.copytree(tiny_data["data"], data)
    val = sorted(data.glob("fineweb_val_*.bin"))[0]
    raw = bytearray(val.read_bytes())
    raw[1024:1026] = np.array([1000], dtype="<u2").tobytes()  # a token id outside 512 pieces
    val.write_bytes(bytes(raw))
    err = _refused(rec, tmp_path, "--data", str(data), "--tokenizer", str(tiny_data["tok"]))
    assert "token id 1000, outside the tokenizer's 512 pieces" in err
    shutil.rmtree(data)
    shutil.copytree(tiny_data["data"], data)
    (rec / "train_seed1.log").write_text("seed:1\nval_loader:shards tokens:62021632\nfinal_exact val_loss:2.0 val_bpb:1.1\n")
    err = _refused(rec, tmp_path, "--data", str(data), "--tokenizer", str(tiny_data["tok"]))
    assert "the record's logs evaluated 62,021,632 (train_seed1.log:2)" in err
    renamed = tmp_path / "fineweb10B_sp1024"
    shutil.copytree(tiny_data["data"], renamed)
    (rec / "train_seed1.log").unlink()
    err = _refused(rec, tmp_path, "--data", str(renamed), "--tokenizer", str(tiny_data["tok"]))
    assert "the data folder is named fineweb10B_sp1024" in err


@pytest.mark.parametrize("damage, words", [("truncate", "truncated: "), ("version", "unsupported shard version 2"),
                                           ("trailing", "unexpected trailing bytes")])
def test_a_shard_the_reference_reader_refuses_is_refused_before_any_seed(tmp_path, tiny_data, damage, words):
    """The input check applies the reference reader's header check (magic, version, size against
    the token count): a truncated download is refused naming the file, not trained on."""
    import numpy as np

    from harness.checks.tokenizer import TokenizerId
    from harness.errors import InputError
    from harness.reproduce.inputs import check_inputs

    data = tmp_path / "fineweb10B_sp512"
    shutil.copytree(tiny_data["data"], data)
    val = sorted(data.glob("fineweb_val_*.bin"))[0]
    raw = bytearray(val.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    elif damage == "version":
        raw[4:8] = np.array([2], dtype="<i4").tobytes()
    else:
        raw += b"\0\0"
    val.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=words) as e:
        check_inputs(str(data), str(tiny_data["tok"]), None, TokenizerId())
    assert e.value.path == str(val)


def test_checked_inputs_run_with_the_tokenizers_vocabulary(resumable, tmp_path, tiny_data):
    rec, _ = resumable
    data = tmp_path / "fineweb10B_sp512"
    shutil.copytree(tiny_data["data"], data)  # the fixture writes starts.txt into DATA_PATH
    p = pgolf(str(rec), "--seeds", "1", "--launcher", "python", "--out", str(tmp_path / "out"), "--data", str(data),
              "--tokenizer", str(tiny_data["tok"]), "--format", "json", "--runner", "local")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["data"]["env_set"]["VOCAB_SIZE"] == "512" and doc["data"]["inputs"]["vocab"] == 512


# --- the interpreter, not PATH ------------------------------------------------------------------
def test_local_runs_use_this_interpreter_not_path():
    cfg = ReproConfig(record_dir=FIXTURES / "resumable", out_dir=Path("/tmp/x"), seeds=[1], nproc=2)
    assert cfg.argv() == (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "train_gpt.py")
    assert ReproConfig(record_dir=Path("r"), out_dir=Path("o"), seeds=[1], launcher="python").argv()[0] == sys.executable
    assert ReproConfig(record_dir=Path("r"), out_dir=Path("o"), seeds=[1], runner="docker").argv() == ()


def test_torchrun_launch_works_with_no_python_or_torchrun_on_path(resumable, tmp_path):
    """pgolf from a venv that is not activated: PATH has neither its python nor torchrun."""
    rec, data = resumable
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYENV_VERSION")}
    env["PATH"] = "/nonexistent"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    p = subprocess.run([sys.executable, "-m", "harness.cli", "reproduce", str(rec), "--seeds", "1", "--nproc", "1",
                        "--data", str(data), "--out", str(tmp_path / "out"), "--skip-input-check", "--format", "json",
                        "--runner", "local"],
                       capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert doc["data"]["command"][:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert doc["data"]["seeds"][0]["status"] == "ok" and starts(data) == ["1"]


def test_validation_curve_legend_shows_the_styles_the_plot_uses():
    import matplotlib.pyplot as plt

    from harness.report.plots import validation_figure

    fig = validation_figure({1: [[0, 4.0, None, 0], [10, 3.0, None, 1]]}, {1: [[0, 4.1, None, 0], [10, 3.1, None, 1]]},
                            {1: 2.9}, {1: 2.95}, "r: val_bpb by step, claimed vs reproduced")
    ax = fig.axes[0]
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    claimed, reproduced = drawn  # the record's curve first, then the reproduction
    assert legend["claimed (the record's logs): dashed"].get_linestyle() == claimed.get_linestyle() == "--"
    assert legend["reproduced: solid"].get_linestyle() == reproduced.get_linestyle() == "-"
    assert "seed 1" in legend and "dashed" not in ax.get_title() and "solid" not in ax.get_title()
    plt.close(fig)
