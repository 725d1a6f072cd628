"""The submission artifact: quantized weights in a small container, compressed, counted, capped.

Container (version 1), chosen over `torch.save` so that loading an artifact never unpickles:

    b"PGQA" | u32 version | u32 header length | JSON header | tensor bytes

The header lists each tensor (name, kind, shape, original dtype, bits, stored dtype, offsets into
the byte section). The whole container is compressed with zstandard (level 22, the records'
choice) or lzma (preset 9 | extreme). The reader detects the codec from the frame magic and
decompresses with a hard bound, so a crafted frame that expands to gigabytes is refused after
reading at most `max_bytes + 1` bytes of output.

Counted bytes (rules.md, "The artifact") = code bytes + compressed model bytes. For the reference
the code is every `.py` file of the `reference_impl` package (it is what `torchrun -m
reference_impl.train` runs) plus a record folder's `train_gpt.py` launcher when one is there.
"""

from __future__ import annotations

import io
import json
import lzma
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zstandard

from reference_impl.quant import QTensor

Tensor = torch.Tensor

BYTE_CAP = 16_000_000  # decimal bytes, code + compressed model
MAGIC = b"PGQA"
VERSION = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024  # 256 MiB: ~10x any container a 16 MB artifact holds
_MAX_HEADER = 16 * 1024 * 1024

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "float64": torch.float64, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
    "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class ArtifactError(ValueError):
    """An artifact that cannot be written or read: over the cap, corrupt, or too large to expand."""


