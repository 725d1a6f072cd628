"""The audit's readers of submitted material, unit by unit: bounded decoders, self-extracting
payload shapes, the parser pre-screen, run evidence ranking, print templates and the offsets
that prove a loop-carried chunk was scored."""
from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import zlib

from pathlib import Path

import libcst as cst
import pytest

from audit.findings import Verdict
from audit.static.decompress import DECODERS, TooLarge, codec_decode
from audit.static.evidence import collect_evidence
from audit.static.names import import_aliases
from audit.static.offsets import block_slice
from audit.static.payload import find_payload
from audit.static.prescreen import prescreen
from audit.static.sinks import match_logs, reported, template_of
from audit.static.ir import Call

TEXT = b"print('hello')\n" * 50
CAP = 4096


def _compressors():
    import brotli
    import zstandard

    return {
        "zlib.decompress": zlib.compress,
        "gzip.decompress": gzip.compress,
        "bz2.decompress": bz2.compress,
        "lzma.decompress": lzma.compress,
        "brotli.decompress": brotli.compress,
        "zstandard.decompress": lambda b: zstandard.ZstdCompressor().compress(b),
    }


@pytest.mark.parametrize("name", ["zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress",
                                  "brotli.decompress", "zstandard.decompress"])
def test_every_decompressor_decodes_under_the_cap_and_refuses_over_it(name):
    compress = _compressors()[name]
    assert DECODERS[name](compress(TEXT), CAP) == TEXT
    with pytest.raises(TooLarge):
        DECODERS[name](compress(bytes(50 * CAP)), CAP)


def test_concatenated_streams_count_towards_one_cap():
    two = bz2.compress(TEXT) + bz2.compress(TEXT)
    assert DECODERS["bz2.decompress"](two, CAP) == TEXT * 2
    with pytest.raises(TooLarge):
        DECODERS["bz2.decompress"](bz2.compress(bytes(CAP)) * 3, CAP)
    xz = lzma.compress(TEXT) * 2
    assert DECODERS["lzma.decompress"](xz, CAP) == TEXT * 2


@pytest.mark.parametrize("codec", ["zlib_codec", "zip", "bz2_codec", "base64_codec", "hex", "rot13", "utf-8"])
def test_codecs_decode_is_capped(codec):
    data = {"zlib_codec": zlib.compress(TEXT), "zip": zlib.compress(TEXT), "bz2_codec": bz2.compress(TEXT),
            "base64_codec": base64.b64encode(TEXT), "hex": TEXT.hex().encode(), "rot13": "cevag", "utf-8": TEXT}[codec]
    assert codec_decode(data, codec, CAP)
    if codec in ("zlib_codec", "bz2_codec"):
        with pytest.raises(TooLarge):
            codec_decode((zlib if codec == "zlib_codec" else bz2).compress(bytes(10 * CAP)), codec, CAP)


def _payload(src: str, folder=None):
    module = cst.parse_module(src)
    return find_payload(module, import_aliases(module), "train_gpt.py", folder, {})


def test_payload_shapes_decode_without_running_anything(tmp_path):
    inner = "x = 1\n"
    b85 = base64.b85encode(lzma.compress(inner.encode())).decode()
    shapes = [
        f"import lzma as L, base64 as B\nexec(L.decompress(B.b85decode({b85!r})))\n",
        f"import lzma as L, base64 as B\nS = L.decompress(B.b85decode({b85!r}))\nS = S.decode()\nexec(compile(S, 'f', 'exec'))\n",
        f"import lzma, base64\n_b = b'''\\n{b85[:10]}\\n{b85[10:]}\\n'''\nexec(lzma.decompress(base64.b85decode(_b.replace(b'\\n', b''))).decode('utf-8'))\n",
        f"import zlib, base64\nexec(zlib.decompress(base64.b64decode({base64.b64encode(zlib.compress(inner.encode())).decode()!r}), wbits=15))\n",
    ]
    for src in shapes:
        got = _payload(src)
        assert got is not None and got.text == inner, src[:60]
    (tmp_path / "impl.py").write_text(inner)
    (tmp_path / "blob.py.lzma").write_bytes(lzma.compress(inner.encode()))
    assert _payload("exec(open(__file__.replace('train_gpt.py', 'impl.py')).read())\n", tmp_path).text == inner
    lz = "import lzma, pathlib\nexec(compile(lzma.decompress(pathlib.Path(__file__).with_suffix('.py.lzma').read_bytes()), 'x', 'exec'))\n"
    assert _payload(lz.replace("with_suffix('.py.lzma')", "with_name('blob.py.lzma')"), tmp_path).text == inner


