"""What hostile inputs cost pgolf: peak RSS and wall time of each attack (targets: < 300 MB, < 10 s).

    python benchmarks/hostile_inputs.py [--only NAME[,NAME…]] [--limit-mb 2048] [--cache DIR]

Each case builds its input in a temporary folder and runs the real command in a fresh process
(this checkout's code) under an address-space limit (`prlimit --as`, default 2 GiB) and a 120 s
timeout, so a case that still blows up is reported ("over the limit", "killed", a signal) instead
of taking the machine down; the script always finishes and prints one row per case:

- decompression bombs, 5 GiB of zeros in each codec (lzma, zlib, gzip, bz2, zstd, brotli when
  installed, `codecs.decode(…, "zlib_codec" / "bz2_codec")`, a base64 chain), each as a
  `train_gpt.py` of the form `exec(<codec>.decompress(base64.b85decode(b"…")))`, through
  `pgolf audit`. The payloads are built once, streaming (multi-stream where the codec allows),
  and cached in --cache (default ~/.cache/pgolf-bench/bombs);
- a 1 GB sparse train log (`pgolf check`), a 100 MB log of step lines (`pgolf check`: refused
  before reading, it is over the log cap) and a log just under the cap (parsed, streamed);
- deep nesting: submission.json nested 200,000 deep (`pgolf check`), Python nested 1,300 and
  100,000 parentheses deep (`pgolf audit`);
- the newline flood: a train_gpt.py printing 5 MB of bare newlines through
  `pgolf reproduce --runner local --launcher python`.

Peak RSS is the process's own `ru_maxrss` from `wait4` (for reproduce, the harness and the
runs it waited for). Timings on a shared machine are noisy: run twice and compare.
"""
from __future__ import annotations

import argparse
import base64
import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "check" / "record_3seed"
GIB = 1 << 30
BOMB_BYTES = 5 * GIB
TARGET_MB, TARGET_S = 300, 10.0


# -- running one case ------------------------------------------------------------------------------
def measure(argv: list[str], limit_mb: int, cwd: Path | None = None, timeout: float = 120.0) -> dict:
    """Run `python -m harness.cli ARGV` under the limits: rc, seconds, the last line it printed.
    (Peak RSS is read by the caller: `RUSAGE_CHILDREN` of the helper process that runs one case.)"""
    cmd = [sys.executable, "-m", "harness.cli", *argv]
    if shutil.which("prlimit"):
        cmd = ["prlimit", f"--as={limit_mb << 20}", "--", *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    killed = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        killed = True
    seconds = time.perf_counter() - t0
    text = (err.decode("utf-8", "replace") + out.decode("utf-8", "replace")).strip().splitlines()
    return {"rc": proc.returncode, "seconds": seconds, "killed": killed,
            "last": text[-1][:140] if text else "", "stdout": out.decode("utf-8", "replace")}


def run_case(name: str, limit_mb: int, cache: Path) -> dict:
    """Build and run one case in a helper process, so `RUSAGE_CHILDREN` peak RSS is this case's."""
    done = subprocess.run([sys.executable, __file__, "--_case", name, "--limit-mb", str(limit_mb),
                           "--cache", str(cache)], capture_output=True, text=True, timeout=900)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"name": name, "rc": None, "seconds": None, "rss_mb": None,
                "last": (done.stderr.strip().splitlines() or ["the case itself failed"])[-1][:140]}


