"""reference_impl.data: the shard format, the distributed stream, byte counting for val_bpb."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from reference_impl.data import (
    HEADER_BYTES,
    DistributedTokenLoader,
    ShardError,
    build_byte_luts,
    load_validation_tokens,
    read_shard,
    target_byte_counts,
    write_shard,
)
from reference_impl.synth import stdlib_documents


def test_round_trip_and_header(tmp_path):
    toks = torch.tensor([0, 1, 65535, 1024, 7], dtype=torch.int64)
    p = tmp_path / "fineweb_train_000000.bin"
    write_shard(p, toks)
    assert p.stat().st_size == HEADER_BYTES + 2 * 5
    header = np.fromfile(p, dtype="<i4", count=3)
    assert header.tolist() == [20240520, 1, 5]
    assert read_shard(p).long().tolist() == toks.tolist()


def test_writer_refuses_ids_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="65535"):
        write_shard(tmp_path / "x.bin", np.array([70000]))


def _shard(tmp_path: Path, n: int = 100) -> Path:
    p = tmp_path / "fineweb_val_000000.bin"
    write_shard(p, np.arange(n) % 1000)
    return p


def test_bad_magic(tmp_path):
    p = _shard(tmp_path)
    raw = bytearray(p.read_bytes())
    raw[:4] = np.array([12345], dtype="<i4").tobytes()
    p.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match=r"bad magic 12345 .*expected 20240520") as e:
        read_shard(p)
    assert str(p) in str(e.value)


def test_wrong_size(tmp_path):
    p = _shard(tmp_path)
    p.write_bytes(p.read_bytes() + b"\0\0\0\0")
    with pytest.raises(ShardError, match=r"wrong size: 1228 bytes on disk, header says 100 tokens = 1224 bytes") as e:
        read_shard(p)
    assert str(p) in str(e.value)


def test_truncated(tmp_path):
    p = _shard(tmp_path)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ShardError, match=r"truncated: 1214 bytes on disk.*\(5 tokens missing\)"):
        read_shard(p)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ShardError, match=r"truncated header: 100 bytes"):
        read_shard(p)


def test_unsupported_version(tmp_path):
    p = _shard(tmp_path)
    raw = bytearray(p.read_bytes())
    raw[4:8] = np.array([2], dtype="<i4").tobytes()
    p.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match="version 2"):
        read_shard(p)


def test_missing_pattern_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="fineweb_val_"):
        load_validation_tokens(str(tmp_path / "fineweb_val_*.bin"), 16)


def test_validation_tokens_are_whole_windows_plus_one(tmp_path):
    write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(50))
    write_shard(tmp_path / "fineweb_val_000001.bin", np.arange(50, 75))
    v = load_validation_tokens(str(tmp_path / "fineweb_val_*.bin"), 16)
    assert v.long().tolist() == list(range(65))  # 4 windows of 16 + 1, shards in name order


def test_loader_ranks_take_disjoint_deterministic_slices(tmp_path):
    write_shard(tmp_path / "fineweb_train_000000.bin", np.arange(300))
    write_shard(tmp_path / "fineweb_train_000001.bin", np.arange(300, 500))
    pattern = str(tmp_path / "fineweb_train_*.bin")
    cpu = torch.device("cpu")
    seen = []
    for rank in range(2):
        loader = DistributedTokenLoader(pattern, rank, 2, cpu)
        batches = [loader.next_batch(64, 8, 2) for _ in range(10)]  # 16 tokens per rank per micro-batch
        again = DistributedTokenLoader(pattern, rank, 2, cpu)
        assert all(torch.equal(a[0], again.next_batch(64, 8, 2)[0]) for a in batches)
        for x, y in batches:
            assert x.shape == (2, 8) and torch.equal(x.flatten()[1:], y.flatten()[:-1])
            seen.append(set(x.flatten().tolist()))
    first_rank, second_rank = set().union(*seen[:10]), set().union(*seen[10:])
    assert not first_rank & second_rank
    assert max(first_rank | second_rank) > 300  # crossed into the second shard


def _corpus_tokenizers(corpus: Path) -> list[Path]:
    """Distinct SentencePiece models shipped in the corpus (by content)."""
    by_hash: dict[str, Path] = {}
    for p in sorted(corpus.rglob("*.model")):
        by_hash.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), p)
    return list(by_hash.values())


DOCS = [
    "Plain ASCII text.  With double  spaces, tabs\tand\nnewlines.",
    "Ünïcödé: naïve café, 東京, Ελληνικά, emoji 🙂🚀 and math ∑∫√.",
    " leading space and trailing space ",
    "digits 1234567890 and punctuation !?;:'\"()[]{}",
]


def _bos_concat(sp, docs: list[str]) -> tuple[torch.Tensor, int]:
    """BOS + tokens of each document (the upstream shard layout) and the UTF-8 byte count of
    what those tokens decode to."""
    ids, decoded_bytes = [], 0
    for doc in docs:
        toks = sp.encode(doc)
        ids += [sp.bos_id(), *toks]
        decoded_bytes += len(sp.decode(toks).encode("utf-8"))
    return torch.tensor(ids), decoded_bytes


def test_byte_luts_count_exactly_the_decoded_utf8_bytes(corpus):
    """Every distinct tokenizer in the corpus (the 8192 BPE and the CaseOps variants). For CaseOps
    records the count is exact for the text the pieces decode to; whether that text is the
    original document depends on the record's own preprocessing, which rules.md makes it prove."""
    import sentencepiece as spm

    models = _corpus_tokenizers(corpus)
    if not models:
        pytest.skip(f"no SentencePiece model under {corpus}")
    docs = DOCS + [d for _, d in zip(range(300), stdlib_documents())]
    for model in models:
        sp = spm.SentencePieceProcessor(model_file=str(model))
        ids, expected = _bos_concat(sp, docs)
        luts = build_byte_luts(sp, int(sp.vocab_size()))
        counted = int(target_byte_counts(luts, ids[:-1], ids[1:]).sum())
        assert counted == expected, model
        assert bool(luts.is_boundary[sp.bos_id()]) and int(luts.base_bytes[sp.bos_id()]) == 0


