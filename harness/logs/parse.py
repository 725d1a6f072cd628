"""Parse an upstream train log into a `RunLog`, whatever shape it is in.

Upstream logs were printed by hundreds of forks of one script, so the same fact appears in many
spellings: `step:500/20000 val_loss:2.06` and `500/20000 val_loss: 2.06`; `train_time:600128ms`
and `train_time: 9.8m`; `final_int8_zlib_roundtrip_exact`, `final_int6_sliding_window_exact`,
`legal_ttt_exact`, `quantized_ttt_phased`, `ttt_sliding:done val_loss=… elapsed=410.2s`;
`Total submission size int6+lzma: N bytes`; torchrun warnings, `[rankN]:` and unix-time
prefixes; truncated files and stray non-UTF-8 bytes. Each line is classified by a few regular
expressions (step, stop, size, eval phase, setting); anything else is kept in `unknown` with its
line number. The parser never raises on bad input: undecodable bytes are replaced and counted,
and a line that half-matches is kept as unknown rather than guessed at.

A log is hostile input, so what it costs is bounded whatever it holds: a log file is read by
`parse_log_file` through `audit.safe_read` (never through a link, refused before reading when
over `MAX_LOG_BYTES`, streamed line by line, never held whole), every line is cut at
`MAX_LINE_CHARS`, and each list of the `RunLog` keeps at most `MAX_KEPT` entries.
"""
from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from typing import Iterable, Iterator

from harness.logs.model import EvalPhase, Located, RunLog, SizeLine, StepLine, StopLine, TimingLine

# The largest .log/.txt in any upstream pull request is 205 kB; a 16 MB one is not a log anyone
# reads, and parsing it costs seconds (benchmarks/hostile_inputs.py): larger ones are refused
# before reading.
MAX_LOG_BYTES = 16 << 20
MAX_LINE_CHARS = 16 << 10  # longer lines (a dumped config, a progress bar) are cut here
_UTF8 = codecs.getincrementaldecoder("utf-8")
# Entries kept per list. Upstream logs print at most a few thousand step lines.
MAX_KEPT = {"steps": 50_000, "phases": 5_000, "sizes": 5_000, "unknown": 2_000}

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

