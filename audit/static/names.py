"""Lightweight qualified names: dotted spellings of expressions and the file's import aliases.

We resolve `L.decompress` to `lzma.decompress` from the file's own `import lzma as L` instead of
libcst's QualifiedNameProvider, whose scope resolution costs ~7x a parse on real records.
"""
from __future__ import annotations

import libcst as cst


def dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` for Name/Attribute chains, None for anything else."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def import_nodes(module: cst.Module):
    """Every `import` / `from … import` statement of the module, at any depth: top level, every
    branch of if/try/with/for/while (else, except and finally included), function and class
    bodies. One walker for the aliases and for the helper modules the audit must read: an import
    in a branch it did not enter would be a module it never audits."""
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            yield node
        elif isinstance(node, (cst.Module, cst.IndentedBlock, cst.SimpleStatementSuite, cst.SimpleStatementLine)):
            stack.extend(reversed(node.body))
        elif isinstance(node, (cst.If, cst.Try, cst.TryStar, cst.With, cst.For, cst.While, cst.FunctionDef,
                               cst.ClassDef, cst.Else, cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler)):
            for extra in ("finalbody", "orelse"):
                sub = getattr(node, extra, None)
                if sub is not None:
                    stack.append(sub)
            stack.extend(reversed(getattr(node, "handlers", ())))
            stack.append(node.body)


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name -> dotted module/object it stands for, from top-level and nested imports."""
    aliases: dict[str, str] = {}
    for node in import_nodes(module):
        if isinstance(node, cst.Import):
            for a in node.names:
                full = dotted(a.name) or ""
                if a.asname is not None and isinstance(a.asname.name, cst.Name):
                    aliases[a.asname.name.value] = full
                else:
                    head = full.split(".")[0]
                    aliases.setdefault(head, head)
        elif not isinstance(node.names, cst.ImportStar):
            mod = dotted(node.module) if node.module is not None else ""
            for a in node.names:
                name = dotted(a.name) or ""
                local = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) else name
                aliases[local] = f"{mod}.{name}" if mod else name
    return aliases


def qualify(node: cst.BaseExpression, aliases: dict[str, str]) -> str | None:
    d = dotted(node)
    if d is None:
        return None
    head, _, rest = d.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full
