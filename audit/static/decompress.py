"""Decoders the audit applies to submitted bytes, each streaming with an output cap.

A 4.7 KB `exec(bz2.decompress(b85decode(...)))` can expand to gigabytes: no decoder here ever
produces more than `cap` bytes. Each decompressor is driven through its streaming interface with
a maximum output length (`max_length`, brotli's `output_buffer_limit`, zstd's stream reader), so
the cap holds before the memory is spent, not after. Codecs that cannot expand their input
(base64/85, hex, uu, quoted-printable, text encodings) run directly: their output is bounded by
the input, which is itself a literal of a capped file.

`decode(name, data, cap, **options)` is the one entry point; `name` is the qualified call
(`zlib.decompress`, `brotli.decompress`, `codecs.decode:zlib`, ...). An unknown name raises
`KeyError`; bad data raises `DecodeError`; output over the cap raises `TooLarge`.
"""
from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import io
import lzma
import zlib


class DecodeError(ValueError):
    """The data is not valid for the decoder (a corrupt or truncated payload)."""


class TooLarge(DecodeError):
    """Decoding would produce more than the cap: a decompression bomb, refused while streaming."""


def _check(out: bytes, cap: int, unfinished: bool) -> bytes:
    if len(out) > cap or (unfinished and len(out) >= cap):
        raise TooLarge(f"decoded output exceeds the {cap}-byte cap")
    return out


def zlib_stream(data: bytes, cap: int, wbits: int = zlib.MAX_WBITS) -> bytes:
    """zlib / raw deflate / gzip (wbits 16+) with every gzip member, at most `cap` bytes."""
    out = bytearray()
    rest = data
    while True:
        d = zlib.decompressobj(wbits)
        try:
            out += d.decompress(rest, cap + 1 - len(out))
            while d.unconsumed_tail and len(out) <= cap:
                out += d.decompress(d.unconsumed_tail, cap + 1 - len(out))
        except zlib.error as e:
            raise DecodeError(f"zlib: {e}") from None
        _check(bytes(out[: cap + 1]), cap, not d.eof)
        rest = d.unused_data
        if not (wbits > 16 and rest.startswith(b"\x1f\x8b")):  # more gzip members follow
            return bytes(out)


def bz2_stream(data: bytes, cap: int) -> bytes:
    out = bytearray()
    rest = data
    while rest:
        d = bz2.BZ2Decompressor()
        try:
            out += d.decompress(rest, cap + 1 - len(out))
            while not d.eof and d.needs_input is False and len(out) <= cap:
                out += d.decompress(b"", cap + 1 - len(out))
        except (OSError, ValueError) as e:
            raise DecodeError(f"bz2: {e}") from None
        _check(bytes(out[: cap + 1]), cap, not d.eof)
        if not d.eof:
            raise DecodeError("bz2: truncated stream")
        rest = d.unused_data  # bz2.decompress accepts concatenated streams
    return bytes(out)


def lzma_stream(data: bytes, cap: int, format: int = lzma.FORMAT_AUTO, filters=None) -> bytes:
    """Every concatenated .xz/.lzma stream (as `lzma.decompress` reads them), at most `cap` bytes."""
    out = bytearray()
    rest = data
    while rest:
        try:
            d = lzma.LZMADecompressor(format=format, filters=filters)
            out += d.decompress(rest, cap + 1 - len(out))
            while not d.eof and d.needs_input is False and len(out) <= cap:
                out += d.decompress(b"", cap + 1 - len(out))
        except (lzma.LZMAError, ValueError, TypeError) as e:
            if out:  # trailing garbage after a complete stream: lzma.decompress ignores it too
                break
            raise DecodeError(f"lzma: {e}") from None
        _check(bytes(out[: cap + 1]), cap, not d.eof)
        if not d.eof:
            raise DecodeError("lzma: truncated stream")
        rest = d.unused_data if format != lzma.FORMAT_RAW else b""
    return bytes(out)


