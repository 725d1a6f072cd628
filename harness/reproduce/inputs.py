"""The inputs of a reproduction, checked before any seed runs.

A reproduction costs a GPU node for tens of minutes per seed; a usage mistake must not be
paid for with a seed that crashes and a verdict that reads as a broken record. So before the
first seed: the data folder and the tokenizer exist and are what the record ran with. Every
mistake is an `InputError` (exit 2) that names what is wrong and where the expectation came from.

What is checked (`check_inputs`):
- `--data` is given and is a folder holding `fineweb_val_*.bin` and `fineweb_train_*.bin` shards
  whose headers are the upstream shard header (magic 20240520, version 1) and whose sizes match
  the token count in it (the reference reader's check, `reference_impl.shard`);
- `--tokenizer` is given and is a SentencePiece model (read with a cap; its piece count is its
  vocabulary);
- one vocabulary: the tokenizer's piece count agrees with `--vocab-size`, with what the record's
  logs print (`vocab_size`, a tokenizer file name `fineweb_<N>_bpe…`), and with a data folder
  named `…_sp<N>`; the first validation shard holds no token id outside it;
- the validation shards' token count agrees (within 1 %) with the count the record's logs
  evaluated: another count means another tokenizer or another export of the validation text.

`VOCAB_SIZE` for the runs defaults to the tokenizer's piece count when `--vocab-size` is not given.
A record that reads another data layout (a test script, a study with its own data) is run with
`--skip-input-check`; the report says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from audit.safe_read import UnsafeRead, read_capped
from harness.checks.tokenizer import TokenizerId
from harness.errors import InputError
from reference_impl.shard import HEADER_BYTES, ShardError, read_header

TOKENIZER_CAP = 64 << 20  # a SentencePiece model is well under 10 MB
SAMPLE_TOKENS = 1 << 20  # token ids scanned from the first validation shard
VAL_TOKENS_REL = 0.01
_SP_FOLDER = re.compile(r"_sp(\d+)(?:_|$)")
_TOKENIZER_NAME = re.compile(r"fineweb_(\d+)_bpe")


@dataclass(frozen=True)
class Inputs:
    """What the checks established: the tokenizer's vocabulary, the VOCAB_SIZE to set, the shards."""

    vocab: int | None
    vocab_size_env: int | None
    val_shards: int
    train_shards: int
    val_tokens: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"vocab": self.vocab, "vocab_size_env": self.vocab_size_env, "val_shards": self.val_shards,
                "train_shards": self.train_shards, "val_tokens": self.val_tokens, "notes": list(self.notes)}


def _header(path: Path) -> int:
    """The token count of a shard, checked as the reference reader checks it (magic, version, and
    the file size against the header's token count: `reference_impl.shard`); InputError naming
    the file when it is not an upstream shard."""
    try:
        return read_header(path)
    except ShardError as e:
        raise InputError(f"not a usable token shard: {e.reason}", str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read the shard: {e.strerror or e}", str(path)) from None


def _max_token(path: Path, count: int) -> int:
    import numpy as np

    n = min(count, SAMPLE_TOKENS)
    with open(path, "rb") as fh:
        fh.seek(HEADER_BYTES)
        arr = np.frombuffer(fh.read(n * 2), dtype="<u2")
    return int(arr.max()) if arr.size else -1


def tokenizer_vocab(path: Path) -> int:
    """The piece count of a SentencePiece model file (read capped, never through a link)."""
    try:
        blob = read_capped(path, TOKENIZER_CAP)
    except UnsafeRead as e:
        raise InputError(f"cannot read the tokenizer: {e.reason}", str(path)) from None
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(blob)
    except Exception as e:  # sentencepiece raises RuntimeError/OSError on a bad model
        raise InputError(f"not a SentencePiece model: {str(e).splitlines()[0][:160]}", str(path)) from None
    return int(sp.GetPieceSize())


def _expected_vocabs(record: TokenizerId, vocab_flag: int | None, data: Path) -> list[tuple[int, str]]:
    """(vocabulary, where the expectation comes from) for every source that names one."""
    out: list[tuple[int, str]] = []
    if vocab_flag:
        out.append((vocab_flag, "--vocab-size"))
    if record.vocab:
        out.append((record.vocab, f"the record's logs print vocab_size {record.vocab} ({record.vocab_at})"))
    if record.name:
        m = _TOKENIZER_NAME.search(record.name)
        if m:
            out.append((int(m.group(1)), f"the record's logs name the tokenizer {record.name} ({record.name_at})"))
    m = _SP_FOLDER.search(data.name)
    if m:
        out.append((int(m.group(1)), f"the data folder is named {data.name}"))
    return out


def check_inputs(data_path: str | None, tokenizer_path: str | None, vocab_size: int | None,
                 record: TokenizerId) -> Inputs:
    """Check a reproduction's inputs against each other and the record (see the module docstring)."""
    if not data_path:
        raise InputError("no --data: the record reads its dataset from DATA_PATH; give --data DIR, the folder of "
                         "fineweb_train_*.bin / fineweb_val_*.bin shards the record ran on (or --skip-input-check "
                         "for a record that needs none)")
    data = Path(data_path)
    if not data.is_dir():
        raise InputError("--data: no such folder" if not data.exists() else "--data: not a folder", str(data))
    val = sorted(data.glob("fineweb_val_*.bin"))
    train = sorted(data.glob("fineweb_train_*.bin"))
    if not val or not train:
        missing = " and ".join(n for n, s in (("fineweb_val_*.bin", val), ("fineweb_train_*.bin", train)) if not s)
        raise InputError(f"--data: no {missing} shards in this folder", str(data))
    val_tokens = 0
    for shard in val + train[:1]:
        count = _header(shard)
        if shard in val:
            val_tokens += count
    if not tokenizer_path:
        raise InputError("no --tokenizer: the record reads its tokenizer from TOKENIZER_PATH; give --tokenizer "
                         "FILE.model, the SentencePiece model the shards were tokenized with")
    tok = Path(tokenizer_path)
    if not tok.is_file():
        raise InputError("--tokenizer: no such file" if not tok.exists() else "--tokenizer: not a file", str(tok))
    vocab = tokenizer_vocab(tok)
    for want, source in _expected_vocabs(record, vocab_size, data):
        if want != vocab:
            raise InputError(f"the tokenizer has {vocab} pieces but {source} says {want}: the wrong tokenizer, "
                             "data or --vocab-size for this record", str(tok))
    top = _max_token(val[0], _header(val[0]))
    if top >= vocab:
        raise InputError(f"the validation shard holds token id {top}, outside the tokenizer's {vocab} pieces: the "
                         "shards were tokenized with another tokenizer", str(val[0]))
    notes = []
    if record.val_tokens and abs(val_tokens - record.val_tokens) > VAL_TOKENS_REL * record.val_tokens:
        raise InputError(f"the validation shards hold {val_tokens:,} tokens but the record's logs evaluated "
                         f"{record.val_tokens:,} ({record.tokens_at}): another tokenizer or another export of the "
                         "validation text", str(data))
    if record.name and tok.name != record.name:
        notes.append(f"the tokenizer file is {tok.name}; the record's logs name {record.name} (same vocabulary {vocab})")
    return Inputs(vocab, vocab_size or vocab, len(val), len(train), val_tokens, tuple(notes))