# Prefixes some launchers put before every line: `[rank0]:`, `1776143353.675 `, `[2026-03-18 14:38:12] `.
_PREFIX = re.compile(r"^(?:\[rank\d+\]:\s*|\[default\d+\]:\s*|\d{9,10}\.\d+\s+|\[\d{4}-\d\d-\d\d[ T][\d:.]+\]\s*)+")
_STEP = re.compile(r"^(?:step:\s*)?(\d+)/(\d+)(?=\s|$)")
_KV = re.compile(r"(?<![\w.])([A-Za-z_]\w*)[:=]\s*(" + _NUM + r")(ms|m|s)?(?![\w.])")
_STOP_TIME = re.compile(r"train_time:\s*(" + _NUM + r")ms")
_STOP_STEP = re.compile(r"step:\s*(\d+)(?:/(\d+))?")
_VAL_LOSS = re.compile(r"(?:^|\s)(?:sliding\s+)?val_loss\s*[:=]\s*(" + _NUM + r")")
_VAL_BPB = re.compile(r"(?:^|\s)(?:sliding\s+)?val_bpb\s*[:=]\s*(" + _NUM + r")")
_PHASE_NAME_CUT = re.compile(r"(?:^|\s)(?:sliding\s+)?val_(?:loss|bpb)\s*[:=]")
_NAME_KV = re.compile(r"\s*\b\w+[:=]\s*" + _NUM + r"\b")
_EVAL_TIME = re.compile(r"(?:eval_time|(?<![\w])time)\s*[:=]\s*(" + _NUM + r")(ms|s)\b")
_ELAPSED = re.compile(r"elapsed\s*[:=]\s*(" + _NUM + r")s\b")
_STRIDE = re.compile(r"stride\s*[:=]\s*(\d+)")
_MODEL = re.compile(r"^Serialized model(?: ([^:]+?))?:\s*(\d+) bytes")
_CODE = re.compile(r"^Code size(?: \((compressed|uncompressed)\))?:\s*(\d+) bytes")
_TOTAL = re.compile(r"^Total submission size(?: ([^:]+?))?:\s*(\d+) bytes")
_PIPE_MODEL = re.compile(r"^(\S+) model:\s*(\d+) bytes \| Total submission:\s*(\d+) bytes")
_PIPE_RAW = re.compile(r"^Raw model:\s*(\d+) bytes \| Code:\s*(\d+) bytes \| Total:\s*(\d+)")
# `artifact:15.92MB ternary:64880640(14239486B) fp:...`: a total rounded to 10 kB.
_ARTIFACT_MB = re.compile(r"^artifact:\s*(\d+\.\d+)MB\b")
# `INT4+fp8+brotli: 15.42MB model + 0.077MB code = 15.50/16.00MB FITS`, also rounded.
_MB_SUM = re.compile(r"^(\S+): (\d+\.\d+)MB model \+ (\d+\.\d+)MB code = (\d+\.\d+)/")
# `budget:15670651/16000000 (15.67/16.00MB) FITS`: the exact total against the cap.
_BUDGET = re.compile(r"^budget:(\d+)/(\d+)\b")
_TOTAL_EVAL = re.compile(r"^total_eval_time:\s*(" + _NUM + r")s\b")
_SETTING = re.compile(
    r"(?<![\w.])(seed|world_size|train_shards|val_tokens|model_params|iterations|vocab_size)\s*[:=]\s*(\d+)(?![\w.])",
    re.IGNORECASE,
)
_VAL_LOADER_TOKENS = re.compile(r"^val_loader:.*\btokens:\s*(\d+)|^val tokens:\s*(\d+)")
_HAS_DIGIT = re.compile(r"\d")
_SETTING_FIELDS = {"seed", "world_size", "train_shards", "val_tokens", "model_params", "iterations", "vocab_size"}
_TOKENIZER_PATH = re.compile(r"(?<![\w.])tokenizer_path\s*[:=]\s*(\S+)")
# Quantization and serialization timing (rules.md "Timing"; see TimingLine). Calibration is a
# start line that says what it reads, then an end line with the seconds.
_SECS = r"(" + _NUM + r")\s*(ms|s)\b"
_GPTQ_RESERVE = re.compile(r"^gptq:reserving\s+" + _SECS, re.IGNORECASE)
_EFFECTIVE = re.compile(r"\beffective=(" + _NUM + r")ms\b")
_CALIB_START = (
    (re.compile(r"^gptq:calibrating with \d+ batches \(training data\)", re.IGNORECASE), "training"),
    (re.compile(r"^GPTQ:collecting Hessians from calibration data"), "training"),
    (re.compile(r"^gptq:(?:generating autoregressive calibration|collecting hessians from autoregressive)", re.IGNORECASE),
     "self-generated"),
)
# The reference implementation's one-line form: `gptq:collected 66 Hessians from train data in 1.2s`.
_CALIB_ONE_LINE = re.compile(r"^gptq:collected \d+ hessians from (\w+) data in\s*" + _SECS, re.IGNORECASE)
_CALIB_SOURCES = {"train": "training", "training": "training", "self": "self-generated"}
_CALIB_END = re.compile(r"^gptq:(?:collected \d+ hessians in|calibrated \d+ layers in|done in|"
                        r"collected hessians for \d+ layers in)\s*" + _SECS, re.IGNORECASE)
_TIMING = (
    (re.compile(r"^(?:serialize_wallclock:|Serialize:.*\bdone in|GPTQ:compressed\+saved in)\s*" + _SECS), "serialize"),
    (re.compile(r"^artifact_production_wallclock:\s*" + _SECS), "artifact_production"),
    (re.compile(r"^wallclock:post_gptq total_elapsed:\s*" + _SECS), "post_gptq_elapsed"),
)


def read_text(source: str | os.PathLike | bytes) -> tuple[str, int, str | None]:
    """Text of a log given as a path, raw bytes, or text: (text, undecodable bytes, path).

    A `str` naming an existing file is read as that file; any other `str` is the log text.
    Unreadable files (a link, over `MAX_LOG_BYTES`, not a regular file) yield empty text (the
    caller reports "no figures"), never an exception. `parse_log_file` streams instead.
    """
    path: str | None = None
    raw: bytes
    if isinstance(source, bytes):
        raw = source
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source and len(source) < 4096 and os.path.isfile(source)):
        from audit.safe_read import read_capped

        path = os.fspath(source)
        try:
            raw = read_capped(path, MAX_LOG_BYTES)  # never through a link, never past the cap
        except OSError:
            return "", 0, path
    else:
        return str(source), 0, None
    try:
        return raw.decode("utf-8"), 0, path
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        return text, text.count("\ufffd"), path


