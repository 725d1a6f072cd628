"""Statement positions without libcst's PositionProvider.

PositionProvider re-generates the whole module to locate every node: on the 50 merged records
it costs ~2.5x the parse itself. Findings only need statement lines, so we pair libcst's
statements with the stdlib `ast` statements (same pre-order: a libcst `SimpleStatementLine`
holds one ast statement per `;`-separated part) and read `lineno`/`col_offset` from ast, which
parses the same files ~10x faster. If the running Python cannot parse the file with `ast`
(newer syntax than the interpreter) or the pairing disagrees, we fall back to PositionProvider
for that file only.
"""
from __future__ import annotations

import ast

import libcst as cst
from libcst._nodes.internal import CodegenState

Pos = tuple[int, int]  # 1-based line, 1-based column


def _ast_preorder(body: list[ast.stmt], out: list[ast.stmt]) -> None:
    for s in body:
        out.append(s)
        for field in ("body", "orelse", "finalbody"):
            sub = getattr(s, field, None)
            if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
                # `elif` is an If inside orelse in both trees
                _ast_preorder(sub, out)
            if field == "body":
                for h in getattr(s, "handlers", ()) or ():
                    _ast_preorder(h.body, out)
                for c in getattr(s, "cases", ()) or ():
                    _ast_preorder(c.body, out)


def _cst_block(node) -> list:
    if node is None:
        return []
    if isinstance(node, (cst.IndentedBlock, cst.SimpleStatementSuite)):
        return list(node.body)
    if isinstance(node, (cst.Else, cst.Finally)):
        return _cst_block(node.body)
    if isinstance(node, cst.If):  # elif
        return [node]
    return []


def _cst_preorder(body, out: list) -> None:
    for s in body:
        if isinstance(s, (cst.SimpleStatementLine,)):
            out.extend(s.body)
            continue
        if isinstance(s, cst.BaseSmallStatement):
            out.append(s)
            continue
        out.append(s)
        _cst_preorder(_cst_block(s.body), out)
        if isinstance(s, (cst.Try, cst.TryStar)):
            for h in s.handlers:
                _cst_preorder(_cst_block(h.body), out)
        elif isinstance(s, cst.Match):
            for c in s.cases:
                _cst_preorder(_cst_block(c.body), out)
        orelse = getattr(s, "orelse", None)
        _cst_preorder(_cst_block(orelse), out)
        _cst_preorder(_cst_block(getattr(s, "finalbody", None)), out)


_last_parsed: tuple[str, ast.Module | None] | None = None


def parse_ast(text: str) -> ast.Module | None:
    """`ast.parse(text)`, or None when CPython refuses it. The last text's tree is kept (matched
    by identity, the same string object): the pre-screen and `statement_positions` parse the
    same text one after the other, and this halves that cost."""
    global _last_parsed
    if _last_parsed is not None and _last_parsed[0] is text:
        return _last_parsed[1]
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    _last_parsed = (text, tree)
    return tree


def ast_statements(tree: ast.Module) -> list[ast.stmt]:
    """Every statement of the tree in source order, blocks entered."""
    out: list[ast.stmt] = []
    _ast_preorder(tree.body, out)
    return out


def statement_positions(module: cst.Module, text: str) -> dict[int, Pos]:
    """id(libcst statement) -> (line, column) for every statement, small ones included."""
    cst_list: list = []
    _cst_preorder(module.body, cst_list)
    tree = parse_ast(text)
    if tree is None:
        return _fallback(module)
    ast_list = ast_statements(tree)
    if len(ast_list) != len(cst_list):
        return _fallback(module)
    return {id(c): (a.lineno, a.col_offset + 1) for c, a in zip(cst_list, ast_list)}


_STATEMENT = (cst.BaseSmallStatement, cst.BaseCompoundStatement)


class _Record:
    __slots__ = ("state", "node")

    def __init__(self, state, node):
        self.state, self.node = state, node

    def __enter__(self):
        st, node = self.state, self.node
        if isinstance(node, _STATEMENT) and id(node) not in st.found:
            st.found[id(node)] = (st.line, sum(len(t) for t in st.indent_tokens) + 1)

    def __exit__(self, *exc):
        return False


class _LineState(CodegenState):
    """Codegen that only counts newlines and notes where each statement starts: about half of
    PositionProvider's cost (no metadata visitor, no per-node ranges)."""

    def __init__(self, module: cst.Module):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.line = 1
        self.found: dict[int, Pos] = {}

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        if "\n" in value:
            self.line += value.count("\n")

    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        return _Record(self, node)


def _fallback(module: cst.Module) -> dict[int, Pos]:
    """For files the running Python's `ast` rejects (e.g. 3.12 f-strings on 3.11)."""
    state = _LineState(module)
    module._codegen(state)
    return state.found