def brotli_stream(data: bytes, cap: int) -> bytes:
    try:
        import brotli
    except ImportError:  # pyproject lists it; without it a brotli payload stays undecoded (REVIEW)
        raise DecodeError("brotli is not installed") from None
    d = brotli.Decompressor()
    step = min(cap + 1, 1 << 20)
    try:
        out = bytearray(d.process(data, output_buffer_limit=step))
        while not d.is_finished() and not d.can_accept_more_data() and len(out) <= cap:
            out += d.process(b"", output_buffer_limit=step)
    except brotli.error as e:
        raise DecodeError(f"brotli: {e}") from None
    return _check(bytes(out[: cap + 1]), cap, not d.is_finished())


def zstd_stream(data: bytes, cap: int) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise DecodeError("zstandard is not installed") from None
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as r:
            out = r.read(cap + 1)
    except zstandard.ZstdError as e:
        raise DecodeError(f"zstd: {e}") from None
    return _check(out, cap, False)


def _bounded(fn):
    """A decoder whose output cannot exceed its input (base64/85/32/16, hex): run it directly."""
    def run(data: bytes, cap: int, **_) -> bytes:
        try:
            return _check(fn(data), cap, False)
        except (binascii.Error, ValueError, TypeError) as e:
            raise DecodeError(str(e)) from None
    return run


def _fromhex(data) -> bytes:
    return bytes.fromhex(data.decode("ascii") if isinstance(data, bytes) else data)


# qualified call -> decoder(data, cap, **options); none ever returns more than `cap` bytes
DECODERS = {
    "zlib.decompress": lambda b, cap, wbits=zlib.MAX_WBITS, **_: zlib_stream(b, cap, wbits),
    "gzip.decompress": lambda b, cap, **_: zlib_stream(b, cap, 16 + zlib.MAX_WBITS),
    "bz2.decompress": lambda b, cap, **_: bz2_stream(b, cap),
    "lzma.decompress": lambda b, cap, format=lzma.FORMAT_AUTO, filters=None, **_: lzma_stream(b, cap, format, filters),
    "brotli.decompress": lambda b, cap, **_: brotli_stream(b, cap),
    **{name: lambda b, cap, **_: zstd_stream(b, cap) for name in ("zstandard.decompress", "zstd.decompress", "compression.zstd.decompress")},
    **{f"base64.{n}": _bounded(getattr(base64, n)) for n in (
        "b85decode", "a85decode", "b64decode", "standard_b64decode", "urlsafe_b64decode", "b32decode", "b32hexdecode",
        "b16decode", "decodebytes")},
    "base64.decodestring": _bounded(base64.decodebytes),
    **{f"binascii.{n}": _bounded(getattr(binascii, n)) for n in ("a2b_base64", "unhexlify", "a2b_hex")},
    "bytes.fromhex": _bounded(_fromhex),
}

# `codecs.decode(x, name)`: the codecs that compress; every other codec's output is no larger
# than its input (base64, hex, uu, quopri, rot13, text encodings)
_COMPRESSING_CODECS = {"zlib": DECODERS["zlib.decompress"], "bz2": DECODERS["bz2.decompress"]}


def codec_decode(data: bytes | str, encoding: str, cap: int) -> bytes | str:
    """`codecs.decode(data, encoding)` with an output cap for the compressing codecs."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DecodeError(f"unknown codec {encoding!r}") from None
    if name in _COMPRESSING_CODECS:
        if isinstance(data, str):
            raise DecodeError(f"{name} codec needs bytes")
        return _COMPRESSING_CODECS[name](data, cap)
    try:
        out = codecs.decode(data, name)
    except (ValueError, TypeError, binascii.Error, UnicodeError) as e:
        raise DecodeError(f"{name}: {e}") from None
    if len(out) > cap:
        raise TooLarge(f"decoded output exceeds the {cap}-byte cap")
    return out


def decode(name: str, data: bytes, cap: int, **options) -> bytes:
    """Run the decoder registered as `name` (a qualified call) on `data`, capped at `cap` bytes."""
    return DECODERS[name](data, cap, **options)
