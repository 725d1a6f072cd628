"""reference_impl.config: upstream variable names, record-stack defaults, the tiny run by env."""
from __future__ import annotations

import re

import pytest

from reference_impl.config import Hyperparameters, ModelConfig

TINY_ENV = dict(
    NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", NUM_KV_HEADS="2", MLP_MULT="2", TRAIN_SEQ_LEN="128",
    TRAIN_BATCH_TOKENS="4096", ITERATIONS="40", WARMUP_STEPS="2", WARMDOWN_ITERS="10", VAL_LOSS_EVERY="0",
)


def test_defaults_are_the_11_layer_record_stack():
    hp = Hyperparameters.from_env({})
    cfg = hp.model_config()
    assert (cfg.num_layers, cfg.model_dim, cfg.num_heads, cfg.num_kv_heads, cfg.mlp_mult) == (11, 512, 8, 4, 3.0)
    assert (cfg.bigram_vocab_size, cfg.xsa_last_n, cfg.rope_dims, cfg.ve_layers) == (1536, 4, 16, (9, 10))
    assert cfg.ln_scale and cfg.smear_gate and cfg.unet_skips and cfg.tie_embeddings
    assert (hp.train_batch_tokens, hp.train_seq_len, hp.iterations, hp.warmdown_iters) == (786_432, 2048, 9000, 3500)
    assert (hp.matrix_lr, hp.scalar_lr, hp.tied_embed_lr, hp.muon_wd, hp.adam_wd) == (0.025, 0.025, 0.035, 0.04, 0.04)
    assert hp.run_id  # a fresh uuid when RUN_ID is unset


def test_record_run_command_reads_the_same_variables(corpus):
    """The record's README run command sets these variables; they parse to the defaults."""
    readme = corpus / "track_10min_16mb/2026-03-23_LeakyReLU_LegalTTT_ParallelMuon/README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} absent")
    env = dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", readme.read_text()))
    assert "MATRIX_LR" in env and "VE_LAYERS" in env
    hp = Hyperparameters.from_env(env)
    default = Hyperparameters.from_env({})
    for name in ("num_layers", "bigram_vocab_size", "xsa_last_n", "rope_dims", "matrix_lr", "muon_wd",
                 "warmdown_iters", "iterations", "swa_every", "ema_decay", "late_qat_threshold", "ve_dim"):
        assert getattr(hp, name) == getattr(default, name), name
    assert hp.model_config() == default.model_config()


def test_tiny_run_by_environment_alone():
    hp = Hyperparameters.from_env(TINY_ENV)
    cfg = hp.model_config()
    assert (cfg.num_layers, cfg.model_dim, cfg.head_dim) == (2, 64, 16)
    assert cfg.ve_layers == (0, 1)  # "last two layers" follows the depth
    assert hp.iterations == 40 and hp.val_loss_every == 0


def test_bad_values_name_the_variable():
    with pytest.raises(ValueError, match="NUM_LAYERS='eleven'"):
        Hyperparameters.from_env({"NUM_LAYERS": "eleven"})
    with pytest.raises(ValueError, match="NUM_KV_HEADS=3"):
        Hyperparameters.from_env({"NUM_KV_HEADS": "3"})
    with pytest.raises(ValueError, match="VE_LAYERS"):
        Hyperparameters.from_env({"NUM_LAYERS": "4", "VE_LAYERS": "9"})
    with pytest.raises(ValueError, match="SMEAR_GATE"):
        Hyperparameters.from_env({"SMEAR_GATE": "maybe"})


def test_flags_and_lists_parse():
    hp = Hyperparameters.from_env({"RECUR_LAYERS": "4,5", "VE_ENABLED": "0", "TIE_EMBEDDINGS": "false"})
    cfg = hp.model_config()
    assert cfg.recur_layers == (4, 5) and cfg.ve_layers == () and not cfg.tie_embeddings
    assert len(cfg.layer_plan) == 13
    assert cfg.layer_plan[:8] == (0, 1, 2, 3, 4, 5, 4, 5)


def test_layer_plan_without_recurrence_is_identity():
    assert ModelConfig(num_layers=5, ve_layers=()).layer_plan == (0, 1, 2, 3, 4)


def test_describe_lists_every_field_once():
    text = Hyperparameters.from_env({"SEED": "42"}).describe()
    assert "hparam:seed=42" in text.splitlines()
    assert len(text.splitlines()) == len(set(text.splitlines()))