def _to_ms(value: str, unit: str | None) -> float:
    v = float(value)
    if unit == "s":
        return v * 1000.0
    if unit == "m":
        return v * 60_000.0
    return v


# Short spellings some forks print: `step:1000/10000 loss:3.31 t:91478ms avg:91.5ms`.
_STEP_ALIASES = {"loss": "train_loss", "t": "train_time", "avg": "step_avg"}


def _step_line(m: re.Match, rest: str, lineno: int) -> StepLine | None:
    kv: dict[str, tuple[str, str]] = {}
    for k, v, u in _KV.findall(rest):
        kv.setdefault(_STEP_ALIASES.get(k, k), (v, u))
    if not any(k in kv for k in ("train_loss", "val_loss", "val_bpb", "train_time")):
        return None

    def num(key: str) -> float | None:
        return float(kv[key][0]) if key in kv else None

    tt = kv.get("train_time")
    sa = kv.get("step_avg")
    return StepLine(
        step=int(m.group(1)),
        total=int(m.group(2)),
        line=lineno,
        train_loss=num("train_loss"),
        val_loss=num("val_loss"),
        val_bpb=num("val_bpb"),
        train_time_ms=_to_ms(tt[0], tt[1] or "ms") if tt else None,
        step_avg_ms=_to_ms(sa[0], sa[1] or "ms") if sa else None,
    )


def _phase(text: str, lineno: int) -> EvalPhase | None:
    bpb = _VAL_BPB.search(text)
    loss = _VAL_LOSS.search(text)
    if bpb is None or loss is None:
        return None
    cut = _PHASE_NAME_CUT.search(text)
    name = _NAME_KV.sub("", text[: cut.start()] if cut else "").strip()
    if not name or not name[0].isalpha():
        return None
    eval_ms: float | None = None
    t = _EVAL_TIME.search(text, cut.end() if cut else 0)
    if t:
        eval_ms = _to_ms(t.group(1), t.group(2))
    else:
        e = _ELAPSED.search(text)
        if e:
            eval_ms = float(e.group(1)) * 1000.0
    stride = _STRIDE.search(text)
    bpb_text = bpb.group(1)
    return EvalPhase(
        name=name,
        val_loss=float(loss.group(1)),
        val_bpb=float(bpb.group(1)),
        line=lineno,
        stride=int(stride.group(1)) if stride else None,
        eval_time_ms=eval_ms,
        text=text,
        bpb_decimals=_printed_decimals(bpb_text),
        loss_decimals=_printed_decimals(loss.group(1)),
    )


def _printed_decimals(text: str) -> int | None:
    """Decimals as printed ("1.1200" -> 4); None for exponent notation."""
    return len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else 0 if text.isdigit() else None


def _size(text: str, lineno: int) -> list[SizeLine]:
    m = _MODEL.match(text)
    if m:
        return [SizeLine("model", int(m.group(2)), lineno, (m.group(1) or "").strip())]
    m = _CODE.match(text)
    if m:
        return [SizeLine("code", int(m.group(2)), lineno, m.group(1) or "")]
    m = _TOTAL.match(text)
    if m:
        return [SizeLine("total", int(m.group(2)), lineno, (m.group(1) or "").strip())]
    m = _PIPE_MODEL.match(text)
    if m:
        label = m.group(1).lower()
        return [SizeLine("model", int(m.group(2)), lineno, label), SizeLine("total", int(m.group(3)), lineno, label)]
    m = _PIPE_RAW.match(text)
    if m:
        return [SizeLine("model", int(m.group(1)), lineno), SizeLine("code", int(m.group(2)), lineno),
                SizeLine("total", int(m.group(3)), lineno)]
    m = _ARTIFACT_MB.match(text)
    if m:
        return [SizeLine("total", round(float(m.group(1)) * 1_000_000), lineno, "MB-rounded")]
    m = _MB_SUM.match(text)
    if m:
        return [SizeLine("total", round(float(m.group(4)) * 1_000_000), lineno, "MB-rounded")]
    m = _BUDGET.match(text)
    if m:
        return [SizeLine("total", int(m.group(1)), lineno, "budget")]
    return []


