"""Shared test material for reference_impl part 2: a synthesized dataset with a real SentencePiece
model, the tiny GPT configuration, and an independent score-before-update ledger checker."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from reference_impl.config import Hyperparameters
from reference_impl.data import build_byte_luts
from reference_impl.model import GPT
from reference_impl.synth import synthesize

# Environment of the tiny configuration (issue 4) with a 512-piece vocabulary.
TINY_ENV = {
    "NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_MULT": "2",
    "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "VOCAB_SIZE": "512", "XSA_LAST_N": "1",
    "VE_LAYERS": "1", "BIGRAM_VOCAB_SIZE": "512", "BIGRAM_DIM": "32", "VE_DIM": "32",
}
_DATASETS: dict[int, tuple[Path, Path, object]] = {}


def make_dataset(vocab_size: int = 512) -> tuple[Path, Path, object]:
    """`reference_impl.synth` output (the code behind `pgolf data synth`): a SentencePiece model
    trained here on Python's docstrings, train/val shards. Built once per test session.
    Returns (data_path, tokenizer_path, processor)."""
    if vocab_size not in _DATASETS:
        import sentencepiece as spm

        root = Path(tempfile.mkdtemp(prefix="pgolf_ref_part2_"))
        atexit.register(shutil.rmtree, root, True)
        res = synthesize(root, vocab_size=vocab_size, train_tokens=200_000, val_tokens=16_384)
        sp = spm.SentencePieceProcessor(model_file=res.tokenizer_path)
        _DATASETS[vocab_size] = (Path(res.data_path), Path(res.tokenizer_path), sp)
    return _DATASETS[vocab_size]


def tiny_hp(**overrides: str) -> Hyperparameters:
    return Hyperparameters.from_env({**TINY_ENV, **overrides})


def tiny_gpt(seed: int = 0, noise: float = 0.05, **overrides: str) -> GPT:
    """The real GPT in the tiny configuration, weights jittered so no block is the identity."""
    torch.manual_seed(seed)
    model = GPT(tiny_hp(**overrides).model_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn_like(p))
    return model


def luts_for(sp, vocab_size: int = 512):
    return build_byte_luts(sp, vocab_size)


def ledger_violations(ledgers: list[dict], n_targets: int, last_chunk_first_pos: int) -> list[str]:
    """Check score-before-update from score/update ledgers (one dict per rank), independently of
    reference_impl.ttt. Positions index val_tokens (target t scores position t + 1; position 0 is
    context only). A score at weight version v came from the model after v optimizer steps; the
    step numbered s is the (s+1)-th update. Rules: positions 1..n_targets scored exactly once;
    every position a step used (>= 1) was scored at a version <= s; no step touches the last chunk.
    """
    import numpy as np

    version = np.full(n_targets + 1, -1, dtype=np.int64)
    count = np.zeros(n_targets + 1, dtype=np.int64)
    for led in ledgers:
        for a, b, v in led["scored"]:
            count[a:b] += 1
            version[a:b] = v
    problems = []
    if count[0]:
        problems.append("position 0 (context only) was scored")
    for p in np.flatnonzero(count[1:] != 1)[:5] + 1:
        problems.append(f"position {p} scored {count[p]} times")
    for led in ledgers:
        for s, a, b in led["steps"]:
            used = np.arange(max(a, 1), b)
            never = used[version[used] < 0]
            later = used[version[used] > s]
            if never.size:
                problems.append(f"step {s} used never-scored position {never[0]}")
            if later.size:
                problems.append(f"step {s} used position {later[0]} scored later, at version {version[later[0]]}")
            if b - 1 >= last_chunk_first_pos:
                problems.append(f"step {s} trained on the last chunk (position {b - 1})")
    return problems