def test_payload_bombs_are_refused_not_decoded():
    bomb = base64.b85encode(bz2.compress(bytes(30_000_000))).decode()
    got = _payload(f"import bz2, base64\nexec(bz2.decompress(base64.b85decode({bomb!r})))\n")
    assert got is not None and got.refused and not got.text
    got = _payload("_X = b'A' * 10000000\nexec(_X.replace(b'A', b'BB' * 4))\n")
    assert got is not None and got.refused


@pytest.mark.parametrize("src,problem", [
    ("x = " + "(" * 201 + "1" + ")" * 201 + "\n", "brackets nested"),
    ("x = " + "-" * 4000 + "1\n", "operators"),
    ("".join(" " * i + "if a:\n" for i in range(101)) + " " * 101 + "pass\n", "blocks nested"),
    # valid Python (CPython parses it), but a chain spread over lines inside one statement
    ("import os\ny = (os\n" + "    .path\n" * 3100 + ")\nprint(y)\n", "operators"),
    ("@deco(" + "+".join(["a"] * 3100) + ")\ndef f():\n    pass\n", "operators"),
    ("try:\n    pass\nexcept (" + "a." * 3100 + "E):\n    pass\n", "operators"),
])
def test_prescreen_refuses_what_crashes_or_stalls_the_parser(src, problem):
    got = prescreen(src)
    assert got is not None and problem in got[0]


def test_prescreen_measures_statements_on_the_parser_line_breaks():
    """`\u2028` inside a string is a line break to str.splitlines but not to the parser: spans
    measured on the wrong lines merge short statements into one long one (a needless token scan)
    or miss a long one."""
    from audit.static.prescreen import _has_long_statement, parse_ast

    src = "s = '" + "\u2028" * 40 + "'\n" + "".join(f"v{i} = '{'x' * 90}'\n" for i in range(45))
    assert _has_long_statement(parse_ast(src), src) is False


def test_prescreen_passes_real_code():
    assert prescreen("def f(x):\n    return [(a, {b: (c,)}) for a, b, c in x]\n") is None


def test_evidence_ranks_the_run_script_over_ablations_and_prose(tmp_path):
    (tmp_path / "README.md").write_text("A clean toggle: `SLOT_ENABLED=0` gives the baseline.\n\n"
                                        "```\nTTT_EPOCHS=3 torchrun train_gpt.py\n```\n")
    (tmp_path / "ablation_off.sh").write_text("SLOT_ENABLED=0 TTT_EPOCHS=1 torchrun train_gpt.py\n")
    (tmp_path / "run.sh").write_text("# seeds\nSLOT_ENABLED=1 torchrun train_gpt.py\n")
    (tmp_path / "train_seed1.log").write_text("ttt_epochs: 5\nsome_flag=2\n")
    ev = collect_evidence(tmp_path, {"ttt_epochs"})
    assert ev.env["SLOT_ENABLED"][0] == "1" and ev.env["SLOT_ENABLED"][1].endswith("run.sh")
    assert ev.env["TTT_EPOCHS"][0] == "3"  # README command block beats the ablation script
    assert ev.attrs["ttt_epochs"][0] == "5"  # the log's echo is the strongest evidence


