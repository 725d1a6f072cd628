"""Reading submission code as data: bytes -> text -> (optionally) the payload it would exec.

Submissions are untrusted: nothing here imports or runs them. A self-extracting script
(`exec(lzma.decompress(base64.b85decode("...")))`, several records ship that way to save code
bytes) is decoded by evaluating only a whitelist of pure stdlib decoders on its literals, with an
output cap against decompression bombs. `exec(open(<sibling>.py).read())` resolves to that file.
"""
from __future__ import annotations

import base64
import bz2
import codecs
import gzip
import io
import lzma
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

MAX_FILE_BYTES = 8_000_000  # the issue asks for files up to 5 MB; bigger ones are REVIEW
MAX_PAYLOAD_BYTES = 20_000_000


@dataclass
class SourceText:
    """A decoded source file, or the reason it could not be read."""

    path: str
    text: str | None
    problem: str | None = None
    encoding: str = "utf-8"


def read_source(path: Path) -> SourceText:
    """Read `path` honouring PEP 263 encodings; never raises on bad bytes."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return SourceText(str(path), None, f"cannot read: {e.strerror or e}")
    return decode_source(str(path), raw)


def decode_source(name: str, raw: bytes) -> SourceText:
    if len(raw) > MAX_FILE_BYTES:
        return SourceText(name, None, f"file is {len(raw)} bytes, over the {MAX_FILE_BYTES}-byte audit cap")
    try:
        enc, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as e:
        return SourceText(name, None, f"bad encoding declaration: {e}")
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError) as e:
        return SourceText(name, None, f"cannot decode as {enc}: {e}")
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceText(name, text, None, enc)


# ---- self-extracting payloads ------------------------------------------------------------

_DECODERS = {
    "lzma.decompress": lambda b: _capped_lzma(b),
    "zlib.decompress": lambda b: zlib.decompressobj().decompress(b, MAX_PAYLOAD_BYTES),
    "gzip.decompress": lambda b: gzip.decompress(b),
    "bz2.decompress": lambda b: bz2.decompress(b),
    "base64.b85decode": base64.b85decode,
    "base64.b64decode": base64.b64decode,
    "base64.a85decode": base64.a85decode,
    "base64.b32decode": base64.b32decode,
    "base64.decodebytes": base64.decodebytes,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "codecs.decode": None,  # handled with its encoding argument
}


def _capped_lzma(b: bytes) -> bytes:
    d = lzma.LZMADecompressor()
    out = d.decompress(b, MAX_PAYLOAD_BYTES)
    if not d.eof and len(out) >= MAX_PAYLOAD_BYTES:
        raise ValueError("payload over the decompression cap")
    return out


class NotDecodable(Exception):
    pass


def literal_value(node: cst.BaseExpression) -> str | bytes:
    """The value of a string/bytes literal (implicit concatenation included), or NotDecodable."""
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        v = node.evaluated_value
        if v is None:
            raise NotDecodable("f-string")
        return v
    raise NotDecodable(type(node).__name__)


def evaluate_decoder_chain(node: cst.BaseExpression, aliases: dict[str, str]) -> bytes | str:
    """Evaluate a nest of whitelisted decoder calls over literals; raise NotDecodable otherwise."""
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        return literal_value(node)
    if not isinstance(node, cst.Call):
        raise NotDecodable(type(node).__name__)
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("decode", "encode") and not _qual(func, aliases).startswith("codecs."):
        inner = evaluate_decoder_chain(func.value, aliases)
        enc = literal_value(node.args[0].value) if node.args else "utf-8"
        if func.attr.value == "decode":
            return inner.decode(enc) if isinstance(inner, bytes) else inner
        return inner.encode(enc) if isinstance(inner, str) else inner
    qn = _qual(func, aliases)
    if qn in ("bytes", "str") and node.args:
        inner = evaluate_decoder_chain(node.args[0].value, aliases)
        if qn == "str" and isinstance(inner, bytes):
            return inner.decode(literal_value(node.args[1].value) if len(node.args) > 1 else "utf-8")
        return inner
    if qn not in _DECODERS or not node.args:
        raise NotDecodable(qn)
    arg = evaluate_decoder_chain(node.args[0].value, aliases)
    if qn == "codecs.decode":
        enc = literal_value(node.args[1].value) if len(node.args) > 1 else "utf-8"
        return codecs.decode(arg, enc)
    if isinstance(arg, str):
        arg = arg.encode("ascii")
    if qn == "lzma.decompress" and any(a.keyword is not None for a in node.args):
        kw = {a.keyword.value: _const(a.value, aliases) for a in node.args if a.keyword is not None}
        try:
            d = lzma.LZMADecompressor(format=kw.get("format", lzma.FORMAT_AUTO), filters=kw.get("filters"))
            out = d.decompress(arg, MAX_PAYLOAD_BYTES)
        except Exception as e:
            raise NotDecodable(f"lzma failed: {e}") from None
        return out
    try:
        return _DECODERS[qn](arg)
    except Exception as e:  # corrupt payloads are data, not crashes
        raise NotDecodable(f"{qn} failed: {e}") from None


def _qual(func: cst.BaseExpression, aliases: dict[str, str]) -> str:
    from audit.static.names import dotted

    d = dotted(func)
    if d is None:
        return ""
    head, _, rest = d.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _const(node, aliases):
    """Literal values for decoder keywords: ints, strings, lzma.* constants, lists and dicts."""
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        return node.evaluated_value
    if isinstance(node, (cst.Attribute, cst.Name)):
        qn = _qual(node, aliases)
        if qn.startswith("lzma.") and qn.count(".") == 1 and qn.split(".")[1].isupper():
            return getattr(lzma, qn.split(".")[1])
        raise NotDecodable(qn)
    if isinstance(node, (cst.List, cst.Tuple)):
        return [_const(e.value, aliases) for e in node.elements]
    if isinstance(node, cst.Dict):
        return {_const(e.key, aliases): _const(e.value, aliases) for e in node.elements if isinstance(e, cst.DictElement)}
    raise NotDecodable(type(node).__name__)