def _tensor_bytes(t: Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: store the raw 16-bit patterns
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def _tensor_from(buf: memoryview, dtype_name: str, shape: list[int]) -> torch.Tensor:
    dtype = _DTYPES[dtype_name]
    np_dtype = torch.int16 if dtype == torch.bfloat16 else dtype
    arr = np.frombuffer(buf, dtype=torch.empty(0, dtype=np_dtype).numpy().dtype).copy()
    t = torch.from_numpy(arr)
    if dtype == torch.bfloat16:
        t = t.view(torch.bfloat16)
    return t.reshape(shape)



def pack(qstate: dict[str, QTensor]) -> bytes:
    """Container bytes of a quantized state (see module docstring)."""
    entries, chunks, offset = [], [], 0
    for name in sorted(qstate):
        qt = qstate[name]
        parts = [("data", qt.data)] + ([("scale", qt.scale)] if qt.scale is not None else [])
        entry = {"name": name, "kind": qt.kind, "shape": list(qt.shape), "dtype": _NAMES[qt.dtype],
                 "bits": qt.bits}
        for field_name, t in parts:
            raw = _tensor_bytes(t)
            entry[field_name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                                 "offset": offset, "nbytes": len(raw)}
            chunks.append(raw)
            offset += len(raw)
        entries.append(entry)
    header = json.dumps({"tensors": entries}, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<II", VERSION, len(header)) + header + b"".join(chunks)


def unpack(raw: bytes) -> dict[str, QTensor]:
    """Inverse of `pack`; raises ArtifactError on any inconsistency instead of reading past ends."""
    if raw[:4] != MAGIC or len(raw) < 12:
        raise ArtifactError("not a pgolf quantized container (bad magic)")
    version, hlen = struct.unpack("<II", raw[4:12])
    if version != VERSION:
        raise ArtifactError(f"unsupported container version {version}")
    if hlen > _MAX_HEADER or 12 + hlen > len(raw):
        raise ArtifactError(f"header length {hlen} exceeds the container ({len(raw)} bytes)")
    try:
        header = json.loads(raw[12:12 + hlen])
    except ValueError as exc:
        raise ArtifactError(f"unreadable container header: {exc}") from None
    body = memoryview(raw)[12 + hlen:]
    out: dict[str, QTensor] = {}
    for e in header["tensors"]:
        fields = {}
        for key in ("data", "scale"):
            if key not in e:
                continue
            f = e[key]
            if f["dtype"] not in _DTYPES or f["offset"] < 0 or f["offset"] + f["nbytes"] > len(body):
                raise ArtifactError(f"tensor {e['name']}.{key} lies outside the container")
            fields[key] = _tensor_from(body[f["offset"]:f["offset"] + f["nbytes"]], f["dtype"], f["shape"])
        out[e["name"]] = QTensor(e["kind"], tuple(e["shape"]), _DTYPES[e["dtype"]], fields["data"],
                                 fields.get("scale"), int(e["bits"]))
    return out


def float_container_bytes(state: dict[str, Tensor]) -> int:
    """Size of the unquantized state in the same container: the `Serialized model:` figure."""
    return len(pack({n: QTensor("float", tuple(t.shape), t.dtype, t.detach().cpu()) for n, t in state.items()}))


def compress(raw: bytes, codec: str = "zstd") -> bytes:
    """zstd level 22 (default) or lzma preset 9|extreme."""
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=22).compress(raw)
    if codec == "lzma":
        return lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    raise ArtifactError(f"unknown codec {codec!r} (zstd or lzma)")


def decompress(blob: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Decompress a zstd or xz blob, refusing output past `max_bytes` (decompression-bomb guard)."""
    too_big = f"artifact expands past the {max_bytes}-byte bound; refusing (decompression bomb?)"
    if blob.startswith(ZSTD_MAGIC):
        try:
            declared = zstandard.frame_content_size(blob)
        except zstandard.ZstdError as exc:
            raise ArtifactError(f"corrupt zstd frame: {exc}") from None
        if declared > max_bytes:  # -1 means "not declared": the streaming bound below still holds
            raise ArtifactError(too_big + f" (frame declares {declared} bytes)")
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob))
        out = io.BytesIO()
        try:
            while out.tell() <= max_bytes:
                piece = reader.read(1 << 20)
                if not piece:
                    break
                out.write(piece)
        except zstandard.ZstdError as exc:
            raise ArtifactError(f"corrupt zstd data: {exc}") from None
    elif blob.startswith(XZ_MAGIC):
        dec = lzma.LZMADecompressor()
        try:
            data = dec.decompress(blob, max_length=max_bytes + 1)
        except lzma.LZMAError as exc:
            raise ArtifactError(f"corrupt xz data: {exc}") from None
        out = io.BytesIO()
        out.write(data)
    else:
        raise ArtifactError("unknown compression (neither zstd nor xz magic)")
    if out.tell() > max_bytes:
        raise ArtifactError(too_big)
    return out.getvalue()


def code_files(package_dir: Path | None = None, launcher: Path | None = None) -> list[Path]:
    """The files the submission needs: the package's .py files, plus the launcher if it exists."""
    pkg = package_dir or Path(__file__).resolve().parent
    files = sorted(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)
    if launcher is not None and launcher.is_file():
        files.append(launcher)
    return files


@dataclass(frozen=True)
class ArtifactSizes:
    """What was written and counted, in bytes."""

    path: Path
    codec: str  # e.g. "int6+zstd"
    raw_model_bytes: int  # the float state in the same container, uncompressed
    model_bytes: int  # compressed quantized model, the artifact file's size
    code_bytes: int
    cap: int

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.code_bytes


def write_artifact(path: Path, qstate: dict[str, QTensor], *, codec: str, label: str,
                   raw_model_bytes: int, code: list[Path], cap: int = BYTE_CAP,
                   log: Callable[[str], None] = print) -> ArtifactSizes:
    """Compress, print the upstream size lines, refuse past `cap`, then write atomically."""
    blob = compress(pack(qstate), codec)
    code_bytes = sum(p.stat().st_size for p in code)
    sizes = ArtifactSizes(path, f"{label}+{codec}", raw_model_bytes, len(blob), code_bytes, cap)
    log(f"Serialized model: {raw_model_bytes} bytes")
    log(f"Code size: {code_bytes} bytes")
    log(f"Serialized model {sizes.codec}: {sizes.model_bytes} bytes")
    log(f"Total submission size {sizes.codec}: {sizes.total_bytes} bytes")
    if sizes.total_bytes > cap:
        raise ArtifactError(
            f"submission is {sizes.total_bytes} bytes (model {sizes.model_bytes} + code {code_bytes}), "
            f"{sizes.total_bytes - cap} bytes over the {cap}-byte cap; not writing {path}. "
            "Shrink the model (fewer layers, MLP_MULT, vocabulary) or quantize harder.")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return sizes


def read_artifact(path: Path, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> dict[str, QTensor]:
    """Load a quantized state from an artifact file with a bound on its decompressed size."""
    blob = Path(path).read_bytes()
    try:
        return unpack(decompress(blob, max_bytes))
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: malformed container: {exc}") from None
