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


def import_aliases(module: cst.Module) -> dict[str, str]:
    """Local name -> dotted module/object it stands for, from top-level and nested imports."""
    aliases: dict[str, str] = {}
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Import):
            for a in node.names:
                full = dotted(a.name) or ""
                if a.asname is not None and isinstance(a.asname.name, cst.Name):
                    aliases[a.asname.name.value] = full
                else:
                    head = full.split(".")[0]
                    aliases.setdefault(head, head)
        elif isinstance(node, cst.ImportFrom):
            mod = dotted(node.module) if node.module is not None else ""
            if isinstance(node.names, cst.ImportStar):
                continue
            for a in node.names:
                name = dotted(a.name) or ""
                local = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) else name
                aliases[local] = f"{mod}.{name}" if mod else name
        elif isinstance(node, (cst.Module, cst.IndentedBlock, cst.SimpleStatementSuite)):
            stack.extend(node.body)
        elif isinstance(node, cst.SimpleStatementLine):
            stack.extend(node.body)
        elif isinstance(node, (cst.If, cst.Try, cst.With, cst.FunctionDef, cst.ClassDef, cst.Else, cst.Finally, cst.ExceptHandler)):
            stack.append(node.body)
            for extra in ("orelse", "finalbody"):
                sub = getattr(node, extra, None)
                if sub is not None:
                    stack.append(sub)
            for h in getattr(node, "handlers", ()):
                stack.append(h)
    return aliases


def qualify(node: cst.BaseExpression, aliases: dict[str, str]) -> str | None:
    d = dotted(node)
    if d is None:
        return None
    head, _, rest = d.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full
