"""What a record's own files say about the run that produced its logs (capability D).

The code ships defaults; the run that was scored may have set other values. Evidence, strongest
first (`rank`):

  0  the run logs: configuration they echo (`ttt_enabled: True`, `slot_lr=0.003`, `KEY=value`)
  1  the run script the README or the logs name, else the script that runs the seeds
  2  other shell scripts of the folder
  3  the README's command blocks (fenced or indented code, lines that run torchrun/python/export)
  4  scripts named like ablations or sweeps (an ablation that sets a flag to 0 never outvotes
     the run script)

Prose never counts: "`SLOT_ENABLED=0` reproduces the baseline" in a README sentence is not how
the record ran. Besides settings, the logs' lines themselves are kept (the top for the echoed
configuration, the end for the final scores) so that a print statement of the code can be
matched to what the run printed (audit.static.sinks), and the submission's claimed figures
(`submission.json`) say which printed number is the reported one.

Everything is read through audit.safe_read: never a link, each file capped before reading.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from audit.safe_read import UnsafeRead, lkind, read_head, read_tail, read_under, scan

ENV_ASSIGN = re.compile(r"(?<![\w$])([A-Z][A-Z0-9_]{1,})=(\"[^\"]*\"|'[^']*'|[^\s;&|`)]+)")
SHELL_DEFAULT = re.compile(r"\$\{([A-Z][A-Z0-9_]{1,}):?-([^}\s]*)\}")
LOG_KV = re.compile(r"(?:^|[\s,{(])([a-z][a-z0-9_]{2,})\s*[:=]\s*('?[\w.+-]+'?)(?![\w.(\[])")
CODE_LINE = re.compile(r"os\.environ|getenv|\bdef |\bimport |\bclass |\breturn\b|;")
# logs that embed the script's source: a line of code is not a line the run printed
SOURCE_LINE = re.compile(r"^[ \t]+(if|elif|else|for|while|def|class|return|with|try|except|import|from|raise|assert|yield)\b"
                         r"|^[ \t]*[\w.\[\]]+\s*(=|\+=|-=|\*=)\s*\S.*[()\[\]]|^[ \t]+[\w.\[\]]+\s*=\s*[A-Za-z_]\w*[.(]|\bf[\"']|\b(log0|print|log|logger\.\w+)\("
                         r"|^\s*(if|elif|else|for|while|def|class|return|with|try|except)\b.*:|\)\s*:\s*$")
COMMAND = re.compile(r"\b(torchrun|python3?|export|env|bash|srun|accelerate|deepspeed)\b|^\s*[A-Z][A-Z0-9_]+=\S")
RUNS = re.compile(r"\b(torchrun|python3?|srun|accelerate)\b")
ABLATION = re.compile(r"ablat|sweep|search|grid|debug|test|try|explore|baseline", re.I)
RUNNER = re.compile(r"run|seed|submit|train|launch|repro|final|record|eval", re.I)

# the run's own record of training on validation data: a command that links or copies a
# validation shard to a training shard name, a val-only dataset or run name, the README saying so
VAL_AS_TRAIN_CMD = re.compile(r"\b(ln|cp|mv|rsync)\b[^\n]*fineweb_val\S*\s+\S*fineweb_train")
# `val` must start a word part: `evalonly` / `eval_train` (an eval-only rerun) are not val-only data
VAL_ONLY_NAME = re.compile(r"(?i)((?<![a-z])val_?only|only_?val|train_?on_?val|(?<![a-z])val_?train(?!_))")
VAL_AS_TRAIN_TEXT = re.compile(r"(?i)\bval(idation)?[- ]only training\b|\btrain(s|ing|ed)?\b[^.\n]{0,40}\b(on|pointed at|from)\b"
                               r"[^.\n]{0,12}\bval(idation)? (shard|set|data|split|tokens)\b")
RUN_NAME = re.compile(r"(?i)^\s*(EXPERIMENT|RUN_ID|run_id|train_loader:dataset)\s*[:=]\s*(\S+)")

LOG_HEAD = 512_000
LOG_TAIL = 1_000_000
TEXT_CAP = 2_000_000
MAX_FILES = 64


@dataclass
class LogLine:
    path: str
    line: int  # 1-based within the part read (the head's numbering is exact; the tail's is not)
    text: str


@dataclass
class Evidence:
    env: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # VAR -> (value, file, line)
    attrs: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # attr -> (value, file, line)
    rank: dict[str, int] = field(default_factory=dict)  # VAR -> rank of the source it came from
    log_lines: list[LogLine] = field(default_factory=list)
    val_as_train: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, what it shows)
    logs: list[str] = field(default_factory=list)  # the log files read
    claimed: list[float] = field(default_factory=list)  # val_bpb figures in submission.json

    def set_env(self, var: str, value: str, path: str, line: int, rank: int) -> None:
        if var not in self.env or rank < self.rank.get(var, 99):
            self.env[var] = (value, path, line)
            self.rank[var] = rank

    @property
    def has_logs(self) -> bool:
        return bool(self.log_lines)

    def log_text(self) -> str:
        got = getattr(self, "_text", None)
        if got is None:
            got = self._text = "\n".join(ll.text for ll in self.log_lines)
        return got


def _is_log(name: str) -> bool:
    low = name.lower()
    return low.endswith((".log", ".txt")) and not low.startswith("readme") and low not in ("requirements.txt",)


def collect_evidence(folder: Path | None, attr_names: set[str]) -> Evidence:
    """Run settings, log lines and claimed figures of the record folder `folder`."""
    ev = Evidence()
    if folder is None or lkind(folder) != "dir":
        return ev
    entries = [e for e in scan(folder, max_depth=2, max_entries=5_000) if e.kind == "file"][: 4 * MAX_FILES]
    logs = [e for e in entries if _is_log(e.rel)][:MAX_FILES]
    scripts = [e for e in entries if e.rel.lower().endswith(".sh")][:MAX_FILES]
    readmes = [e for e in entries if e.rel.lower().endswith(".md") or e.rel.rsplit("/", 1)[-1].lower().startswith("readme")]
    for e in logs:
        _read_log(folder, e, attr_names, ev)
    named = _named_scripts(folder, readmes, ev)
    for e in scripts:
        name = e.rel.rsplit("/", 1)[-1]
        rank = 1 if name in named or (RUNNER.search(name) and not ABLATION.search(name)) else 4 if ABLATION.search(name) else 2
        _read_script(folder, e, rank, ev)
    for e in readmes[:8]:
        _read_readme(folder, e, ev)
    _read_claims(folder, ev)
    return ev


def _text(folder: Path, rel: str, cap: int = TEXT_CAP) -> list[str]:
    try:
        return read_head(folder, rel, cap).decode("utf-8", errors="replace").splitlines()
    except UnsafeRead:
        return []


def _read_log(folder: Path, e, attr_names: set[str], ev: Evidence) -> None:
    try:
        head = read_head(folder, e.rel, LOG_HEAD).decode("utf-8", errors="replace")
        # the tail starts where the head ended (a log under LOG_HEAD + LOG_TAIL is read once)
        tail = read_tail(folder, e.rel, min(LOG_TAIL, e.size - LOG_HEAD)).decode("utf-8", errors="replace") \
            if e.size > LOG_HEAD else ""
    except UnsafeRead:
        return
    path = str(e.path)
    ev.logs.append(path)
    lines = head.splitlines()
    for i, line in enumerate(lines, 1):
        if SOURCE_LINE.search(line) or CODE_LINE.search(line):
            continue  # source the log embeds: neither printed output nor configuration
        ev.log_lines.append(LogLine(path, i, line))
        m = RUN_NAME.match(line) if i <= 400 else None
        if m and VAL_ONLY_NAME.search(m.group(2)):
            ev.val_as_train.append((path, i, "the run or its training dataset is named as validation-only"))
        if i > 400:  # configuration is echoed at the top; embedded source is not
            continue
        for m in LOG_KV.finditer(line):
            if m.group(1) in attr_names:
                ev.attrs.setdefault(m.group(1), (m.group(2).strip("'"), path, i))
        for m in ENV_ASSIGN.finditer(line):
            ev.set_env(m.group(1), m.group(2).strip("\"'"), path, i, 0)
    if tail:
        for j, line in enumerate(tail.splitlines()[1:], 1):  # the first tail line may be cut
            if not (SOURCE_LINE.search(line) or CODE_LINE.search(line)):
                ev.log_lines.append(LogLine(path, -j, line))


def _named_scripts(folder: Path, readmes, ev: Evidence) -> set[str]:
    """Shell scripts the README or the logs name (`bash run.sh`, `./run_seeds.sh`)."""
    text = ev.log_text()[:200_000] + "\n" + "\n".join("\n".join(_text(folder, e.rel, 200_000)) for e in readmes[:4])
    return set(re.findall(r"([\w.-]+\.sh)\b", text))


def _assignments(line: str):
    yield from ((m.group(1), m.group(2).strip("\"'")) for m in ENV_ASSIGN.finditer(line))
    yield from ((m.group(1), m.group(2).strip("\"'")) for m in SHELL_DEFAULT.finditer(line))


def _read_script(folder: Path, e, rank: int, ev: Evidence) -> None:
    for i, line in enumerate(_text(folder, e.rel), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        for var, value in _assignments(s):
            ev.set_env(var, value, str(e.path), i, rank)
        _val_as_train(s, str(e.path), i, ev)


def _read_readme(folder: Path, e, ev: Evidence) -> None:
    fenced = False
    for i, line in enumerate(_text(folder, e.rel), 1):
        s = line.strip()
        if s.startswith("```") or s.startswith("~~~"):
            fenced = not fenced
            continue
        if fenced or line.startswith(("    ", "\t")) or s.startswith("$ "):
            parts = [s]
        elif "`" in s:  # a sentence: only inline code that runs something counts, not "`X=0` reproduces"
            parts = [seg for seg in s.split("`")[1::2] if RUNS.search(seg)]
        else:
            parts = [s] if COMMAND.search(s) else []
        for part in parts:
            for var, value in _assignments(part):
                ev.set_env(var, value, str(e.path), i, 3)
            _val_as_train(part, str(e.path), i, ev)
        said = VAL_AS_TRAIN_TEXT.search(s) if not parts else None
        if said and not re.search(r"(?i)eval|test|scor|measur|report", said.group(0)) \
                and not re.search(r"(?i)\b(no|not|never|without|instead)\b|n't", s):
            ev.val_as_train.append((str(e.path), i, "the README says the model trained on validation data"))


def _val_as_train(command: str, path: str, line: int, ev: Evidence) -> None:
    if VAL_AS_TRAIN_CMD.search(command):
        ev.val_as_train.append((path, line, "a command makes a validation shard the training shard"))
    for var, value in _assignments(command):
        if var in ("DATA_PATH", "DATA_DIR", "DATASET", "TRAIN_FILES") and VAL_ONLY_NAME.search(value):
            ev.val_as_train.append((path, line, f"{var} names a validation-only dataset"))


def program_environment(module: cst.Module, path: str, ev: Evidence, positions: dict) -> None:
    """Settings the entry script puts into its own environment before anything reads them:
    `os.environ.setdefault("K", "v")`, `os.environ["K"] = "v"`, and a loop over a dict literal
    (`for k, v in TINY.items(): os.environ.setdefault(k, v)`). They stand for environment
    defaults (rank 5): any run script or log outranks them. `positions`: id(statement) -> (line,
    column), audit.static.positions."""
    literal_dicts: dict[str, dict] = {}
    for stmt in module.body:
        line = positions.get(id(stmt), (1, 1))[0]
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and isinstance(small.value, cst.Dict) and len(small.targets) == 1 \
                        and isinstance(small.targets[0].target, cst.Name):
                    literal_dicts[small.targets[0].target.value] = _dict_literal(small.value)
                for k, v in _environ_writes(small):
                    ev.set_env(k, v, path, positions.get(id(small), (line, 1))[0], 5)
        elif isinstance(stmt, cst.For) and isinstance(stmt.iter, cst.Call) and isinstance(stmt.iter.func, cst.Attribute) \
                and stmt.iter.func.attr.value == "items" and isinstance(stmt.iter.func.value, cst.Name):
            values = literal_dicts.get(stmt.iter.func.value.value, {})
            if "environ" in cst.Module([]).code_for_node(stmt.body):
                for k, v in values.items():
                    ev.set_env(k, v, path, line, 5)


def _dict_literal(node: cst.Dict) -> dict:
    out = {}
    for el in node.elements:
        if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and isinstance(el.value, cst.SimpleString):
            k, v = el.key.evaluated_value, el.value.evaluated_value
            if isinstance(k, str) and isinstance(v, str):
                out[k] = v
    return out


_ENVIRON_WRITE = re.compile(r"""os\.environ\.setdefault\(\s*["'](\w+)["']\s*,\s*["']([^"']*)["']\s*\)"""
                            r"""|os\.environ\[["'](\w+)["']\]\s*=\s*["']([^"']*)["']""")


def _environ_writes(small) -> list[tuple[str, str]]:
    code = cst.Module([]).code_for_node(small) if isinstance(small, (cst.Expr, cst.Assign)) else ""
    m = _ENVIRON_WRITE.match(code)
    if not m:
        return []
    return [(m.group(1), m.group(2))] if m.group(1) else [(m.group(3), m.group(4))]


def _read_claims(folder: Path, ev: Evidence) -> None:
    try:
        doc = json.loads(read_under(folder, "submission.json", 1_000_000).decode("utf-8", errors="replace"))
    except (UnsafeRead, ValueError, RecursionError):
        return
    stack = [doc]
    while stack and len(ev.claimed) < 64:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if "bpb" in str(k).lower() and isinstance(v, (int, float)) and not isinstance(v, bool):
                    ev.claimed.append(float(v))
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(x[:64])
