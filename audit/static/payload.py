"""Self-extracting scripts: the code an `exec` at module level would run, found without running it.

Many records ship a wrapper that decodes and runs their real code, to count fewer code bytes:

    exec(lzma.decompress(base64.b85decode("...")))
    import lzma as L, base64 as B; S = L.decompress(B.b85decode(_P)); S = S.decode(); exec(compile(S, F, "exec"))
    _b = b\"\"\"...\"\"\"; exec(lzma.decompress(base64.b85decode(_b.replace(b"\\n", b""))).decode())
    exec(brotli.decompress(base64.b85decode(...)))      exec(codecs.decode(x, "zlib_codec"))
    exec(open("impl.py").read())       exec(compile(lzma.decompress(Path(__file__).with_suffix(".py.lzma").read_bytes()), ...))

`find_payload` evaluates the `exec` argument with a tiny interpreter: literals, module-level
variables assigned before the `exec` (in statement order, reassignments included), the decoders
of `audit.static.decompress` (each streaming with an output cap), `.replace/.strip/.decode/
.encode/bytes/str/+`, `compile(x, ...)` (its source), and reads of files beside the script
through `audit.safe_read` (never a link). Anything else is not decodable: the `exec` stays an
unanalysed dynamic-code finding (REVIEW).
"""
from __future__ import annotations

import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import libcst as cst

from audit.safe_read import UnsafeRead, read_under
from audit.static.decompress import DECODERS, DecodeError, TooLarge, codec_decode
from audit.static.names import dotted

MAX_PAYLOAD_BYTES = 20_000_000
MAX_STEPS = 200
_KNOWN = frozenset(DECODERS) | {"codecs.decode", "pathlib.Path", "pathlib.PurePath", "os.path.join", "os.path.dirname",
                                 "os.path.abspath", "os.path.realpath", "os.path.normpath"}  # evaluation steps per exec argument (variables, calls): no runaway chains


class NotDecodable(Exception):
    pass


@dataclass(frozen=True)
class SiblingPath:
    """A path inside the record folder, relative to it (`Path(__file__).with_suffix(".lzma")`)."""

    rel: str


@dataclass
class Payload:
    """The source an `exec` would run (`text`), or why it was refused (`refused`, e.g. a
    decompression bomb over the cap: then `text` is empty)."""

    text: str
    origin: str  # "<script>#decoded" or the sibling file's path
    line: int | None  # the exec statement
    refused: str = ""


def find_payload(module: cst.Module, aliases: dict, path: str, folder: Path | None, positions) -> Payload | None:
    """The first module-level `exec` whose argument decodes to source text, or None. An `exec`
    whose payload is over the cap comes back refused (a bomb is a finding, not a decoded text)."""
    env = _History()
    refused: Payload | None = None
    for step, small in enumerate(_top_level(module.body)):
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for t in targets:
                if isinstance(t, cst.Name):
                    env.assign(t.value, step, small.value)
            continue
        env.now = step
        call = small.value if isinstance(small, cst.Expr) else None
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "exec" and call.args):
            continue
        line = positions.get(id(small), (None,))[0]
        ev = _Eval(aliases, env, folder, Path(path).name)
        try:
            out = ev.value(call.args[0].value)
        except TooLarge as e:
            refused = refused or Payload("", f"{path}#decoded", line, str(e))
            continue
        except Exception:  # noqa: BLE001 - evaluating hostile data: any other failure is "not decodable"
            continue  # (a made-up `lzma.NOPE` or `wbits=2**70` must not cost the file its audit)
        if isinstance(out, bytes):
            out = out.decode("utf-8", errors="replace")
        if isinstance(out, str):
            origin = str(Path(folder) / ev.sibling) if ev.sibling and ev.plain_sibling else f"{path}#decoded"
            return Payload(out, origin, line)
    return refused


class _History:
    """Module-level assignments in statement order: a name read at statement `now` has the value
    of its latest assignment before `now` (`S = L.decompress(...)` then `S = S.decode()`)."""

    def __init__(self):
        self.by_name: dict[str, list[tuple[int, object]]] = {}
        self.now = 0

    def assign(self, name: str, step: int, node) -> None:
        self.by_name.setdefault(name, []).append((step, node))

    def lookup(self, name: str, before: int):
        """(step, expression) of the latest assignment of `name` before statement `before`."""
        for step, node in reversed(self.by_name.get(name, ())):
            if step < before:
                return step, node
        return None


def _top_level(body):
    """Small statements of the module, in order, entering `if`/`try`/`with` (not defs)."""
    for s in body:
        if isinstance(s, cst.SimpleStatementLine):
            yield from s.body
        elif isinstance(s, (cst.If, cst.Try, cst.With)):
            yield from _top_level(getattr(s.body, "body", ()))
            orelse = getattr(s, "orelse", None)
            if isinstance(orelse, cst.Else):
                yield from _top_level(getattr(orelse.body, "body", ()))