def _timing(log: RunLog, text: str, lineno: int) -> bool:
    """GPTQ reserve, calibration and serialization lines (TimingLine)."""
    m = _GPTQ_RESERVE.match(text)
    if m:
        log.timings.append(TimingLine("gptq_reserve", _to_ms(m.group(1), m.group(2)) / 1000.0, lineno))
        e = _EFFECTIVE.search(text)  # the loop's own budget after the reserve (the reserve may print rounded: "0s")
        if e:
            log.timings.append(TimingLine("effective_budget", float(e.group(1)) / 1000.0, lineno))
        return True
    for pattern, source in _CALIB_START:
        if pattern.match(text):
            log._calibration_source = source
            return True
    m = _CALIB_ONE_LINE.match(text)
    if m:
        log.timings.append(TimingLine("calibration", _to_ms(m.group(2), m.group(3)) / 1000.0, lineno,
                                      _CALIB_SOURCES.get(m.group(1).lower(), "unknown")))
        return True
    m = _CALIB_END.match(text)
    if m and log._calibration_source:
        log.timings.append(TimingLine("calibration", _to_ms(m.group(1), m.group(2)) / 1000.0, lineno,
                                      log._calibration_source))
        log._calibration_source = ""  # one figure per calibration: later totals are not added twice
        return True
    for pattern, kind in _TIMING:
        m = pattern.match(text)
        if m:
            log.timings.append(TimingLine(kind, _to_ms(m.group(1), m.group(2)) / 1000.0, lineno))
            return True
    return False


def _setting(log: RunLog, text: str, lineno: int) -> bool:
    found = False
    t = _TOKENIZER_PATH.search(text)
    if t and log.tokenizer_path is None:
        log.tokenizer_path = Located(t.group(1).strip("'\",;"), lineno)
        found = True
    for key, value in _SETTING.findall(text):
        key = key.lower()
        if key in _SETTING_FIELDS and getattr(log, key) is None:
            setattr(log, key, Located(int(value), lineno))
        found = True
    m = _VAL_LOADER_TOKENS.match(text)
    if m:
        if log.val_tokens is None:
            log.val_tokens = Located(int(m.group(1) or m.group(2)), lineno)
        found = True
    return found


def _classify(log: RunLog, text: str, lineno: int) -> bool:
    """Record what `text` says in `log`; False when the line means nothing to the parser."""
    m = _STEP.match(text)
    if m:
        step = _step_line(m, text[m.end():], lineno)
        if step is not None:
            _keep(log, log.steps, step, "steps")
            return True
    if text.startswith("stopping_early"):
        t = _STOP_TIME.search(text)
        s = _STOP_STEP.search(text)
        log.stop = StopLine(
            kind="wallclock_cap" if "wallclock" in text else text.split(":", 1)[-1].strip().split(" ")[0],
            line=lineno,
            train_time_ms=float(t.group(1)) if t else None,
            step=int(s.group(1)) if s else None,
            total=int(s.group(2)) if s and s.group(2) else None,
        )
        return True
    if "val_bpb" in text:
        phase = _phase(text, lineno)
        if phase is not None:
            _keep(log, log.phases, phase, "phases")
            return True
    if "bytes" in text or "MB" in text or text.startswith("budget:"):
        sizes = _size(text, lineno)
        if sizes:
            for size in sizes:
                _keep(log, log.artifact.sizes, size, "sizes")
            return True
    m = _TOTAL_EVAL.match(text)
    if m:
        log.total_eval = Located(float(m.group(1)), lineno)
        return True
    if ("gptq" in text.lower() or "serializ" in text.lower() or "wallclock" in text) and _timing(log, text, lineno):
        return True
    return _setting(log, text, lineno)


