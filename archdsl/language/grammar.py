"""Load the Lark grammar and parse spec text into a Lark tree, turning Lark's exceptions into
located `ArchError`s that say what was expected in the spec's own words.

The tree's depth is bounded (`MAX_NESTING`) before anything walks it recursively: the
Transformer, the evaluator and the formatter then recurse at most that deep. Lark's LALR parser
itself keeps an explicit stack, so any nesting parses without recursion.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Iterator

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import ArchError, Span, source_line
from ..limits import MAX_NESTING
from ..resources import grammar_dir

# How terminals are named in messages.
_TERMINAL_WORDS = {
    "WORD": "a name",
    "NUMBER": "a number",
    "SHAPE": "a shape such as 224x224x3",
    "STRING": 'a quoted path such as "base.arch"',
    "_NL": "a new line",
    "SEMICOLON": "';'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "NETWORK": "'network'",
    "IMPORT": "'import'",
    "BLOCK": "'block'",
    "$END": "end of file",
}


class _TooDeep(Exception):
    """Raised by the post-lexer at a '(' nested deeper than `MAX_NESTING`."""

    def __init__(self, token: Token):
        self.token = token


class _ParenNewlines:
    """Post-lexer: newlines inside parentheses are layout, not statement separators. It also
    bounds how deep parentheses nest (they add no depth to the tree: `?atom` inlines them)."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for tok in stream:
            if tok.type == "LPAR":
                depth += 1
                if depth > MAX_NESTING:
                    raise _TooDeep(tok)
            elif tok.type == "RPAR":
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


_comments = threading.local()  # comment tokens of the parse running on this thread


def _keep_comment(tok: Token) -> Token:
    _comments.tokens.append(tok)
    return tok


def _cache_file() -> str | bool:
    """A per-user file for Lark's parse tables (Lark unpickles it, so never a shared path)."""
    import hashlib

    import lark

    from ..resources import user_cache_dir

    root = user_cache_dir()
    if root is None:
        return False
    key = hashlib.sha256((grammar_dir() / "archdsl.lark").read_bytes() + lark.__version__.encode()).hexdigest()[:16]
    return str(root / f"lark-{key}.cache")


@cache
def parser() -> Lark:
    return Lark(
        (grammar_dir() / "archdsl.lark").read_text(),
        parser="lalr",
        lexer="basic",  # one scanner compiled once; the grammar's tokens need no context
        postlex=_ParenNewlines(),
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _keep_comment},
        cache=_cache_file(),  # LALR tables, keyed by grammar and Lark version
    )


def parse_tree(source: str, file: str) -> tuple[Tree, list[Token]]:
    """Parse `source`; return the tree and the comment tokens (kept for the formatter)."""
    _comments.tokens = []
    try:
        tree = parser().parse(source)
    except UnexpectedInput as exc:
        raise _located(exc, source, file) from None
    except _TooDeep as exc:
        tok = exc.token
        raise ArchError(
            f"parentheses nest more than {MAX_NESTING} deep",
            Span(file, tok.line or 1, tok.column or 1, tok.line or 1, (tok.column or 1) + 1, source),
            "write the value as a number, or shorten the expression",
        ) from None
    _check_depth(tree, source, file)
    return tree, _comments.tokens


_EXPRESSION = frozenset({"add", "sub", "mul", "div", "neg", "number", "name", "paren"})


def _check_depth(tree: Tree, source: str, file: str) -> None:
    """Refuse a tree deeper than `MAX_NESTING` (iteratively, level by level: microseconds)."""
    level, depth = [tree], 1
    while depth <= MAX_NESTING:
        level = [c for t in level for c in t.children if type(c) is Tree]
        if not level:
            return
        depth += 1
    raise _too_deep(tree, source, file)


def _too_deep(tree: Tree, source: str, file: str) -> ArchError:
    """The error at the deepest node of `tree`, saying whether operators or bodies nest."""
    stack: list[tuple[Tree, int, int]] = [(tree, 1, 0)]  # node, depth, expression levels in it
    best = (0, 0, tree)
    while stack:
        t, depth, in_expr = stack.pop()
        in_expr += t.data in _EXPRESSION
        if depth > best[0] and not t.meta.empty:
            best = (depth, in_expr, t)
        stack += [(c, depth + 1, in_expr) for c in reversed(t.children) if type(c) is Tree]  # leftmost first
    depth, in_expr, deepest = best
    m = deepest.meta
    span = Span(file, m.line, m.column, m.end_line, m.end_column, source) if not m.empty else None
    if 2 * in_expr > depth:
        return ArchError(
            f"expression nests more than {MAX_NESTING} levels deep",
            span,
            "each operator and '-' nests one level: write the value as a number, or shorten the expression",
        )
    return ArchError(
        f"'{{ ... }}' bodies nest more than {MAX_NESTING // 2} deep",
        span,
        f"each body is two of the {MAX_NESTING} levels a spec may nest: flatten them",
    )


def _located(exc: UnexpectedInput, source: str, file: str) -> ArchError:
    line, col = exc.line or 1, exc.column or 1
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = source[pos] if pos < len(source) else ""
        span = Span(file, line, col, line, col + 1, source)
        if ch == '"':
            what = "path" if source_line(source, line).lstrip().startswith("import") else "string"
            return ArchError("unterminated string", span, f"close the {what} with '\"' on the same line")
        return ArchError(
            f"unexpected character {ch!r}", span, "options are words such as k3 or key=value; comments start with '#'"
        )
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END" or line < 0:
            line, col = _end_position(source)
            open_brace = _unclosed_brace(source)
            span = Span(file, line, col, line, col + 1, source)
            if open_brace:
                return ArchError(
                    "unexpected end of file",
                    span,
                    f"the '{{' at line {open_brace[0]}, column {open_brace[1]} is never closed",
                )
            return ArchError("unexpected end of file", span, _expected(exc.accepts or exc.expected))
        width = max(1, len(str(tok))) if tok.type != "_NL" else 1
        what = "end of line" if tok.type == "_NL" else repr(str(tok))
        span = Span(file, line, col, line, col + width, source)
        if tok.type == "RBRACE" and source[: tok.start_pos].rstrip().endswith("{"):
            return ArchError("an empty choice", span, "a choice takes at least one value, e.g. {3,5}")
        if tok.type == "RBRACE" and set(exc.accepts or exc.expected) == {"COMMA"}:
            return ArchError("a choice of one word", span, "give the word alone, or more values: {relu,hard_swish}")
        return ArchError(f"unexpected {what}", span, _expected(exc.accepts or exc.expected))
    return ArchError(str(exc), Span(file, line, col, line, col + 1, source))


def _expected(terminals: set[str] | frozenset[str]) -> str | None:
    names = sorted({_TERMINAL_WORDS.get(t, t) for t in terminals if not t.startswith("__")})
    return ("expected " + ", ".join(names)) if names else None


def _end_position(source: str) -> tuple[int, int]:
    lines = source.split("\n")
    return len(lines), len(lines[-1]) + 1


def _unclosed_brace(source: str) -> tuple[int, int] | None:
    """The position of the last '{' without its '}', ignoring comments and strings."""
    stack: list[tuple[int, int]] = []
    for lineno, text in enumerate(source.split("\n"), 1):
        in_string = False
        for col, ch in enumerate(text, 1):
            if ch == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif ch == "#":
                break
            elif ch == "{":
                stack.append((lineno, col))
            elif ch == "}" and stack:
                stack.pop()
    return stack[-1] if stack else None
