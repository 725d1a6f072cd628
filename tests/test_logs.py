"""harness.logs: every figure with its line, every log shape, never a crash.

Hand-written fixtures in tests/fixtures/check/ imitate the upstream formats; the last tests run
the parser over every train log of the upstream corpus (skipped where the corpus is absent).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks.scored import all_eval_ms, choose_scored_phase, scored_eval_ms
from harness.logs import parse_log

FIX = Path(__file__).parent / "fixtures" / "check"


def test_old_format_figures_and_lines():
    run = parse_log(FIX / "record_3seed" / "train_seed42.log")
    assert run.seed.value == 42 and run.seed.line == 9
    assert run.world_size.value == 8
    assert run.train_shards.value == 80
    assert run.val_tokens.value == 62021632
    assert run.model_params.value == 26993756
    assert run.iterations.value == 20000
    assert [s.step for s in run.steps] == [0, 1, 500, 4000, 6935]
    assert run.steps[-1].val_bpb == 1.1349 and run.steps[-1].step_avg_ms == 86.52
    assert run.stop.kind == "wallclock_cap" and run.stop.train_time_ms == 599987 and run.stop.step == 6935
    assert run.train_time_ms.value == 599987 and run.train_time_ms.line == run.stop.line == 17
    assert run.bytes_total.bytes == 15984850 and run.bytes_total.label == "int6+lzma" and run.bytes_total.line == 22
    assert run.artifact.model.bytes == 15917247 and run.artifact.code.bytes == 67603
    assert run.artifact.model_raw.bytes == 106047497
    names = [p.name for p in run.phases]
    assert names == ["final_int6_roundtrip", "final_int6_roundtrip_exact", "final_int6_sliding_window",
                     "final_int6_sliding_window_exact"]
    sw = run.phases[2]
    assert sw.stride == 64 and sw.eval_time_ms == 77178 and sw.line == 25
    assert run.phases[3].exact and run.phases[3].val_bpb == 1.11437394


def test_new_format_spaces_minutes_diagnostics_total_eval():
    run = parse_log(FIX / "new_format_phased_ttt.log")
    assert run.seed.value == 314 and run.world_size.value == 8
    assert run.train_shards.value == 80 and run.val_tokens.value == 47851520
    assert run.steps[-1].step == 4900 and run.steps[-1].val_bpb == 1.0757
    assert run.steps[2].train_time_ms == pytest.approx(0.8 * 60_000)  # "0.8m"
    assert run.stop.train_time_ms == 599623 and run.stop.step == 4900 and run.stop.total == 20000
    assert run.artifact.code.bytes == 151766 and run.artifact.code_compressed.bytes == 31250
    assert run.bytes_total.bytes == 15952086 and run.bytes_total.label == "quantized+brotli"
    assert [p.diagnostic for p in run.phases] == [True, True, False]
    assert run.total_eval.value == 519.5
    assert run.step_avg_ms == pytest.approx(599623 / 4900)  # no step_avg printed: train time / steps
    ch = choose_scored_phase(run)
    assert ch.phase.name == "quantized_ttt_phased" and "last evaluation phase" in ch.reason
    assert scored_eval_ms(run, ch.phase).value == 519546
    assert all_eval_ms(run).value == 519500  # the printed total wins over a sum
    assert any("torch/distributed/run.py" in text for _, text in run.unknown)


def test_prefixes_ttt_done_elapsed_and_exact_eval_time():
    run = parse_log(FIX / "ttt_done_elapsed.log")
    assert run.world_size.value == 8  # "[rank0]: " prefix stripped
    assert run.steps[-1].step == 7182  # unix-time prefix stripped
    assert run.stop.train_time_ms == 600128  # "stopping_early:wallclock_cap" with no space
    done = [p for p in run.phases if p.name == "ttt_sliding:done"][0]
    assert done.eval_time_ms == 409800 and done.val_bpb == 1.119227
    ch = choose_scored_phase(run, 1.1192299, "test")
    assert ch.by_claim and ch.phase.name == "legal_ttt_exact"
    # the _exact line prints no time: it is the time of `legal_ttt` just before it
    assert scored_eval_ms(run, ch.phase).value == 410268
    # `ttt_sliding:done` and `legal_ttt` are one result printed twice: counted once
    assert all_eval_ms(run).value == pytest.approx(74211 + 410268)


def test_raw_total_is_not_the_counted_total():
    text = ("Serialized model: 67224983 bytes\nCode size: 47642 bytes\nTotal submission size: 67272625 bytes\n"
            "Serialized model int8+zlib: 15815847 bytes\nTotal submission size int8+zlib: 15863489 bytes\n")
    assert parse_log(text).bytes_total.bytes == 15863489
    # an unlabeled compressed total printed last (DG-attention style) is the counted one
    text2 = text.replace("Total submission size int8+zlib: 15863489", "Total submission size: 15863489")
    assert parse_log(text2).bytes_total.bytes == 15863489


@pytest.mark.parametrize("blob", [
    b"",
    b"\x00\xff\xfe garbage \x80\x81\n\n\xc3\x28 step:12/x val_loss:abc\n",
    "step:\u00e9/20000 val_bpb:\u2013\nTotal submission size: lots bytes\n".encode(),
    b"final_int6_sliding_window val_loss:1.8816 val_bpb:1.1144 stride:64 eval_ti",  # truncated mid-line
    b"stopping_early: wallclock_cap train_time:99999999999999999999999999999999999ms\n" * 3,
    b"val_bpb:1e999999 val_loss:nan\nstep:1/1 train_loss:1e400\n",
])
def test_never_raises_on_garbage(blob):
    run = parse_log(blob)
    assert run.line_count >= 0
    assert isinstance(run.unknown, list)


def test_non_utf8_bytes_are_counted_and_lines_kept():
    run = parse_log(b"seed:7\n\xff\xfe\xfd\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n")
    assert run.decode_errors == 3
    assert run.seed.value == 7 and run.phases[0].line == 3
    assert run.unknown == [(2, "\ufffd\ufffd\ufffd")]


def test_truncated_log_keeps_what_it_has():
    text = (FIX / "record_3seed" / "train_seed42.log").read_text()
    cut = text[: text.index("Serialized model int6")]
    run = parse_log(cut)
    assert run.stop is not None and run.phases == [] and run.bytes_total is None
    assert run.is_train_log()


def test_path_given_as_str_and_text_given_as_str():
    p = FIX / "ttt_done_elapsed.log"
    assert parse_log(str(p)).path == str(p)
    assert parse_log(p.read_text()).path is None


# --- the whole upstream corpus -------------------------------------------------------------------
def _corpus_logs(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file()
                  and (p.suffix == ".log" or (p.suffix == ".txt" and p.name != "requirements.txt")))


def test_every_corpus_log_parses(corpus):
    logs = _corpus_logs(corpus)
    assert len(logs) > 100
    for p in logs:
        run = parse_log(p)
        text = p.read_bytes().decode("utf-8", errors="replace")
        # every printed counted total, stop line and exact result is picked up
        if "stopping_early" in text:
            assert run.stop is not None, p
        if "Total submission size" in text:
            assert run.bytes_total is not None, p
        if "_exact val_loss" in text:
            assert any(ph.exact for ph in run.phases), p


def test_gptq_reserve_calibration_and_serialization_timing_lines():
    """The timing lines records print around quantization (hand-written in the upstream shapes)."""
    run = parse_log(
        "  tokenizer_path: ./data/tokenizers/fineweb_8192_bpe.model\n"      # 1
        "  vocab_size: 8192\n"                                                # 2
        "gptq:reserving 0s, effective=599500ms\n"                             # 3
        "4900/20000 train_loss: 2.3 train_time: 9.9m tok/s: 8216992\n"        # 4
        "stopping_early: wallclock_cap train_time: 599623ms step: 4900/20000\n"  # 5
        "GPTQ:collecting Hessians from calibration data...\n"                 # 6
        "GPTQ:collected 67 Hessians in 3.5s\n"                                # 7
        "GPTQ:compressed+saved in 67.0s\n"                                    # 8
        "serialize_wallclock: 81.816s\n"                                      # 9
        "artifact_production_wallclock: 1121.067s (must be < 600.0)\n"        # 10
        "1776143353.675 gptq:generating autoregressive calibration data (64 seqs x 2048 tokens, temp=0.80)...\n"  # 11
        "gptq:generated 64 sequences in 238.8s\n"                             # 12
        "gptq:done in 239.9s\n"                                               # 13
        "wallclock:post_gptq total_elapsed:856.2s train_budget:600.0s\n"      # 14
    )
    assert run.tokenizer_path.value == "./data/tokenizers/fineweb_8192_bpe.model" and run.tokenizer_path.line == 1
    assert run.vocab_size.value == 8192
    got = [(t.kind, t.seconds, t.line, t.source) for t in run.timings]
    assert got == [("gptq_reserve", 0.0, 3, ""), ("effective_budget", 599.5, 3, ""),
                   ("calibration", 3.5, 7, "training"), ("serialize", 67.0, 8, ""), ("serialize", 81.816, 9, ""),
                   ("artifact_production", 1121.067, 10, ""), ("calibration", 239.9, 13, "self-generated"),
                   ("post_gptq_elapsed", 856.2, 14, "")]
    assert [t.line for t in run.training_data_after_stop()] == [7]  # self-generated data is not training data
    assert not any("Hessians" in text or "serialize" in text for _, text in run.unknown)


def test_explicit_training_data_calibration_and_an_end_line_without_a_start():
    run = parse_log("stopping_early: wallclock_cap train_time:586200ms step:6700/20000\n"
                    "gptq:calibrating with 64 batches (training data)...\n"
                    "gptq:calibrated 66 layers in 6.7s\n"
                    "gptq:done in 1.0s\n")  # no open calibration: not counted twice
    assert [(t.seconds, t.source) for t in run.timing("calibration")] == [(6.7, "training")]


def test_corpus_timing_lines_are_parsed_wherever_printed(corpus):
    import re

    n = 0
    for p in sorted(corpus.rglob("*.log")) + sorted(corpus.rglob("*.txt")):
        text = p.read_bytes().decode("utf-8", "replace")
        for pattern, kind in ((r"GPTQ:collected \d+ Hessians in", "calibration"), (r"gptq:reserving", "gptq_reserve"),
                              (r"serialize_wallclock:", "serialize")):
            if re.search(pattern, text):
                assert parse_log(p).timing(kind), (p, kind)
                n += 1
    assert n > 100


def test_lines_cut_by_the_reader_are_long_lines_not_decode_errors(tmp_path):
    """The streamed reader cuts a line at MAX_LINE_CHARS * 4 bytes: at a character boundary
    (20,000 emoji, 4 bytes each) the line is still a long line, and in the middle of a character
    (30,000 CJK characters, 3 bytes each) the partial character is no undecodable byte. The file
    parses to the figures the whole-text parser gives."""
    from harness.logs.parse import parse_log, parse_log_file

    text = "\U0001F600" * 20_000 + "\n" + "\u4e2d" * 30_000 + "\nstep:1/2 train_loss:1.0\n"
    (tmp_path / "wide.log").write_text(text, encoding="utf-8")
    run = parse_log_file(tmp_path, "wide.log")
    whole = parse_log(text)
    assert (run.long_lines, run.decode_errors) == (whole.long_lines, whole.decode_errors) == (2, 0)
    assert run.line_count == 3 and run.last_step == 1
