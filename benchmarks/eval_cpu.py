"""Scoring throughput of the reference on CPU, tiny configuration: standard evaluation,
sliding-window evaluation and legal score-first TTT, in scored validation tokens per second.

    python benchmarks/eval_cpu.py [--stride 32] [--val-tokens 16384] [--threads 1]

Builds a dataset with reference_impl.synth (SentencePiece trained here on Python's docstrings) in a
temporary folder, a tiny GPT (2 layers, 64 wide, seq 128: the issue-4 tiny configuration), then
times each phase on one process. TTT tokens/s counts scored tokens over the whole phase (scoring
plus the training steps on every chunk but the last).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sentencepiece as spm
import torch

from reference_impl.config import Hyperparameters
from reference_impl.data import build_byte_luts, load_validation_tokens
from reference_impl.distributed import DistContext
from reference_impl.evaluate import eval_val, eval_val_sliding
from reference_impl.model import GPT
from reference_impl.synth import synthesize
from reference_impl.ttt import TTTConfig, legal_ttt

TINY = {"NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_MULT": "2",
        "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "VOCAB_SIZE": "1024"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--val-tokens", type=int, default=16_384)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--ttt-chunk", type=int, default=2048)
    ap.add_argument("--ttt-epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hp = Hyperparameters.from_env(TINY)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        res = synthesize(Path(tmp), vocab_size=hp.vocab_size, train_tokens=10_000, val_tokens=args.val_tokens)
        sp = spm.SentencePieceProcessor(model_file=res.tokenizer_path)
        val = load_validation_tokens(str(Path(res.data_path) / "fineweb_val_*.bin"), hp.train_seq_len)
    luts = build_byte_luts(sp, hp.vocab_size)
    torch.manual_seed(0)
    model = GPT(hp.model_config())
    n = val.numel() - 1
    seq = hp.train_seq_len
    print(f"tiny config: {model.num_params()} params, seq_len {seq}, {n} validation tokens, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")

    def timed(label: str, fn) -> None:
        fn()  # warm-up pass (allocator, kernels) not timed
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        print(f"{label:<34} {n / dt:>12,.0f} tokens/s   ({dt * 1000:.0f} ms, val_loss {out[0]:.4f})")

    timed("standard eval", lambda: eval_val(model, val, luts, seq, 32, ctx))
    timed(f"sliding window stride {args.stride}",
          lambda: eval_val_sliding(model, val, luts, seq, args.stride, 32, ctx))
    cfg = TTTConfig(seq_len=seq, stride=args.stride, chunk_tokens=args.ttt_chunk, epochs=args.ttt_epochs,
                    batch_seqs=8)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def ttt():
        model.load_state_dict(state)
        r = legal_ttt(model, val, luts, cfg, ctx, log=lambda _m: None)
        return r.val_loss, r.val_bpb

    timed(f"legal TTT ({args.ttt_epochs} ep, chunk {args.ttt_chunk})", ttt)


if __name__ == "__main__":
    main()
