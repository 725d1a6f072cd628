"""reference_impl.posttrain in one process: settings from the environment, GPTQ calibration
sources (never validation), export + round trip of the real tiny GPT, the size refusal."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reference_impl import posttrain, quant
from reference_impl.data import load_validation_tokens
from reference_impl.distributed import DistContext
from reference_impl.evaluate import eval_val
from reference_impl.posttrain import PostTrainConfig
from ref_part2_support import luts_for, make_dataset, tiny_gpt, tiny_hp

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_config_from_env_reads_upstream_names_and_names_bad_values():
    cfg = PostTrainConfig.from_env({"TTT_ENABLED": "1", "TTT_LR": "0.004", "EVAL_STRIDE": "32",
                                    "TTT_FREEZE_BLOCKS": "2", "ARTIFACT_CODEC": "lzma"})
    assert cfg.ttt_enabled and cfg.ttt_lr == 0.004 and cfg.eval_stride == 32 and cfg.artifact_codec == "lzma"
    ttt = cfg.ttt_config(seq_len=128)
    assert (ttt.lr, ttt.stride, ttt.freeze_blocks, ttt.seq_len) == (0.004, 32, 2, 128)
    assert "posttrain:ttt_lr=0.004" in cfg.describe().splitlines()
    with pytest.raises(ValueError, match="TTT_EPOCHS='three'"):
        PostTrainConfig.from_env({"TTT_EPOCHS": "three"})


def _hp(data: Path, tok: Path):
    return tiny_hp(DATA_PATH=str(data), TOKENIZER_PATH=str(tok))


@pytest.mark.parametrize("source", ["train", "self"])
def test_gptq_export_roundtrip(tmp_path: Path, source: str):
    data, tok, sp = make_dataset()
    hp = _hp(data, tok)
    cfg = PostTrainConfig(quant_passthrough_numel=0, gptq_enabled=True, gptq_calib_source=source,
                          gptq_calib_batches=2, gptq_calib_seqs=2, artifact_path=str(tmp_path / "m.ptz"))
    if source == "self":
        hp = dataclasses.replace(hp, train_seq_len=16)  # generation is one forward per token
    model = tiny_gpt()
    lines: list[str] = []
    path = posttrain.export(model, hp, cfg, CPU, lines.append)
    n_matrices = len(quant.qat_weight_names(model, cfg.quant_config()))
    assert n_matrices == 13  # bigram projection + 6 per block
    assert any(line.startswith(f"gptq:collected {n_matrices} Hessians from {source} data") for line in lines)
    assert any(line.startswith("Total submission size int6+zstd: ") for line in lines)
    back = posttrain.load_roundtrip(path, hp, cfg, CPU)
    val = load_validation_tokens(str(data / "fineweb_val_*.bin"), 128)[: 16 * 128 + 1]
    luts = luts_for(sp)
    ref, got = eval_val(model, val, luts, 128, 8, CPU), eval_val(back, val, luts, 128, 8, CPU)
    assert abs(got[0] - ref[0]) < 0.05


def test_gptq_refuses_validation_shards_as_calibration(tmp_path: Path):
    data, tok, _sp = make_dataset()
    alias = tmp_path / "data"
    alias.mkdir()
    val = next(data.glob("fineweb_val_*.bin"))
    os.symlink(val, alias / "fineweb_val_000000.bin")
    os.symlink(val, alias / "fineweb_train_000000.bin")  # "training" data that is the validation split
    cfg = PostTrainConfig(gptq_enabled=True)
    with pytest.raises(ValueError, match="validation shard"):
        posttrain.calibration_batches(tiny_gpt(), _hp(alias, tok), cfg, CPU)


def test_export_over_the_cap_stops_every_rank(tmp_path: Path, monkeypatch):
    data, tok, _sp = make_dataset()
    monkeypatch.setitem(posttrain.artifact.write_artifact.__kwdefaults__, "cap", 1000)
    cfg = PostTrainConfig(artifact_path=str(tmp_path / "m.ptz"))
    lines: list[str] = []
    with pytest.raises(SystemExit, match="over the 1000-byte cap"):
        posttrain.export(tiny_gpt(), _hp(data, tok), cfg, CPU, lines.append)
    assert lines[-1].startswith("artifact:refused ")
    assert not (tmp_path / "m.ptz").exists()


def test_swa_weights_are_selected_on_request():
    model = tiny_gpt()
    swa_state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    swa = SimpleNamespace(count=3, state_dict=lambda like: swa_state)
    result = SimpleNamespace(model=model, swa=swa)
    lines: list[str] = []
    out = posttrain.select_weights(result, PostTrainConfig(posttrain_weights="swa"), lines.append)
    assert lines == ["swa:applying SWA weights snapshots:3"]
    assert all(float(v.abs().sum()) == 0 for v in out.state_dict().values())
    with pytest.raises(ValueError, match="POSTTRAIN_WEIGHTS"):
        posttrain.select_weights(result, PostTrainConfig(posttrain_weights="best"), lines.append)
