"""Errors that mean "the input or the call was unusable": the CLI turns them into exit 2.

Every such error names the file (and line, when there is one) so the user can fix the input.
"""
from __future__ import annotations


class InputError(Exception):
    """Unusable input: a missing folder, bad JSON, a file that is not what it claims."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.bare_message = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
