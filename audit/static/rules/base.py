"""The rule protocol and registry: one small class per rule, each with its examples.

A rule has a stable id (`PG-<AREA>-<NNN>`, never reused), the condition of rules.md it enforces,
a default severity and confidence (kept apart, as in bandit), a one-line message, a rationale
(the class docstring) and VALID / INVALID example programs. An INVALID example is
`(source, line)`: the finding must land on that line. tests/test_audit_rules.py runs them all.

An example may also be a whole record folder, `Folder({"train_gpt.py": "...", "README.md": "...",
"train_seed7.log": Link("/proc/self/environ")})`, for rules that read more than the code (run
evidence, links); its INVALID form is `(Folder(...), "name:line")` or `(Folder(...), "name")`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Union

from audit.findings import Severity

if TYPE_CHECKING:
    from audit.static.program import Program

RULES: dict[str, type["Rule"]] = {}


@dataclass(frozen=True)
class Link:
    """A symbolic link in an example folder, pointing at `target`."""

    target: str


@dataclass(frozen=True)
class Folder:
    """An example record folder: file name -> text (str), raw bytes, or a `Link`. The audited
    program is `train_gpt.py`."""

    files: dict

    def write(self, root) -> None:
        import os
        from pathlib import Path

        for name, content in self.files.items():
            p = Path(root) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Link):
                os.symlink(content.target, p)
            elif isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)


Example = Union[str, Folder]


class Rule:
    id: ClassVar[str]
    condition: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    confidence: ClassVar[str] = "medium"
    message: ClassVar[str]
    VALID: ClassVar[list[Example]] = []
    INVALID: ClassVar[list[tuple[Example, int | str]]] = []

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if getattr(cls, "id", None):
            if cls.id in RULES:
                raise ValueError(f"rule id {cls.id} registered twice")
            RULES[cls.id] = cls

    @classmethod
    def rationale(cls) -> str:
        return " ".join((cls.__doc__ or "").split())

    def check(self, prog: "Program") -> None:  # pragma: no cover - interface
        raise NotImplementedError
