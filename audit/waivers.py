"""Reviewer-owned waivers: the only way to silence an audit finding.

A waiver file (JSON or YAML) lists entries, each naming the rule id, the submission (record
folder name), the sha256 of every file the audit read — the entry file and the modules it
imports from its folder — the reason, who decided and when:

    waivers:
      - id: PG-DATA-003
        submission: 2026-03-29_Loader_FullGPTQ_XSA11_BigramHash2816
        sha256: 3f1c...            # of train_gpt.py as audited
        files:                     # every audited file: a changed or added one is not waived
          train_gpt.py: 3f1c...
          gptq_utils.py: 9a2b...
        reason: GPTQ calibration runs inside the timed training budget (log line 212)
        who: reviewer-handle
        when: 2026-04-02

Why every file: the audit follows the entry into the helper modules it imports from its own
folder, so the verdict depends on all of them; a waiver that pinned only the entry file would
survive an edit to an imported module. Which files were audited: the set the audit reports when
it passes one (`audited=`), else every code file of the entry's folder (links are never read: a
link is pinned as "link", which no waiver can match by a hash). A waiver without `files` (the
old form) still applies when the entry is the folder's only code file; otherwise the finding
stays and its evidence says the waiver must pin every file.

`python -m audit.waivers pin RECORD_DIR` prints the `sha256` and `files` of a folder, ready to
paste into an entry. Comments inside the audited code never silence a rule: the submitter
controls that code. A waived finding stays in the report as a note marked `waived`, so the
decision is visible.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from audit.findings import EvidenceStep, Finding, Severity
from audit.safe_read import UnsafeRead, read_under, scan

REQUIRED = ("id", "submission", "sha256", "reason", "who", "when")
CODE_SUFFIXES = (".py", ".sh", ".cu", ".cpp", ".c", ".h")
READ_CAP = 64 << 20  # larger code files are pinned by their size only (the audit refuses them anyway)
MAX_DEPTH = 3


class WaiverError(ValueError):
    """A waiver file that cannot be used; carries the path (and entry index) for the message."""

    def __init__(self, message: str, path: str, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


def code_pins(folder: Path) -> dict[str, str]:
    """{path relative to `folder`: sha256} of every code file under it (links not followed)."""
    pins: dict[str, str] = {}
    for entry in scan(folder, max_depth=MAX_DEPTH):
        if not entry.rel.endswith(CODE_SUFFIXES) or "__pycache__" in entry.rel:
            continue
        if entry.kind == "link":
            pins[entry.rel] = "link"
            continue
        if entry.kind != "file":
            continue
        try:
            pins[entry.rel] = hashlib.sha256(read_under(folder, entry.rel, READ_CAP)).hexdigest()
        except UnsafeRead as e:
            pins[entry.rel] = f"unread ({e.reason}, {e.size or entry.size} bytes)"
    return pins


@dataclass(frozen=True)
class Waiver:
    rule_id: str
    submission: str
    sha256: str
    reason: str
    who: str
    when: str
    files: Mapping[str, str] = field(default_factory=dict)  # rel path -> sha256, every audited file

    def covers(self, finding: Finding, file_path: str, sha256: str) -> bool:
        """Whether this waiver is about `finding` in this entry file at this hash (whatever else
        the audited code holds: see `stale`)."""
        return (finding.rule_id == self.rule_id and self.submission in Path(file_path).parts
                and sha256.lower() == self.sha256.lower())

    def stale(self, entry: str, audited: Mapping[str, str]) -> str | None:
        """None when the pinned files still match the audited code (entry file `entry`); else why not."""
        if not self.files:
            others = sorted(rel for rel in audited if rel != entry)  # the entry sits at the top
            if others:
                return (f"the waiver by {self.who} pins only {entry}; the audited code also includes "
                        f"{', '.join(others[:5])}{' …' if len(others) > 5 else ''}: pin every file (`files:`)")
            return None
        changed = sorted(rel for rel, sha in self.files.items() if audited.get(rel, "").lower() != str(sha).lower())
        added = sorted(rel for rel in audited if rel not in self.files)
        if changed or added:
            parts = ([f"changed or missing: {', '.join(changed)}"] if changed else []) + \
                    ([f"not pinned: {', '.join(added)}"] if added else [])
            return f"the waiver by {self.who} no longer matches the audited code ({'; '.join(parts)})"
        return None


def _load_doc(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise WaiverError(f"cannot read waiver file: {e.strerror or e}", str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        line = getattr(e, "lineno", None) or getattr(getattr(e, "problem_mark", None), "line", None)
        raise WaiverError(f"not valid {path.suffix.lstrip('.') or 'yaml'}: {e}", str(path), line) from None


def load_waivers(path: Path) -> list[Waiver]:
    path = Path(path)
    doc = _load_doc(path)
    entries = doc.get("waivers") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise WaiverError("expected a list of waivers (or a mapping with key 'waivers')", str(path))
    out = []
    for i, ent in enumerate(entries, 1):
        if not isinstance(ent, dict):
            raise WaiverError(f"waiver #{i} is not a mapping", str(path))
        missing = [k for k in REQUIRED if not str(ent.get(k) or "").strip()]
        if missing:
            raise WaiverError(f"waiver #{i} lacks {', '.join(missing)}", str(path))
        files = ent.get("files") or {}
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise WaiverError(f"waiver #{i}: `files` must map each audited file's path to its sha256", str(path))
        out.append(Waiver(str(ent["id"]), str(ent["submission"]), str(ent["sha256"]), str(ent["reason"]),
                          str(ent["who"]), str(ent["when"]), dict(files)))
    return out


def apply_waivers(findings: list[Finding], waivers: list[Waiver], file_path: str, sha256: str,
                  audited: Mapping[str, str] | None = None) -> list[Finding]:
    """Waived findings become notes that say who waived them, when and why. `audited`: the
    {relative path: sha256} of every file the audit read for `file_path`; None hashes every code
    file of its folder. A waiver that names the finding but no longer matches the code leaves it
    as it was, with a step of evidence saying why."""
    pins = audited  # hashed only once some waiver covers a finding of this file
    out = []
    for f in findings:
        applied = None
        reasons = []
        for w in waivers:
            if not w.covers(f, file_path, sha256):
                continue
            if pins is None:
                pins = code_pins(Path(file_path).parent)
            why = w.stale(Path(file_path).name, pins)
            if why is None:
                applied = w
                break
            reasons.append(why)
        if applied is None:
            out.append(replace(f, evidence=f.evidence + tuple(EvidenceStep(r) for r in reasons)) if reasons else f)
            continue
        out.append(replace(f, severity=Severity.NOTE, undecided=False,
                           message=f"waived: {f.message}",
                           evidence=f.evidence + (EvidenceStep(f"waived by {applied.who} on {applied.when}: {applied.reason}"),),
                           data={**f.data, "waived": True, "original_severity": f.severity.value}))
    return out


def pin_text(folder: Path, entry: str = "train_gpt.py") -> str:
    """The `sha256:` and `files:` lines of a waiver entry for `folder` (YAML)."""
    pins = code_pins(folder)
    q = json.dumps  # a JSON string is a YAML scalar: a submitted file name cannot add keys or lines
    lines = [f"    submission: {q(folder.name)}", f"    sha256: {q(pins.get(entry, '<no ' + entry + '>'))}", "    files:"]
    lines += [f"      {q(rel)}: {q(sha)}" for rel, sha in sorted(pins.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or args[0] != "pin":
        print("usage: python -m audit.waivers pin RECORD_DIR [ENTRY_FILE]   # print the pins of a waiver entry",
              file=sys.stderr)
        return 2
    folder = Path(args[1])
    if not folder.is_dir():
        print(f"{folder}: not a folder", file=sys.stderr)
        return 2
    sys.stdout.write(pin_text(folder, args[2] if len(args) == 3 else "train_gpt.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
