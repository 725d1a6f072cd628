"""A small dataset in the upstream layout, built offline from text already on this machine.

FineWeb cannot be downloaded here, so the documents are English prose that ships with Python:
the standard library's docstrings and the `pydoc` help topics, plus any text files given. A
SentencePiece BPE model is trained on them (byte fallback, digits split, no dummy prefix: the
upstream tokenizer recipe) unless a model is given, then every document is written as BOS +
its tokens into shards named as upstream, so DATA_PATH / TOKENIZER_PATH work unchanged::

    OUT/datasets/fineweb10B_sp<V>/fineweb_train_000000.bin, fineweb_val_000000.bin
    OUT/tokenizers/fineweb_<V>_bpe.model

Validation documents are drawn first and never reused for training; training documents are
cycled when the text runs short of the requested token count. Deterministic for a given seed.
"""
from __future__ import annotations

import ast
import json
import os
import random
import shutil
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reference_impl.data import write_shard

MIN_DOC_CHARS = 40


def stdlib_documents() -> Iterator[str]:
    """Docstrings of the installed standard library (tests excluded) and the pydoc topics."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
    for path in sorted(root.rglob("*.py")):
        if skip.intersection(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= MIN_DOC_CHARS:
                    yield doc
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for key in sorted(topics):
        if len(topics[key]) >= MIN_DOC_CHARS:
            yield topics[key]


def file_documents(paths: Iterable[Path]) -> Iterator[str]:
    """Each file one document (blank-line separated paragraphs are kept together)."""
    for p in sorted(paths):
        text = p.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) >= MIN_DOC_CHARS:
            yield text


def train_tokenizer(docs: list[str], vocab_size: int, model_path: Path) -> None:
    """BPE with the upstream trainer settings; writes model_path (.model) and .vocab beside it."""
    import sentencepiece as spm

    def lines() -> Iterator[str]:
        for doc in docs:
            for line in doc.splitlines():
                if line.strip():
                    yield line

    model_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "sp"
        spm.SentencePieceTrainer.train(
            sentence_iterator=lines(), model_prefix=str(prefix), model_type="bpe",
            vocab_size=vocab_size, character_coverage=0.999, byte_fallback=True, split_digits=True,
            normalization_rule_name="nmt_nfkc", add_dummy_prefix=False, pad_id=0, bos_id=1, eos_id=2,
            unk_id=3, hard_vocab_limit=False, num_threads=2, minloglevel=2, input_sentence_size=400_000,
            shuffle_input_sentence=True,
        )
        shutil.copyfile(prefix.with_suffix(".model"), model_path)
        shutil.copyfile(prefix.with_suffix(".vocab"), model_path.with_suffix(".vocab"))


@dataclass(frozen=True)
class SynthResult:
    data_path: str
    tokenizer_path: str
    vocab_size: int
    train_tokens: int
    val_tokens: int
    train_shards: int
    val_docs: int
    train_docs: int
    source_docs: int

    def env(self) -> dict[str, str]:
        """The variables that point reference_impl.train (or a record) at this dataset."""
        return {"DATA_PATH": self.data_path, "TOKENIZER_PATH": self.tokenizer_path, "VOCAB_SIZE": str(self.vocab_size)}


def _encode_docs(sp, docs: list[str]) -> list[np.ndarray]:
    bos = sp.bos_id()
    out = []
    for ids in sp.encode(docs):
        out.append(np.asarray(([bos] if bos >= 0 else []) + ids, dtype=np.int64))
    return out


def synthesize(
    out: Path,
    *,
    tokenizer: Path | None = None,
    vocab_size: int = 1024,
    train_tokens: int = 1_000_000,
    val_tokens: int = 131_072,
    shard_tokens: int = 1 << 20,
    extra_text: Iterable[Path] = (),
    seed: int = 0,
) -> SynthResult:
    """Write a dataset under `out`; see the module docstring for the layout."""
    import sentencepiece as spm

    docs = list(stdlib_documents()) + list(file_documents(extra_text))
    if len(docs) < 10:
        raise ValueError(f"only {len(docs)} documents of text found; give more with extra_text")
    random.Random(seed).shuffle(docs)
    out = Path(out)
    if tokenizer is not None:
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
        vocab_size = int(sp.vocab_size())
        model_path = out / "tokenizers" / Path(tokenizer).name
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer, model_path)
    else:
        model_path = out / "tokenizers" / f"fineweb_{vocab_size}_bpe.model"
        train_tokenizer(docs, vocab_size, model_path)
        sp = spm.SentencePieceProcessor(model_file=str(model_path))
    if vocab_size > 1 << 16:
        raise ValueError(f"vocab size {vocab_size} does not fit the uint16 shard format")
    encoded = _encode_docs(sp, docs)

    val_parts, n_val = [], 0
    while n_val < val_tokens and len(val_parts) < len(encoded) // 2:
        val_parts.append(encoded[len(val_parts)])
        n_val += val_parts[-1].size
    train_pool = encoded[len(val_parts):]
    train_parts, n_train, i = [], 0, 0
    while n_train < train_tokens:
        train_parts.append(train_pool[i % len(train_pool)])
        n_train += train_parts[-1].size
        i += 1
    val_arr = np.concatenate(val_parts)[:val_tokens]
    train_arr = np.concatenate(train_parts)[:train_tokens]

    data_dir = out / "datasets" / f"fineweb10B_sp{vocab_size}"
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*data_dir.glob("fineweb_train_*.bin"), *data_dir.glob("fineweb_val_*.bin")]:
        stale.unlink()
    write_shard(data_dir / "fineweb_val_000000.bin", val_arr)
    n_shards = 0
    for n_shards, start in enumerate(range(0, train_arr.size, shard_tokens), start=1):
        write_shard(data_dir / f"fineweb_train_{n_shards - 1:06d}.bin", train_arr[start : start + shard_tokens])
    result = SynthResult(
        data_path=str(data_dir), tokenizer_path=str(model_path), vocab_size=vocab_size,
        train_tokens=int(train_arr.size), val_tokens=int(val_arr.size), train_shards=n_shards,
        val_docs=len(val_parts), train_docs=min(i, len(train_pool)), source_docs=len(docs),
    )
    manifest = out / "manifest.json"
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, manifest)
    return result