def test_byte_count_of_a_leading_space_depends_on_the_previous_token(corpus):
    import sentencepiece as spm

    models = _corpus_tokenizers(corpus)
    if not models:
        pytest.skip("no tokenizer in corpus")
    sp = spm.SentencePieceProcessor(model_file=str(models[0]))
    luts = build_byte_luts(sp, int(sp.vocab_size()))
    word = sp.piece_to_id("\u2581the")
    assert word != sp.unk_id()
    after_bos = target_byte_counts(luts, torch.tensor([sp.bos_id()]), torch.tensor([word]))
    after_word = target_byte_counts(luts, torch.tensor([word]), torch.tensor([word]))
    assert (int(after_bos), int(after_word)) == (3, 4)


def test_table_covers_ids_past_the_tokenizer(corpus):
    import sentencepiece as spm

    models = _corpus_tokenizers(corpus)
    if not models:
        pytest.skip("no tokenizer in corpus")
    sp = spm.SentencePieceProcessor(model_file=str(models[0]))
    luts = build_byte_luts(sp, int(sp.vocab_size()) + 8)
    assert luts.base_bytes.numel() == int(sp.vocab_size()) + 8 and bool(luts.is_boundary[-1])


def test_synth_with_a_corpus_tokenizer(corpus, tmp_path, capsys):
    import sentencepiece as spm

    from harness.cli import main as pgolf

    models = [p for p in _corpus_tokenizers(corpus) if "caseops" not in p.name]
    if not models:
        pytest.skip("no plain tokenizer in corpus")
    readme = next(corpus.rglob("README.md"))
    out = tmp_path / "out"
    code = pgolf(["data", "synth", str(out), "--tokenizer", str(models[0]), "--train-tokens", "20000",
                  "--val-tokens", "4096", "--text", str(readme)])
    assert code == 0
    sp = spm.SentencePieceProcessor(model_file=str(models[0]))
    data = out / "datasets" / f"fineweb10B_sp{sp.vocab_size()}"
    assert f"DATA_PATH={data} " in capsys.readouterr().out
    assert (out / "tokenizers" / models[0].name).read_bytes() == models[0].read_bytes()
    val, train = read_shard(data / "fineweb_val_000000.bin"), read_shard(data / "fineweb_train_000000.bin")
    assert (val.numel(), train.numel()) == (4096, 20000)
    assert int(val[0]) == sp.bos_id() and int(train.long().max()) < sp.vocab_size()


def test_synth_cli_rejects_unusable_input(tmp_path, capsys):
    from harness.cli import main as pgolf

    assert pgolf(["data", "synth", str(tmp_path / "o"), "--tokenizer", str(tmp_path / "missing.model")]) == 2
    assert "missing.model: tokenizer model not found" in capsys.readouterr().err
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    assert pgolf(["data", "synth", str(tmp_path / "o"), "--tokenizer", str(bad)]) == 2
    assert pgolf(["data", "synth", str(tmp_path / "o"), "--val-tokens", "0"]) == 2
