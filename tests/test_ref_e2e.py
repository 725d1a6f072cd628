"""End to end on CPU: `pgolf data synth` -> `torchrun --nproc_per_node=2 -m reference_impl.train`
(training, EMA, int6 quantization, zstd artifact, round trip, sliding window, legal TTT) ->
`pgolf check` on a record folder made of the run's own log and figures."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.logs import parse_log
from reference_impl import artifact
from ref_part2_support import TINY_ENV, ledger_violations

REPO = Path(__file__).resolve().parent.parent
CHUNK = 2048


def _env(data: Path, ledger: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    env.update(TINY_ENV)
    env.update({
        "DATA_PATH": str(data / "datasets" / "fineweb10B_sp512"),
        "TOKENIZER_PATH": str(data / "tokenizers" / "fineweb_512_bpe.model"),
        "TRAIN_BATCH_TOKENS": "4096", "ITERATIONS": "40", "WARMUP_STEPS": "2", "WARMDOWN_ITERS": "10",
        "VAL_LOSS_EVERY": "0", "RUN_ID": "tiny", "SEED": "1337", "OMP_NUM_THREADS": "1",
        "QUANT_PASSTHROUGH_NUMEL": "0",  # quantize every matrix of the tiny model, as at full size
        "EVAL_STRIDE": "32", "TTT_ENABLED": "1", "TTT_CHUNK_TOKENS": str(CHUNK), "TTT_EPOCHS": "2",
        "TTT_BATCH_SEQS": "4", "TTT_LR": "0.01", "TTT_LEDGER_DIR": str(ledger),
        "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    return env


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref_e2e")
    data, record, ledger = root / "data", root / "2026-11-21_ReferenceTiny", root / "ledger"
    subprocess.run([sys.executable, "-m", "harness.cli", "data", "synth", str(data), "--vocab-size", "512",
                    "--train-tokens", "200000", "--val-tokens", "16384"], check=True, capture_output=True,
                   timeout=120, cwd=REPO)
    record.mkdir()
    (record / "train_gpt.py").write_text(
        '"""Launcher: torchrun --standalone --nproc_per_node=8 train_gpt.py runs the reference stack."""\n'
        "from reference_impl.train import main\n\nif __name__ == \"__main__\":\n    main()\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "reference_impl.train"], cwd=record, env=_env(data, ledger),
                          capture_output=True, text=True, timeout=120)  # the 2-minute bound
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log_path = record / "train_seed1337.log"
    (record / "logs" / "tiny.txt").replace(log_path)
    (record / "logs").rmdir()
    return record, log_path, ledger


@pytest.mark.slow
def test_artifact_under_cap_and_matches_the_printed_sizes(run):
    record, log_path, _ = run
    log = parse_log(log_path)
    model_file = record / "final_model.int6.ptz"
    assert log.artifact.model.bytes == model_file.stat().st_size
    code = artifact.code_files(launcher=record / "train_gpt.py")
    assert log.artifact.code.bytes == sum(p.stat().st_size for p in code)
    assert log.artifact.total.bytes == log.artifact.model.bytes + log.artifact.code.bytes < artifact.BYTE_CAP
    assert log.artifact.total.label == "int6+zstd"
    qstate = artifact.read_artifact(model_file)
    assert qstate["blocks.0.attn.q.weight"].bits == 6 and qstate["tok_emb.weight"].bits == 8


@pytest.mark.slow
def test_phases_in_order_and_roundtrip_close_to_float(run):
    _, log_path, _ = run
    phases = {p.name: p for p in parse_log(log_path).phases}
    order = ["final_fp32_exact", "final_int6_roundtrip_exact", "final_int6_sliding_window_exact", "legal_ttt_exact"]
    assert [n for n in (p.name for p in parse_log(log_path).phases) if n in order] == order
    assert abs(phases["final_int6_roundtrip_exact"].val_loss - phases["final_fp32_exact"].val_loss) < 0.01
    assert phases["final_int6_sliding_window"].stride == 32
    for name in ("final_int6_roundtrip", "final_int6_sliding_window", "legal_ttt"):
        assert phases[name].eval_time_ms is not None and phases[name].eval_time_ms > 0


@pytest.mark.slow
def test_two_rank_ttt_ledger_is_score_first(run):
    _, log_path, ledger_dir = run
    ledgers = [json.loads(p.read_text()) for p in sorted(ledger_dir.glob("ttt_ledger_rank*.json"))]
    assert len(ledgers) == 2 and all(led["scored"] and led["steps"] for led in ledgers)
    n_targets = parse_log(log_path).val_tokens.value
    last_first = (math.ceil(n_targets / CHUNK) - 1) * CHUNK + 1
    assert ledger_violations(ledgers, n_targets, last_first) == []


@pytest.mark.slow
def test_pgolf_check_passes_bytes_and_claims_with_ttt_scored(run):
    record, log_path, _ = run
    ttt = [p for p in parse_log(log_path).phases if p.name == "legal_ttt_exact"][-1]
    total = parse_log(log_path).artifact.total.bytes
    (record / "README.md").write_text("Reference stack, tiny CPU configuration (test run).\n")
    (record / "submission.json").write_text(json.dumps({
        "name": "reference_impl tiny", "author": "pgolf", "github_id": "pgolf", "date": "2026-11-21",
        "val_bpb": ttt.val_bpb, "bytes_total": total, "seeds": [1337],
        "seed_results": {"1337": {"val_bpb": ttt.val_bpb, "val_loss": ttt.val_loss}}}))
    # synthetic data: the byte denominator is the synthetic validation text's, not FineWeb's (PG-SCORE-001)
    from harness.commands.demo import validation_text_bytes, write_ruleset

    env = _env(record.parent / "data", record.parent / "ledger")
    val_bytes = validation_text_bytes(env["DATA_PATH"], env["TOKENIZER_PATH"],
                                      max(int(TINY_ENV["TRAIN_SEQ_LEN"]), int(TINY_ENV["EVAL_SEQ_LEN"])))
    rules = {t: write_ruleset(record.parent / f"{t}.yaml", val_bytes, t)
             for t in ("track_10min_16mb", "track_non_record_16mb")}
    cmd = [sys.executable, "-m", "harness.cli", "check", str(record), "--ruleset", str(rules["track_10min_16mb"]),
           "--format", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    report = json.loads(out.stdout)
    errors = [f["id"] for f in report["findings"] if f["severity"] == "error"]
    assert errors == ["PG-SEEDS-001"]  # one seed of the three a record needs; nothing else fails
    assert not [f for f in report["findings"] if f["condition"] in ("BYTES", "CLAIMS", "PARSE")
                and f["severity"] != "note"]
    (seed,) = report["data"]["seeds"]
    assert seed["scored_phase"] == "legal_ttt_exact" and seed["bytes_total"] == total
    nonrecord = subprocess.run(cmd[:-4] + ["--ruleset", str(rules["track_non_record_16mb"])], capture_output=True,
                               text=True, timeout=60, cwd=REPO)
    assert nonrecord.returncode == 0, nonrecord.stdout
