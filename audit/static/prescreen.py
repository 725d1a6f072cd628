"""A cheap look at a source text before libcst parses it: refuse what would crash or stall it.

libcst's native parser segfaults on about 1,300 nested parentheses (a 2.6 KB file kills the
process: no report at all) and is superlinear on very long operator chains (`- - - … x` or
`a.b.b.b…` with 20,000 links takes minutes). CPython itself refuses more than 200 nested
brackets ("too many nested parentheses") and 100 indentation levels, so such a file is not a
runnable program anyway. The stdlib `tokenize` module reads the text in linear time without
recursion; we count bracket depth, indentation depth and operators per logical line, and refuse
the file before any parser sees it (an entry file CPython would refuse is PG-PARSE-005, FAIL;
otherwise a PG-PARSE-001 finding, REVIEW). The audit also runs each
file in a worker process (audit.static.isolate), so a crash we did not foresee is a finding too.
"""
from __future__ import annotations

import io
import tokenize
from typing import NamedTuple

from audit.static.positions import ast_statements, parse_ast

MAX_BRACKETS = 200  # CPython's own limit (Parser/tokenizer.c MAXLEVEL)
MAX_INDENT = 100  # CPython's own limit (MAXINDENT)
MAX_OPERATORS_PER_LINE = 3_000  # far above real code; libcst needs seconds from here on
_NOT_COUNTED = frozenset("()[]{},:;=") | {"->", "**=", "*=", "+=", "-=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<="}


class Problem(NamedTuple):
    """Why a text must not be parsed, where, and whether CPython itself would refuse it (then the
    file is not a runnable program: an entry file like that is PG-PARSE-005, FAIL; otherwise only
    our parser is at its limit and the verdict is REVIEW)."""

    message: str
    line: int
    python_refuses: bool


def prescreen(text: str) -> Problem | None:
    """The problem when the text must not be parsed, else None.

    CPython's own parser (C, linear) goes first: text it accepts is within its bracket and
    indentation limits, and only a statement longer than MAX_OPERATORS_PER_LINE characters could
    hold that many operators, so the token scan (pure Python, about a sixth of the audit's time
    on a large file) runs only when the parser refuses the text (to say why) or a statement is
    that long. The tree is kept for `positions.statement_positions`, which needs the same one.
    A tokenize error is not reported here: the parser gives the better syntax-error message."""
    tree = parse_ast(text)
    if tree is not None and not _has_long_statement(tree, text):
        return None
    return _token_scan(text)


def _has_long_statement(tree, text: str) -> bool:
    """Whether the text between two consecutive statement starts (in source order, blocks
    entered), or after the last one, spans more than MAX_OPERATORS_PER_LINE characters, counted
    from the start of the first line to the end of the second: every logical line lies inside
    one such span, so none can hold more operators when all are shorter."""
    ends = [0]
    for line in io.StringIO(text, newline="").readlines():  # ast's line breaks only (not \x0c, \u2028, ...)
        ends.append(ends[-1] + len(line))
    starts = sorted({s.lineno for s in ast_statements(tree)})
    starts.append(len(ends) - 1)
    prev = 1
    for line in starts:
        if ends[min(line, len(ends) - 1)] - ends[prev - 1] > MAX_OPERATORS_PER_LINE:
            return True
        prev = line
    return False


def _token_scan(text: str) -> Problem | None:
    depth = indent = ops = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            t = tok.type
            if t == tokenize.OP:
                s = tok.string
                if s in "([{":
                    depth += 1
                    if depth > MAX_BRACKETS:
                        return Problem(f"brackets nested {depth} deep (Python allows {MAX_BRACKETS})", tok.start[0], True)
                elif s in ")]}":
                    depth -= 1
                elif s not in _NOT_COUNTED:
                    ops += 1
                    if ops > MAX_OPERATORS_PER_LINE:
                        return Problem(f"more than {MAX_OPERATORS_PER_LINE} operators in one statement", tok.start[0], False)
            elif t == tokenize.NEWLINE:
                ops = 0
            elif t == tokenize.INDENT:
                indent += 1
                if indent > MAX_INDENT:
                    return Problem(f"blocks nested {indent} deep (Python allows {MAX_INDENT})", tok.start[0], True)
            elif t == tokenize.DEDENT:
                indent -= 1
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        return None
    return None
