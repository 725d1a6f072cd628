"""Reading submission code as data: bytes on disk -> source text, never through a link.

Submissions are untrusted: nothing here imports or runs them. Every read goes through
`audit.safe_read` (no symbolic links, a regular file only, refused before reading when over the
cap). Text is decoded as CPython would decode source: PEP 263 coding line or BOM, else UTF-8.
What CPython itself would refuse to read as source (NUL bytes, undecodable bytes, an unknown
coding) is `not_python`: an entry file like that is a FAIL, not a syntax question.
"""
from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

from audit.safe_read import UnsafeRead, read_capped, read_under

MAX_FILE_BYTES = 8_000_000  # the issue asks for files up to 5 MB; bigger ones are REVIEW


@dataclass
class SourceText:
    """A decoded source file, or the reason it could not be read.

    `kind` says what went wrong: "" (nothing), "link" (a symbolic link, not followed),
    "unreadable" (missing, too large, not a regular file), "not-python" (CPython would refuse
    it as source: NUL bytes, bytes invalid in its encoding, a bad coding line)."""

    path: str
    text: str | None
    problem: str | None = None
    encoding: str = "utf-8"
    raw: bytes = b""
    kind: str = ""


def read_source(path: Path, cap: int = MAX_FILE_BYTES) -> SourceText:
    """Read `path` (never a link) honouring PEP 263 encodings; never raises on bad bytes."""
    try:
        raw = read_capped(path, cap)
    except UnsafeRead as e:
        return _unsafe(str(path), e, cap)
    return decode_source(str(path), raw)


def read_sibling(folder: Path, rel: str, cap: int = MAX_FILE_BYTES) -> SourceText:
    """A file of the record folder by relative name, refusing links anywhere on its path."""
    try:
        raw = read_under(folder, rel, cap)
    except UnsafeRead as e:
        return _unsafe(str(Path(folder) / rel), e, cap)
    return decode_source(str(Path(folder) / rel), raw)


def _unsafe(name: str, e: UnsafeRead, cap: int) -> SourceText:
    if e.reason == "link":
        return SourceText(name, None, "a symbolic link: not followed, not read", kind="link")
    if e.reason == "too-large":
        return SourceText(name, None, f"file is {e.size} bytes, over the {cap}-byte audit cap", kind="unreadable")
    return SourceText(name, None, f"cannot read: {e.reason}", kind="unreadable")


def decode_source(name: str, raw: bytes) -> SourceText:
    if len(raw) > MAX_FILE_BYTES:
        return SourceText(name, None, f"file is {len(raw)} bytes, over the {MAX_FILE_BYTES}-byte audit cap", kind="unreadable")
    if b"\x00" in raw:
        return SourceText(name, None, "not Python source: it contains NUL bytes", raw=raw, kind="not-python")
    try:
        enc, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as e:
        return SourceText(name, None, f"not Python source: bad encoding declaration ({e})", raw=raw, kind="not-python")
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError) as e:
        return SourceText(name, None, f"not Python source: cannot decode as {enc} ({e.__class__.__name__})", raw=raw,
                          kind="not-python")
    if text.startswith("\ufeff"):
        text = text[1:]
    return SourceText(name, text, None, enc, raw)
