"""reference_impl.artifact: container round trip, codecs, size lines, the cap, decompression bombs."""
from __future__ import annotations

import lzma
from pathlib import Path

import pytest
import torch
import zstandard

from reference_impl import artifact, quant
from reference_impl.artifact import ArtifactError
from reference_impl.quant import QTensor, QuantConfig
from ref_part2_support import tiny_gpt

MiB = 1024 * 1024


def _qstate():
    return quant.quantize_state_dict(tiny_gpt().state_dict(), QuantConfig(passthrough_numel=0))


def test_pack_unpack_is_exact_for_every_dtype():
    state = {
        "a": QTensor("float", (2, 3), torch.bfloat16, torch.randn(2, 3).bfloat16()),
        "b": QTensor("float", (4,), torch.int64, torch.arange(4)),
        "c": QTensor("int", (3, 5), torch.float32, torch.randint(-31, 32, (3, 5), dtype=torch.int8),
                     torch.rand(3).half(), 6),
        "d": QTensor("float", (), torch.float32, torch.tensor(1.5)),
    }
    back = artifact.unpack(artifact.pack(state))
    for k, qt in state.items():
        assert back[k].kind == qt.kind and back[k].shape == qt.shape and back[k].dtype == qt.dtype
        assert torch.equal(back[k].data, qt.data)
        assert (back[k].scale is None) == (qt.scale is None)
    assert torch.equal(back["c"].scale, state["c"].scale)


@pytest.mark.parametrize("codec,magic", [("zstd", artifact.ZSTD_MAGIC), ("lzma", artifact.XZ_MAGIC)])
def test_write_read_artifact_prints_upstream_lines(tmp_path: Path, codec: str, magic: bytes):
    qstate = _qstate()
    launcher = tmp_path / "train_gpt.py"
    launcher.write_text("from reference_impl.train import main\nmain()\n")
    code = artifact.code_files(launcher=launcher)
    lines: list[str] = []
    sizes = artifact.write_artifact(tmp_path / "m.ptz", qstate, codec=codec, label="int6", raw_model_bytes=123,
                                    code=code, log=lines.append)
    blob = (tmp_path / "m.ptz").read_bytes()
    assert blob.startswith(magic) and len(blob) == sizes.model_bytes
    assert sizes.code_bytes == sum(p.stat().st_size for p in code)
    assert lines == [
        "Serialized model: 123 bytes",
        f"Code size: {sizes.code_bytes} bytes",
        f"Serialized model int6+{codec}: {sizes.model_bytes} bytes",
        f"Total submission size int6+{codec}: {sizes.model_bytes + sizes.code_bytes} bytes",
    ]
    back = artifact.read_artifact(tmp_path / "m.ptz")
    for k, qt in qstate.items():
        assert torch.equal(back[k].data, qt.data), k


def test_code_files_are_the_package_sources_plus_the_launcher(tmp_path: Path):
    files = artifact.code_files(launcher=tmp_path / "absent.py")
    names = {p.name for p in files}
    assert {"model.py", "train.py", "quant.py", "artifact.py", "ttt.py", "posttrain.py", "__init__.py"} <= names
    assert all(p.suffix == ".py" for p in files)
    (tmp_path / "train_gpt.py").write_text("x = 1\n")
    assert artifact.code_files(launcher=tmp_path / "train_gpt.py")[-1] == tmp_path / "train_gpt.py"


def test_refuses_past_the_cap_and_writes_nothing(tmp_path: Path):
    lines: list[str] = []
    with pytest.raises(ArtifactError, match=r"over the 1000-byte cap") as err:
        artifact.write_artifact(tmp_path / "m.ptz", _qstate(), codec="zstd", label="int6", raw_model_bytes=1,
                                code=artifact.code_files(), cap=1000, log=lines.append)
    assert "Shrink the model" in str(err.value)
    assert not (tmp_path / "m.ptz").exists()
    assert lines[-1].startswith("Total submission size int6+zstd: ")  # the figure is still in the log


def _zstd_bomb(total: int, declare_size: bool) -> bytes:
    """`total` zero bytes in one zstd frame, streamed so the test never holds them in memory."""
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=declare_size)
    chunker = cctx.chunker(size=total if declare_size else -1)
    out = []
    zeros = bytes(MiB)
    for _ in range(total // MiB):
        out.extend(chunker.compress(zeros))
    out.extend(chunker.finish())
    return b"".join(out)


def test_zstd_bomb_with_declared_size_is_rejected_before_decompressing(tmp_path: Path):
    bomb = _zstd_bomb(1024 * MiB, declare_size=True)  # 1 GiB of zeros in a few tens of KB
    assert len(bomb) < 200_000
    (tmp_path / "bomb.ptz").write_bytes(bomb)
    with pytest.raises(ArtifactError, match="decompression bomb"):
        artifact.read_artifact(tmp_path / "bomb.ptz")  # default bound (256 MiB)


def test_zstd_bomb_without_declared_size_stops_at_the_bound(tmp_path: Path):
    bomb = _zstd_bomb(64 * MiB, declare_size=False)
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(ArtifactError, match="expands past the 4194304-byte bound"):
        artifact.decompress(bomb, max_bytes=4 * MiB)


def test_xz_bomb_is_rejected():
    comp = lzma.LZMACompressor(preset=1)
    zeros = bytes(MiB)
    bomb = b"".join(comp.compress(zeros) for _ in range(32)) + comp.flush()
    with pytest.raises(ArtifactError, match="bound"):
        artifact.decompress(bomb, max_bytes=4 * MiB)


@pytest.mark.parametrize("blob", [b"", b"garbage", artifact.ZSTD_MAGIC + b"\x00" * 8])
def test_corrupt_blobs_raise_artifact_error(blob: bytes):
    with pytest.raises(ArtifactError):
        artifact.unpack(artifact.decompress(blob))


def test_truncated_container_is_refused():
    raw = artifact.pack(_qstate())
    with pytest.raises(ArtifactError, match="outside the container"):
        artifact.unpack(raw[: len(raw) // 2])
