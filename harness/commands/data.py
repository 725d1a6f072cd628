"""`pgolf data`: datasets in the upstream shard layout.

`pgolf data synth OUT` builds a small, offline dataset (see `reference_impl.synth`) that the
reference implementation, `pgolf demo` and any record's `train_gpt.py` can train on.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.errors import InputError

EPILOG = """\
examples:
  pgolf data synth /tmp/pg                        # SentencePiece-1024 trained here on Python's docstrings
  pgolf data synth /tmp/pg --vocab-size 512 --train-tokens 200000 --val-tokens 32768
  pgolf data synth /tmp/pg8k --tokenizer ../shared/corpus/records/track_non_record_16mb/\\
2026-03-24_106M_Binary_Asymmetric_UNet_FP8_15L_8192BPE_YaRN_NeoMuon_Smear/fineweb_8192_bpe.model
  pgolf data synth /tmp/pg --text ../shared/corpus/records   # add every README.md/*.txt under a folder

  then, e.g.:
  DATA_PATH=/tmp/pg/datasets/fineweb10B_sp1024 TOKENIZER_PATH=/tmp/pg/tokenizers/fineweb_1024_bpe.model \\
  NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=4 NUM_KV_HEADS=2 MLP_MULT=2 TRAIN_SEQ_LEN=128 \\
  TRAIN_BATCH_TOKENS=4096 ITERATIONS=40 WARMUP_STEPS=2 WARMDOWN_ITERS=10 VAL_LOSS_EVERY=0 \\
  torchrun --standalone --nproc_per_node=2 -m reference_impl.train

output: OUT/datasets/fineweb10B_sp<V>/fineweb_{train,val}_000000.bin (upstream shard format),
OUT/tokenizers/<model>, OUT/manifest.json. Prints the DATA_PATH / TOKENIZER_PATH / VOCAB_SIZE
to use (--json: the manifest).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="build datasets in the upstream shard format",
        description="Build datasets in the upstream shard format.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    synth = sub.add_parser(
        "synth", help="a small offline dataset: tokenizer + train/val shards",
        description="Train (or take) a SentencePiece model on local text and write train/val shards.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("out", type=Path, metavar="OUT", help="output folder (created)")
    synth.add_argument("--tokenizer", type=Path, metavar="MODEL",
                       help="use this SentencePiece .model instead of training one")
    synth.add_argument("--vocab-size", type=int, default=1024, metavar="N",
                       help="vocabulary of the trained tokenizer (default 1024, as upstream sp1024)")
    synth.add_argument("--train-tokens", type=int, default=1_000_000, metavar="N", help="default 1,000,000")
    synth.add_argument("--val-tokens", type=int, default=131_072, metavar="N", help="default 131,072")
    synth.add_argument("--text", type=Path, action="append", default=[], metavar="PATH",
                       help="extra text: a file, or a folder searched for README.md / *.txt (repeatable)")
    synth.add_argument("--seed", type=int, default=0, help="document shuffle seed (default 0)")
    synth.add_argument("--json", action="store_true", help="print the manifest as JSON")
    synth.set_defaults(func=run_synth)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _text_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file() and (f.name == "README.md" or f.suffix == ".txt")]
        else:
            raise InputError("no such file or folder", path=str(p))
    return files


def run_synth(args: argparse.Namespace) -> int:
    from reference_impl.synth import synthesize

    if args.tokenizer is not None and not args.tokenizer.is_file():
        raise InputError("tokenizer model not found", path=str(args.tokenizer))
    for name in ("vocab_size", "train_tokens", "val_tokens"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    try:
        result = synthesize(
            args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size, train_tokens=args.train_tokens,
            val_tokens=args.val_tokens, extra_text=_text_files(args.text), seed=args.seed,
        )
    except (ValueError, RuntimeError, OSError) as e:  # sentencepiece reports bad models as these
        raise InputError(str(e), path=str(args.tokenizer or args.out)) from None
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    else:
        print(f"wrote {result.train_tokens} train tokens ({result.train_shards} shard(s)) and "
              f"{result.val_tokens} val tokens from {result.source_docs} documents")
        print(" ".join(f"{k}={v}" for k, v in result.env().items()))
    return 0
