"""Sliding-window evaluation: stride = seq_len is the standard evaluation; every target once."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from reference_impl.data import load_validation_tokens
from reference_impl.distributed import DistContext
from reference_impl.evaluate import (ScoreSums, eval_val, eval_val_sliding, rank_slice, score_windows,
                                     sliding_windows)
from ref_part2_support import luts_for, make_dataset, tiny_gpt

CPU = torch.device("cpu")
SEQ = 128


def ctx(rank: int = 0, world: int = 1) -> DistContext:
    return DistContext(rank=rank, world_size=world, local_rank=rank, device=CPU)


@pytest.fixture(scope="module")
def dataset():
    data, _tok, sp = make_dataset()
    val = load_validation_tokens(str(Path(data) / "fineweb_val_*.bin"), SEQ)
    return val, luts_for(sp)


@pytest.mark.parametrize("n,seq,stride", [(1000, 128, 128), (1000, 128, 32), (1001, 128, 7), (50, 128, 16),
                                          (300, 64, 1), (4096, 512, 64)])
def test_windows_score_every_target_once_with_enough_context(n, seq, stride):
    windows = sliding_windows(n, seq, stride)
    hits = torch.zeros(n, dtype=torch.int64)
    for w in windows:
        assert w.end - w.start == min(seq, n)  # one batch shape
        assert w.start <= w.score_from < w.end
        if w.start > 0:
            assert w.score_from - w.start >= seq - stride  # context before the first scored target
        hits[w.score_from:w.end] += 1
    assert torch.equal(hits, torch.ones(n, dtype=torch.int64))


def test_stride_equal_to_seq_len_is_the_standard_evaluation(dataset):
    val, luts = dataset
    val = val[: 40 * SEQ + 1]
    model = tiny_gpt()
    std = eval_val(model, val, luts, SEQ, 8, ctx())
    slide = eval_val_sliding(model, val, luts, SEQ, SEQ, 8, ctx())
    assert slide == pytest.approx(std, rel=1e-6)
    windows = sliding_windows(val.numel() - 1, SEQ, SEQ)
    assert [(w.start, w.score_from) for w in windows] == [(i * SEQ, i * SEQ) for i in range(len(windows))]


@pytest.mark.parametrize("stride", [32, 100])
def test_smaller_stride_counts_each_token_exactly_once(dataset, stride):
    val, luts = dataset
    val = val[: 8 * SEQ + 37]  # a ragged tail: the last window is shifted back, not rescored
    model = tiny_gpt()
    sums = ScoreSums.recording(CPU, val.numel() - 1)
    loss, bpb = eval_val_sliding(model, val, luts, SEQ, stride, 8, ctx(), sums)
    assert torch.equal(sums.hits, torch.ones_like(sums.hits))
    assert int(sums.sums[1]) == val.numel() - 1
    assert float(sums.sums[0]) == pytest.approx(float(sums.per_target.sum()), rel=1e-9)
    assert loss == pytest.approx(float(sums.per_target.mean()), rel=1e-9)
    assert 0 < bpb < 20


def test_each_score_equals_the_model_on_its_own_window(dataset):
    """A scored NLL is the plain forward pass on the window: no lookahead enters it."""
    val, luts = dataset
    val = val[: 6 * SEQ + 1]
    model = tiny_gpt().eval()
    sums = ScoreSums.recording(CPU, val.numel() - 1)
    windows = sliding_windows(val.numel() - 1, SEQ, 48)
    score_windows(model, val, windows, luts, ctx(), sums, 4)
    w = windows[3]
    x = val[w.start:w.end].long()[None]
    y = val[w.start + 1:w.end + 1].long()[None]
    with torch.no_grad():
        nll = model(x, y, "none")[0].double()
    off = w.score_from - w.start
    assert torch.allclose(sums.per_target[w.score_from:w.end], nll[off:], rtol=1e-5, atol=1e-6)


def test_rank_split_sums_to_the_single_rank_result(dataset):
    val, luts = dataset
    val = val[: 10 * SEQ + 1]
    model = tiny_gpt()
    windows = sliding_windows(val.numel() - 1, SEQ, 40)
    whole = ScoreSums(CPU)
    score_windows(model, val, windows, luts, ctx(), whole, 8)
    parts = []
    for r in range(3):
        s = ScoreSums(CPU)
        score_windows(model, val, rank_slice(windows, ctx(r, 3)), luts, ctx(r, 3), s, 8)
        parts.append(s.sums)
    assert list(itertools.chain.from_iterable(rank_slice(windows, ctx(r, 3)) for r in range(3))) == windows
    assert torch.allclose(sum(parts), whole.sums, rtol=1e-9)


def test_bad_stride_is_refused():
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(100, 64, 0)
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(100, 64, 65)