def test_logs_that_embed_source_are_not_evidence(tmp_path):
    (tmp_path / "train.log").write_text("    use_slot = args.slot_enabled\n\tif use_slot:\n"
                                        "  slot_enabled: False\nfinal val_bpb:1.1\n")
    ev = collect_evidence(tmp_path, {"slot_enabled"})
    assert [ll.text for ll in ev.log_lines] == ["  slot_enabled: False", "final val_bpb:1.1"]


def _template(code: str):
    node = cst.parse_expression(code)
    return template_of(Call("log0", None, None, [], {}, [], node))


def test_print_templates_match_log_lines_and_inline_conditionals(tmp_path):
    t = _template('log0(f"ttt:start lr={lr} epochs={e}{f\' slot_lr={s}\' if use_slot else \'\'}")')
    assert t is not None and t.regex.search("ttt:start lr=0.1 epochs=3 slot_lr=0.003")
    sink = _template('log0(f"final_exact val_loss:{a:.8f} val_bpb:{b:.8f}")')
    assert sink.sink and len(sink.values) == 2 and sink.bpb_group
    (tmp_path / "train.log").write_text("ttt:start lr=0.1 epochs=3 slot_lr=0.003\nfinal_exact val_loss:1.9 val_bpb:1.1\n")
    ev = collect_evidence(tmp_path, set())
    m = match_logs([t, sink], ev)
    assert m[id(t)].seen and list(m[id(t)].alts.values()) == [{True}]
    assert reported([t, sink], m, ev) == {id(sink)}


def test_a_log_from_another_revision_is_matched_to_the_nearest_sink(tmp_path):
    zlib_sink = _template('log0(f"final_int8_zlib_roundtrip_exact val_loss:{a:.8f} val_bpb:{b:.8f}")')
    other = _template('log0(f"final_sgd_ttt_exact val_loss:{a:.8f} val_bpb:{b:.8f}")')
    (tmp_path / "train.log").write_text("final_int8_zstd_roundtrip_exact val_loss:1.96 val_bpb:1.16\n")
    ev = collect_evidence(tmp_path, set())
    assert reported([zlib_sink, other], match_logs([zlib_sink, other], ev), ev) == {id(zlib_sink)}


BLOCKS = [("toks[k * n:(k + 1) * n + 1]", {}, True), ("toks[s:s + n + 1]", {"s": "k * n"}, True),
          ("toks[k * 100:k * 100 + 101]", {}, True), ("toks[w:w + n]", {}, False),
          ("toks[k * s:k * s + n]", {}, False), ("toks[k * n:(k + 2) * n]", {}, False)]


@pytest.mark.parametrize("expr,assigns,want", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_slices_prove_consecutive_chunks_disjoint(expr, assigns, want):
    bound = {k: cst.parse_expression(v) for k, v in assigns.items()}
    assert block_slice(cst.parse_expression(expr), bound, "k") is want


def test_an_eval_only_run_name_is_not_val_only_data():
    """`run_id: …_evalonly` (an eval-only rerun, a real PR's name) is not a val-only dataset."""
    from audit.static.evidence import VAL_ONLY_NAME

    assert not VAL_ONLY_NAME.search("pr2140_seed42_hardoff_evalonly")
    assert not VAL_ONLY_NAME.search("EVAL_TRAIN_SPLIT")
    assert VAL_ONLY_NAME.search("ttt_valonly") and VAL_ONLY_NAME.search("x_val_only") and VAL_ONLY_NAME.search("trainonval")


def test_a_long_dump_line_in_a_log_is_not_matched_against_print_templates(tmp_path):
    """A 14 KB JSON `log_tail` of step lines (as a real record's train.log ends) made a print
    template with six lazy holes backtrack past the audit's deadline. Such a line is not a print
    of the code: it is skipped, and the verdict and findings are those of the log without it."""
    from audit.static.engine import audit_file

    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "train_gpt.py").write_text(
        "import torch\nimport torch.nn.functional as F\n\n"
        "def evaluate(model, x, y):\n    with torch.no_grad():\n"
        "        return F.cross_entropy(model(x), y).item()\n\n"
        "def main(model, x, y, steps):\n    for step in range(steps):\n"
        "        val_loss = evaluate(model, x, y)\n        val_bpb = val_loss / 0.69\n"
        "        print(f\"step:{step}/{steps} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} \"\n"
        "              f\"train_time:{step * 10:.0f}ms step_avg:{10.0:.2f}ms\")\n")
    log = rec / "train_seed1.log"
    log.write_text("step:0/2 val_loss:2.0000 val_bpb:2.8985 train_time:0ms step_avg:10.00ms\n"
                   "step:1/2 val_loss:1.9000 val_bpb:2.7536 train_time:10ms step_avg:10.00ms\n")
    before = audit_file(rec / "train_gpt.py")
    tail = "\\n".join(f"step:{i}/20000 val_loss:6.93{i % 10} val_bpb:4.10{i % 10} train_time:{i}ms step_avg:0.02ms"
                       for i in range(180))
    with open(log, "a") as fh:
        fh.write('{\n  "log_tail": "' + tail + '",\n}\n')
    after = audit_file(rec / "train_gpt.py")
    assert after.verdict == before.verdict
    assert [(f.rule_id, f.location.line) for f in after.findings] == [(f.rule_id, f.location.line) for f in before.findings]