class _Eval:
    def __init__(self, aliases: dict, env: _History, folder: Path | None, own: str):
        self.aliases = aliases
        self.env = env
        self.folder = folder
        self.own = own
        self.steps = 0
        self.sibling: str | None = None  # the last sibling file read
        self.plain_sibling = False  # the payload is that file's text, undecoded

    def value(self, node, env: int | None = None):
        """The value of `node` evaluated at module statement `env` (default: the exec's)."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise NotDecodable("too many steps")
        env = self.env.now if env is None else env
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            v = node.evaluated_value
            if v is None:
                raise NotDecodable("f-string")
            return v
        if isinstance(node, cst.Name):
            if node.value == "__file__":
                return SiblingPath(self.own)
            got = self.env.lookup(node.value, env)
            if got is None or got[1] is None:
                raise NotDecodable(node.value)
            return self.value(got[1], got[0])
        if isinstance(node, cst.Integer):
            return int(node.value.replace("_", ""), 0)
        if isinstance(node, cst.BinaryOperation):
            left, right = self.value(node.left, env), self.value(node.right, env)
            if isinstance(node.operator, cst.Add) and type(left) is type(right) and isinstance(left, (str, bytes)):
                return _capped(left + right)
            if isinstance(node.operator, cst.Multiply) and {type(left), type(right)} in ({bytes, int}, {str, int}):
                seq, n = (left, right) if isinstance(right, int) else (right, left)
                if len(seq) * n > MAX_PAYLOAD_BYTES:
                    raise TooLarge("repetition over the payload cap")
                return seq * n
            if isinstance(node.operator, cst.Divide) and isinstance(left, SiblingPath) and isinstance(right, str):
                return _join(left, right)
            raise NotDecodable("operator")
        if isinstance(node, cst.Attribute) and node.attr.value == "parent":
            base = self.value(node.value, env)
            if isinstance(base, SiblingPath):
                return SiblingPath(".")
        if isinstance(node, cst.Call):
            return self.call(node, env)
        raise NotDecodable(type(node).__name__)

    def args(self, node: cst.Call, env) -> list:
        return [self.value(a.value, env) for a in node.args if a.keyword is None and a.star == ""]

    def call(self, node: cst.Call, env):
        func = node.func
        q = _qual(func, self.aliases)
        if isinstance(func, cst.Attribute) and q not in _KNOWN:
            return self.method(func.attr.value, self.value(func.value, env), node, env)
        if q in DECODERS or q == "codecs.decode":
            return self.decoder(q, node, env)
        if q == "compile" and node.args:  # compile(source, filename, "exec"): its source
            return self.value(node.args[0].value, env)
        if q in ("bytes", "str", "bytearray") and node.args:
            args = self.args(node, env)
            inner = args[0]
            if q == "str" and isinstance(inner, bytes):
                return inner.decode(args[1] if len(args) > 1 else "utf-8")
            if q in ("bytes", "bytearray") and isinstance(inner, str):
                return inner.encode(args[1] if len(args) > 1 else "utf-8")
            return bytes(inner) if isinstance(inner, (bytes, bytearray)) else inner
        if q in ("pathlib.Path", "Path", "pathlib.PurePath") and len(node.args) == 1:
            v = self.value(node.args[0].value, env)
            return v if isinstance(v, SiblingPath) else SiblingPath(str(v))
        if q == "open" and node.args:
            p = self.value(node.args[0].value, env)
            return _Opened(p if isinstance(p, SiblingPath) else SiblingPath(str(p)))
        if q in ("os.path.join",) and node.args:
            parts = self.args(node, env)
            base = parts[0] if isinstance(parts[0], SiblingPath) else SiblingPath(str(parts[0]))
            for p in parts[1:]:
                base = _join(base, str(p))
            return base
        if q == "os.path.dirname" and node.args:
            return SiblingPath(".")
        if q in ("os.path.abspath", "os.path.realpath", "os.path.normpath") and len(node.args) == 1:
            return self.value(node.args[0].value, env)
        raise NotDecodable(q or "call")

    def decoder(self, q: str, node: cst.Call, env):
        args = self.args(node, env)
        if not args:
            raise NotDecodable(q)
        data = args[0]
        if q == "codecs.decode":
            enc = args[1] if len(args) > 1 else _kw(node, "encoding", self, env) or "utf-8"
            return codec_decode(data, enc, MAX_PAYLOAD_BYTES)
        if isinstance(data, str):
            data = data.encode("ascii")
        if not isinstance(data, (bytes, bytearray)):
            raise NotDecodable(q)
        opts = {}
        if q == "lzma.decompress":
            for a in node.args:
                if a.keyword is not None:
                    opts[a.keyword.value] = _const(a.value, self.aliases)
            if len(args) > 1:
                opts["format"] = args[1]
        elif q == "zlib.decompress":
            wbits = _kw(node, "wbits", self, env)
            if wbits is None and len(node.args) > 1 and node.args[1].keyword is None:
                wbits = _const(node.args[1].value, self.aliases)
            if wbits is not None:
                opts["wbits"] = int(wbits)
        try:
            return DECODERS[q](bytes(data), MAX_PAYLOAD_BYTES, **opts)
        except TypeError as e:
            raise NotDecodable(f"{q}: {e}") from None

    def method(self, name: str, recv, node: cst.Call, env):
        args = self.args(node, env)
        if isinstance(recv, _Opened) and name == "read":
            return self.read(recv.path, text=True)
        if isinstance(recv, SiblingPath):
            if name in ("read_text", "read_bytes"):
                return self.read(recv, text=name == "read_text")
            if name == "with_suffix" and args:
                p = PurePosixPath(recv.rel)
                return SiblingPath(str(p.with_suffix("") if not args[0] else p.with_name(p.stem + args[0])))
            if name == "with_name" and args:
                return SiblingPath(str(PurePosixPath(recv.rel).with_name(args[0])))
            if name in ("resolve", "absolute"):
                return recv
            if name == "replace" and len(args) == 2 and all(isinstance(a, str) for a in args):
                return SiblingPath(recv.rel.replace(args[0], args[1]))  # `__file__.replace("a.py", "b.py")`
        if isinstance(recv, (str, bytes)):
            if name == "replace" and len(args) >= 2 and type(args[0]) is type(recv) and type(args[1]) is type(recv):
                old, new = args[0], args[1]
                if old and len(new) > len(old) and len(recv) + recv.count(old) * (len(new) - len(old)) > MAX_PAYLOAD_BYTES:
                    raise TooLarge("replace would exceed the payload cap")
                return recv.replace(old, new) if len(args) == 2 else recv.replace(old, new, int(args[2]))
            if name in ("strip", "lstrip", "rstrip"):
                return getattr(recv, name)(*args[:1])
            if name == "decode" and isinstance(recv, bytes):
                return recv.decode(args[0] if args else "utf-8", *(args[1:2]))
            if name == "encode" and isinstance(recv, str):
                return recv.encode(args[0] if args else "utf-8")
            if name in ("decode", "encode"):
                return recv
        raise NotDecodable(name)

    def read(self, p: SiblingPath, text: bool):
        if self.folder is None:
            raise NotDecodable("no folder")
        rel = str(PurePosixPath(p.rel))
        try:
            raw = read_under(self.folder, rel, MAX_PAYLOAD_BYTES)
        except UnsafeRead as e:
            raise NotDecodable(f"{rel}: {e.reason}") from None
        self.sibling = rel
        self.plain_sibling = text and rel.endswith(".py")
        return raw.decode("utf-8", errors="replace") if text else raw


@dataclass(frozen=True)
class _Opened:
    path: SiblingPath


def _join(base: SiblingPath, part: str) -> SiblingPath:
    p = PurePosixPath(base.rel)
    folder = p if base.rel == "." or not p.suffix else p.parent  # `__file__` is a file: its folder
    return SiblingPath(str(folder / part))


def _capped(v):
    if len(v) > MAX_PAYLOAD_BYTES:
        raise TooLarge("concatenation over the payload cap")
    return v


def _kw(node: cst.Call, name: str, ev: _Eval, env):
    for a in node.args:
        if a.keyword is not None and a.keyword.value == name:
            return ev.value(a.value, env) if not isinstance(a.value, cst.Integer) else int(a.value.value, 0)
    return None


def _qual(func, aliases: dict) -> str:
    d = dotted(func)
    if d is None:
        return ""
    head, _, rest = d.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _const(node, aliases):
    """Literal values for decoder keywords: ints, strings, lzma.*/zlib.* constants, lists, dicts."""
    if isinstance(node, cst.Integer):
        return int(node.value.replace("_", ""), 0)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return -_const(node.expression, aliases)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        return _const(node.left, aliases) + _const(node.right, aliases)
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        return node.evaluated_value
    if isinstance(node, (cst.Attribute, cst.Name)):
        qn = _qual(node, aliases)
        mod, _, name = qn.partition(".")
        if mod in ("lzma", "zlib") and name.isupper():
            return getattr(lzma if mod == "lzma" else zlib, name)
        raise NotDecodable(qn)
    if isinstance(node, (cst.List, cst.Tuple)):
        return [_const(e.value, aliases) for e in node.elements]
    if isinstance(node, cst.Dict):
        return {_const(e.key, aliases): _const(e.value, aliases) for e in node.elements if isinstance(e, cst.DictElement)}
    raise NotDecodable(type(node).__name__)
