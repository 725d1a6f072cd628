"""What the audit could not read or run its analysis on (PARSE): a REVIEW, never a PASS, unless
the file is plainly not a program (an empty or non-Python entry file is a FAIL)."""
from __future__ import annotations

from audit.findings import Severity
from audit.static.program import Program
from audit.static.rules.base import Folder, Link, Rule

_TRAIN = "import torch\n\n\ndef main():\n    return torch.zeros(1)\n\n\nmain()\n"


class DynamicCode(Rule):
    """PARSE: `exec`/`eval`/dynamic import of code the audit could not decode: whatever it runs
    was not analysed, so the verdict is REVIEW."""

    id = "PG-PARSE-002"
    condition = "PARSE"
    severity = Severity.NOTE
    message = "dynamic code (exec/eval/dynamic import) the audit could not follow: not analysed"
    VALID = ["""import json
def main():
    return json.loads("{}")
main()
"""]
    INVALID = [("""import importlib
def main(name):
    mod = importlib.import_module(name)
main("x")
""", 3)]

    def check(self, prog: Program) -> None:
        for _, e in prog.of("dyn"):
            prog.emit(self, e, message=f"dynamic code ({e.info.get('call')}) the audit could not follow: not analysed",
                      undecided=True)


class Unparsable(Rule):
    """PARSE: the file could not be read or parsed (syntax error, encoding, size cap); nothing in
    it was analysed, so the verdict is REVIEW, never PASS."""

    id = "PG-PARSE-001"
    condition = "PARSE"
    severity = Severity.NOTE
    message = "could not analyse this file"
    VALID = ["x = 1\n"]
    INVALID = [("def f(:\n    pass\n", 1)]

    def check(self, prog: Program) -> None:  # emitted by the engine before any program exists
        return None


class DecodedPayload(Rule):
    """PARSE note: the script is a self-extracting wrapper; the audit decoded its payload
    (without running it) and reports locations in the decoded source."""

    id = "PG-PARSE-003"
    condition = "PARSE"
    severity = Severity.NOTE
    confidence = "high"
    message = "self-extracting script: audited its decoded payload (locations refer to the decoded source)"
    VALID = ["x = 1\n"]
    INVALID = [("import zlib, base64\nexec(zlib.decompress(base64.b64decode('eJzLzC3ILypRyC/mKijKzCvRyC/WS08tSS5P0dDU5AIAo+4KDw==')))\n", 2)]

    def check(self, prog: Program) -> None:
        return None


class LinkNotFollowed(Rule):
    """PARSE: a symbolic link inside the submission (a log, a README, a helper module, the entry
    file itself, or a folder linked to a host folder). Links are never followed: a record that
    links `train_seed7.log` to the process environment would otherwise put the host's secrets
    into the report. What the link hides was not read, so the verdict is REVIEW; the finding names
    the link, never its target."""

    id = "PG-PARSE-004"
    condition = "PARSE"
    severity = Severity.WARNING
    confidence = "high"
    message = "symbolic link in the submission: not followed, not read"
    VALID = [Folder({"train_gpt.py": _TRAIN, "train_seed1.log": "step:1/1 val_bpb:1.2\n"})]
    INVALID = [(Folder({"train_gpt.py": _TRAIN, "train_seed7.log": Link("/proc/self/environ")}), "train_seed7.log"),
               (Folder({"train_gpt.py": _TRAIN, "logs": Link("/var/log")}), "logs"),
               (Folder({"train_gpt.py": Link("/etc/hostname")}), "train_gpt.py")]

    def check(self, prog: Program) -> None:  # emitted by the engine: links are never parsed
        return None


class NotAProgram(Rule):
    """PARSE: the entry file is empty, or is not Python source at all (NUL bytes, bytes invalid in
    its encoding, an unknown coding line, brackets or blocks nested deeper than CPython's own
limits: CPython would refuse to run it). A record whose entry
    file cannot run has no evaluation to review: FAIL, with a report that says so (never an
    empty output)."""

    id = "PG-PARSE-005"
    condition = "PARSE"
    severity = Severity.ERROR
    confidence = "high"
    message = "the entry file is not a runnable Python program"
    VALID = [Folder({"train_gpt.py": _TRAIN})]
    INVALID = [(Folder({"train_gpt.py": ""}), "train_gpt.py:1"),
               (Folder({"train_gpt.py": "# only a comment\n\n"}), "train_gpt.py:1"),
               (Folder({"train_gpt.py": b"\x89PNG\r\n\x1a\n\x00\x00"}), "train_gpt.py:1"),
               (Folder({"train_gpt.py": "print(1)\nx = " + "(" * 201 + "1" + ")" * 201 + "\n"}), "train_gpt.py:2")]

    def check(self, prog: Program) -> None:  # emitted by the engine before any parse
        return None