def test_helper_modules_imported_in_any_branch_are_found():
    """An `else`, `except`, `finally`, loop or class body, or `from . import x`: each names a
    module the audit must read (a helper imported only in the `else` of a flag was never audited)."""
    from audit.static.discover import helper_names

    src = ("if X:\n    import d1\nelse:\n    import e_else\n"
           "try:\n    import fast_b\nexcept ImportError:\n    import slow_c\nfinally:\n    import fin_f\n"
           "from . import helper_a\nfor i in range(2):\n    import loop_l\nclass K:\n    import cls_k\n")
    assert helper_names(cst.parse_module(src)) == ["d1", "e_else", "fast_b", "slow_c", "fin_f", "helper_a", "loop_l", "cls_k"]


@pytest.mark.parametrize("arg", ["format=lzma.NOPE", "format=1180591620717411303424", "wbits=1180591620717411303424"])
def test_a_payload_expression_that_raises_is_not_decodable_and_the_file_is_still_audited(arg):
    """A made-up constant or an absurd option in a dead `exec(...)` line must not turn the whole
    file into one internal-error finding (which would hide its real findings)."""
    from audit.static.engine import audit_source

    codec = "zlib" if "wbits" in arg else "lzma"
    src = (Path(__file__).parent / "fixtures" / "audit" / "prequant_adamw.py").read_text()
    src = f"import base64, {codec}\n" + src + f"\nexec({codec}.decompress(base64.b85decode('abc'), {arg}))\n"
    ids = [f.rule_id for f in audit_source(src, "train_gpt.py")]
    assert "PG-C3-002" in ids and not any("internal error" in f for f in ids)


def test_a_flag_passed_down_a_chain_of_helpers_is_evaluated_once_per_parameter(monkeypatch):
    """Each helper calls the next from several sites, each under `if p:`: evaluating the flag
    afresh per path would take (sites per caller) ** depth; memoized, it is once per parameter."""
    from audit.static import audit_source
    from audit.static.flags import FlagEval

    lines = ["val_tokens = load_validation_tokens('data/fineweb_val_*.bin')", "def f0(p):", "    return p"]
    for i in range(1, 16):
        lines += [f"def f{i}(p):"] + ["    if p:\n        f%d(p)" % (i - 1)] * 4 + ["    return p"]
    computed = []
    original = FlagEval._parameter

    def counting(self, f, name, depth):
        if (f.qual, name) not in self._params:
            computed.append((id(self), f.qual, name))
        return original(self, f, name, depth)

    monkeypatch.setattr(FlagEval, "_parameter", counting)
    audit_source("\n".join(lines + ["f15(True)"]) + "\n", "chain.py")
    assert computed and len(computed) == len(set(computed))