# -- decompression bombs ----------------------------------------------------------------------------
def _zeros(total: int, chunk: int = 1 << 20):
    block = b"\0" * chunk
    for _ in range(total // chunk):
        yield block


def _stream(compressor, total: int) -> bytes:
    parts = [compressor.compress(b) for b in _zeros(total)]
    parts.append(compressor.flush())
    return b"".join(parts)


def bomb_payload(codec: str, cache: Path) -> bytes | None:
    """5 GiB of zeros compressed with `codec` (cached). Multi-stream codecs repeat one stream."""
    codec = {"zlib_codec": "zlib", "bz2_codec": "bz2"}.get(codec, codec)  # the same bytes, another decoder
    path = cache / f"{codec}.bin"
    if path.exists():
        return path.read_bytes()
    part = 256 << 20  # one stream of 256 MiB, repeated: lzma, gzip and bz2 decode concatenations
    if codec == "lzma":
        data = _stream(lzma.LZMACompressor(preset=6), part) * (BOMB_BYTES // part)
    elif codec == "gzip":
        one = _stream(zlib.compressobj(9, zlib.DEFLATED, 31), part)
        data = one * (BOMB_BYTES // part)
    elif codec == "bz2":
        data = _stream(bz2.BZ2Compressor(9), part) * (BOMB_BYTES // part)
    elif codec == "zlib":
        data = _stream(zlib.compressobj(9), BOMB_BYTES)  # zlib decodes one stream only
    elif codec == "zstd":
        import zstandard

        data = _stream(zstandard.ZstdCompressor(level=19).compressobj(), BOMB_BYTES)
    elif codec == "brotli":
        try:
            import brotli
        except ImportError:
            return None
        c = brotli.Compressor(quality=5)
        data = b"".join(c.process(b) for b in _zeros(BOMB_BYTES)) + c.finish()
    else:
        raise ValueError(codec)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


BOMB_SOURCES = {
    "lzma": "import base64, lzma\nexec(lzma.decompress(base64.b85decode({p!r})))\n",
    "zlib": "import base64, zlib\nexec(zlib.decompress(base64.b85decode({p!r})))\n",
    "gzip": "import base64, gzip\nexec(gzip.decompress(base64.b85decode({p!r})))\n",
    "bz2": "import base64, bz2\nexec(bz2.decompress(base64.b85decode({p!r})))\n",
    "zstd": "import base64, zstandard\nexec(zstandard.ZstdDecompressor().decompress(base64.b85decode({p!r})))\n",
    "brotli": "import base64, brotli\nexec(brotli.decompress(base64.b85decode({p!r})))\n",
    "zlib_codec": "import base64, codecs\nexec(codecs.decode(base64.b85decode({p!r}), 'zlib_codec'))\n",
    "bz2_codec": "import base64, codecs\nexec(codecs.decode(base64.b85decode({p!r}), 'bz2_codec'))\n",
}


def bomb_case(codec: str, tmp: Path, cache: Path) -> tuple[list[str], str] | None:
    payload = bomb_payload(codec, cache)
    if payload is None:
        return None
    rec = tmp / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(BOMB_SOURCES[codec].format(p=base64.b85encode(payload)))
    return ["audit", str(rec), "--format", "json"], f"{len(payload):,} B payload"


def base64_chain_case(tmp: Path) -> tuple[list[str], str]:
    """A literal decoded through b85 -> b32 -> a85 -> b64 (no compression: the decoders themselves
    must not multiply memory), 6 MB of source for one 1.5 MB string statement."""
    inner = b"s = '" + b"A" * 1_500_000 + b"'\n"
    for enc in (base64.b64encode, base64.a85encode, base64.b32encode, base64.b85encode):
        inner = enc(inner)
    rec = tmp / "rec"
    rec.mkdir()
    src = ("import base64\nexec(base64.b64decode(base64.a85decode(base64.b32decode(base64.b85decode("
           f"{inner!r})))))\n")
    (rec / "train_gpt.py").write_text(src)
    return ["audit", str(rec), "--format", "json"], f"{len(src):,} B source"


# -- files and logs --------------------------------------------------------------------------------
def record(tmp: Path) -> Path:
    rec = tmp / "rec"
    shutil.copytree(FIX, rec)
    return rec


def sparse_case(tmp: Path) -> tuple[list[str], str]:
    rec = record(tmp)
    with open(rec / "train_seed9.log", "wb") as fh:
        fh.truncate(GIB)
    return ["check", str(rec), "--format", "json"], "1 GiB sparse train_seed9.log"


def _step_log(path: Path, size: int) -> None:
    """Written in 1 MB pieces: the helper must stay small, or the forked child's RSS counts it."""
    line = b"step:1/20000 train_loss:2.5731 train_time:48000ms step_avg:96.12ms\n"
    piece = line * ((1 << 20) // len(line))
    with open(path, "wb") as fh:
        for _ in range(size // len(piece)):
            fh.write(piece)


def log100_case(tmp: Path) -> tuple[list[str], str]:
    rec = record(tmp)
    _step_log(rec / "train_seed9.log", 100_000_000)
    return ["check", str(rec), "--format", "json"], "100 MB of step lines (over the log cap)"


def log_at_cap_case(tmp: Path) -> tuple[list[str], str]:
    sys.path.insert(0, str(ROOT))
    from harness.logs.parse import MAX_LOG_BYTES

    rec = record(tmp)
    _step_log(rec / "train_seed9.log", MAX_LOG_BYTES - 4096)
    return ["check", str(rec), "--format", "json"], f"{MAX_LOG_BYTES / 1e6:.1f} MB log just under the cap, parsed"


def deep_json_case(tmp: Path) -> tuple[list[str], str]:
    rec = record(tmp)
    (rec / "submission.json").write_text('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")
    return ["check", str(rec), "--format", "json"], "submission.json nested 200,000 deep"


def deep_python_case(tmp: Path, depth: int) -> tuple[list[str], str]:
    rec = tmp / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text("x = " + "(" * depth + "1" + ")" * depth + "\nprint(x)\n")
    return ["audit", str(rec), "--format", "json"], f"{depth:,} nested parentheses"


def newline_flood_case(tmp: Path) -> tuple[list[str], str]:
    rec = tmp / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text("import sys\nsys.stdout.write('\\n' * 5_000_000)\nsys.stdout.flush()\n")
    (rec / "submission.json").write_text(json.dumps({"name": "flood", "val_bpb": 1.0, "seeds": [1]}))
    return (["reproduce", str(rec), "--runner", "local", "--launcher", "python", "--seeds", "1", "--skip-input-check",
             "--timeout", "60", "--out", str(tmp / "out"), "--quiet", "--format", "json"], "5 MB of bare newlines")


CASES = {f"bomb-{c}": (lambda t, cache, c=c: bomb_case(c, t, cache)) for c in BOMB_SOURCES}
CASES.update({
    "bomb-base64-chain": lambda t, cache: base64_chain_case(t),
    "sparse-1GB": lambda t, cache: sparse_case(t),
    "log-100MB": lambda t, cache: log100_case(t),
    "log-at-cap": lambda t, cache: log_at_cap_case(t),
    "deep-json": lambda t, cache: deep_json_case(t),
    "deep-python-1300": lambda t, cache: deep_python_case(t, 1300),
    "deep-python-100k": lambda t, cache: deep_python_case(t, 100_000),
    "newline-flood": lambda t, cache: newline_flood_case(t),
})


def _one(name: str, limit_mb: int, cache: Path) -> dict:
    import resource

    with tempfile.TemporaryDirectory(prefix="pgolf-hostile-") as tmp:
        built = CASES[name](Path(tmp), cache)
        if built is None:
            return {"name": name, "rc": None, "seconds": None, "rss_mb": None, "what": "", "last": "codec not installed"}
        argv, what = built
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        res = measure(argv, limit_mb)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    verdict, last = "", res["last"]
    if res["stdout"].lstrip().startswith("{"):
        try:
            doc = json.loads(res["stdout"])
            verdict, last = doc.get("verdict", ""), "findings: " + " ".join(_ids(doc)[:6])
        except json.JSONDecodeError:
            verdict = "invalid JSON"
    return {"name": name, "what": what, "rc": res["rc"], "seconds": round(res["seconds"], 2),
            "rss_mb": round(max(peak, before) / 1024, 1), "killed": res["killed"], "verdict": verdict,
            "last": last}


def _ids(doc: dict) -> list[str]:
    """Distinct ids of the errors and warnings in a report, parents first."""
    out: list[str] = []
    for f in doc.get("findings", []):
        if (f.get("severity") in ("error", "warning") or f.get("undecided")) and f["id"] not in out:
            out.append(f["id"])
    for c in doc.get("children", []):
        out += [i for i in _ids(c) if i not in out]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated case names (default: all): " + ", ".join(CASES))
    ap.add_argument("--limit-mb", type=int, default=2048, help="address-space limit per run (default 2048)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "pgolf-bench" / "bombs")
    ap.add_argument("--_case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._case:
        print(json.dumps(_one(args._case, args.limit_mb, args.cache)))
        return 0
    names = args.only.split(",") if args.only else list(CASES)
    print(f"{'case':<20} {'rc':>4} {'seconds':>8} {'peak MB':>8}  {'ok':<4} {'verdict':<7} input / last line")
    failures = 0
    for name in names:
        r = run_case(name, args.limit_mb, args.cache)
        rss, sec = r.get("rss_mb"), r.get("seconds")
        ok = rss is not None and sec is not None and rss < TARGET_MB and sec < TARGET_S and r.get("rc") in (0, 1, 2)
        if r.get("last") == "codec not installed":
            ok_text = "skip"
        else:
            ok_text = "yes" if ok else "NO"
            failures += not ok
        crash = ""
        if r.get("rc") is not None and r["rc"] < 0:
            crash = f" (killed by signal {-r['rc']})"
        elif r.get("killed"):
            crash = " (timed out)"
        elif r.get("rc") not in (0, 1, 2, None):
            crash = " (crashed or over the memory limit)"
        print(f"{name:<20} {str(r.get('rc')):>4} {str(sec):>8} {str(rss):>8}  {ok_text:<4} {r.get('verdict', ''):<7} "
              f"{r.get('what', '')}{crash} | {r.get('last', '')}")
        sys.stdout.flush()
    print(f"targets: < {TARGET_MB} MB peak RSS and < {TARGET_S:.0f} s each; {failures} case(s) over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