def _keep(log: RunLog, items: list, item, kind: str) -> None:
    """Append within `MAX_KEPT[kind]`; once full, the newest entry replaces the last kept one,
    so the list keeps the log's beginning and its final line (the figures checks read last)."""
    if len(items) < MAX_KEPT[kind]:
        items.append(item)
    else:
        items[-1] = item
        log.dropped_lines += 1


def parse_lines(lines: Iterable[str], path: str | None = None, decode_errors: int = 0) -> RunLog:
    """Parse lines of a log (without their line ends) into a `RunLog`; see `parse_log`."""
    log = RunLog(path=path, decode_errors=decode_errors)
    lineno = 0
    last_step: tuple[str, int] | None = None  # once `steps` is full: the newest step line, parsed at the end
    for lineno, raw_line in enumerate(lines, start=1):
        if len(raw_line) > MAX_LINE_CHARS:
            raw_line = raw_line[:MAX_LINE_CHARS]
            log.long_lines += 1
        stripped = raw_line.strip()
        if not stripped:
            continue
        body = _PREFIX.sub("", stripped) if stripped[0] in "[0123456789" else stripped
        if len(log.steps) >= MAX_KEPT["steps"] and _STEP.match(body):
            # a flood of step lines costs one match each: only the last one is kept (as _keep does)
            last_step = (body, lineno)
            log.dropped_lines += 1
            continue
        known = False
        if _HAS_DIGIT.search(body) or body[:5].lower() == "gptq:":  # calibration starts print no number
            try:
                known = _classify(log, body, lineno)
            except (ValueError, OverflowError):  # a number too odd to convert: keep the line
                known = False
        if not known:
            if len(log.unknown) < MAX_KEPT["unknown"]:
                log.unknown.append((lineno, raw_line))
            else:
                log.dropped_lines += 1
    if last_step is not None:
        m = _STEP.match(last_step[0])
        step = _step_line(m, last_step[0][m.end():], last_step[1]) if m else None
        if step is not None:
            log.steps[-1] = step
    log.line_count = lineno
    return log


def parse_log(source: str | os.PathLike | bytes) -> RunLog:
    """Parse a train log (a path, its bytes, or its text) into a `RunLog`. Never raises on the
    log's content: garbage yields an empty `RunLog` whose `unknown` holds the garbage."""
    text, bad, path = read_text(source)
    return parse_lines(text.splitlines(), path, bad)


def parse_log_file(root: str | os.PathLike, rel: str, cap: int = MAX_LOG_BYTES) -> RunLog:
    """Parse the log `root/rel` streamed through `audit.safe_read.iter_lines_under`: no link is
    followed (in `rel` or at its end), a file over `cap` is refused before any byte is read
    (`audit.safe_read.UnsafeRead`, reason `too-large`; also `link`, `not-regular`, `missing`),
    and memory stays bounded by one block, one line and `MAX_KEPT` whatever the file holds.
    Line numbers are those `parse_log` gives for the same text."""
    from audit.safe_read import iter_lines_under

    counter = [0, 0]
    lines = _decoded(iter_lines_under(root, rel, cap, MAX_LINE_CHARS * 4), counter)
    log = parse_lines(lines, os.path.join(os.fspath(root), rel))
    log.decode_errors = counter[0]
    log.long_lines += counter[1]
    return log


def _decoded(raw_lines: Iterable[tuple[bytes, bool]], counts: list[int]) -> Iterator[str]:
    """Decode byte lines as `parse_log` decodes a whole text: UTF-8, undecodable bytes replaced
    and counted in `counts[0]`; a line holding other line breaks (`\\r`, U+2028…) is split there
    too, as `str.splitlines` does. A line the reader cut (its flag) loses the partial UTF-8
    sequence at the cut, which is no decode error, and is counted in `counts[1]` as a long line
    (kept to `MAX_LINE_CHARS`, so `parse_lines` does not count it again)."""
    for raw, cut in raw_lines:
        try:
            text = _UTF8("strict").decode(raw, final=not cut)
        except UnicodeDecodeError:
            text = _UTF8("replace").decode(raw, final=not cut)
            counts[0] += text.count("\ufffd")
        if not text:
            yield ""
            continue
        pieces = text.splitlines() or [""]
        if cut:
            pieces[-1] = pieces[-1][:MAX_LINE_CHARS]
            counts[1] += 1
        yield from pieces
