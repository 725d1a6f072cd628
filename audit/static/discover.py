"""Which files of a submission the audit reads, found without following a link.

- `collect_targets(path)`: the programs to audit under a file, a record folder or a tree of them.
- `entry_files(folder)`: a record folder's programs: `train_gpt.py`, else `train*.py`, else `*.py`
  (an empty or unreadable entry file is still returned: the audit reports it, never skips it).
- `helper_names(module)`: the modules a program imports, to be looked up beside it.
- `folder_links(folder)`: every symbolic link in a record folder (and its subfolders, two levels):
  none is ever read; each becomes a PG-PARSE-004 finding that names the link, never its target.

All listing goes through `audit.safe_read.scan` (lstat only: a `logs -> /var/log` link is listed
as a link and never entered).
"""
from __future__ import annotations

from pathlib import Path

import libcst as cst

from audit.safe_read import Entry, lkind, scan
from audit.static.names import import_nodes

RECORD_DEPTH = 2  # the record folder and one level of subfolders (logs/)
MAX_ENTRIES = 5_000


def _py_entries(folder: Path) -> list[Entry]:
    return [e for e in scan(folder, max_depth=1, max_entries=MAX_ENTRIES)
            if e.rel.endswith(".py") and e.kind in ("file", "link")]


def entry_files(folder: Path) -> list[Path]:
    """The programs of a record folder: train_gpt.py if it has code, else train*.py, else *.py.

    A link counts as a candidate (the audit reports it instead of reading it); a file that is
    empty is chosen only when no file has code, so an empty entry file becomes a finding."""
    cands = _py_entries(folder)
    if not cands:
        return []
    has_code = [e for e in cands if e.kind == "link" or e.size > 0]
    main = [e for e in cands if e.rel == "train_gpt.py"]
    if main and main[0] in has_code:
        return [main[0].path]
    trains = [e.path for e in has_code if e.rel.startswith("train")]
    if trains:
        return trains
    if has_code:
        return [e.path for e in has_code]
    return [main[0].path] if main else [cands[0].path]


def collect_targets(path: Path) -> list[Path]:
    """Files to audit under `path`: itself, a record folder's entry files, or every record below."""
    path = Path(path)
    kind = lkind(path)
    if kind in ("file", "link") and not path.is_dir():
        return [path]
    if _py_entries(path):
        return entry_files(path)
    out: list[Path] = []
    for e in scan(path, max_entries=50_000):
        if e.kind == "dir" and _py_entries(e.path):
            out.extend(entry_files(e.path))
    return out


def folder_links(folder: Path | None) -> list[Entry]:
    if folder is None or lkind(folder) != "dir":
        return []
    return [e for e in scan(folder, max_depth=RECORD_DEPTH, max_entries=MAX_ENTRIES) if e.kind == "link"]


def helper_names(module: cst.Module) -> list[str]:
    """Dotted names of the modules a program imports, in any branch (`import x`, `from x import
    y`, `from .x import y`, and `from . import x`, where x is the module)."""
    names: list[str] = []
    for node in import_nodes(module):
        if isinstance(node, cst.Import):
            names += [cst.Module([]).code_for_node(a.name) for a in node.names]
        elif node.module is not None:
            names.append(cst.Module([]).code_for_node(node.module))
        elif not isinstance(node.names, cst.ImportStar):
            names += [a.name.value for a in node.names if isinstance(a.name, cst.Name)]
    return names


def helper_path(name: str, folder: Path) -> tuple[str, str] | None:
    """(relative path, kind) of the module `name` beside the program: `ngram_mix` -> ngram_mix.py,
    in a package folder `pkg.data` or `.data` -> data.py. Kind is `file` or `link`; None if absent."""
    parts = [p for p in name.split(".") if p]
    if not parts:
        return None
    if parts[0] == folder.name and len(parts) > 1:
        parts = parts[1:]
    rel = "/".join(parts[:-1] + [f"{parts[-1]}.py"])
    for i in range(len(parts) - 1):  # a folder on the way that is a link is never entered
        if lkind(folder.joinpath(*parts[: i + 1])) == "link":
            return "/".join(parts[: i + 1]), "link"
    kind = lkind(folder / rel)
    return (rel, kind) if kind in ("file", "link") else None
