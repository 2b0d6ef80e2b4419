"""Spans (1-based lines, columns in code points) to LSP positions (0-based, columns in the code
units the client and server agreed on: UTF-16 unless the client offers UTF-8 or UTF-32).

Lines are split at "\\n" only, as the lexer counts them (`errors.source_line`)."""

from __future__ import annotations

from lsprotocol import types as lsp

from ..errors import Span, source_line


def units(text: str, encoding: str) -> int:
    """The length of `text` in the code units of `encoding`."""
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len(text)
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def column(line: str, character: int, encoding: str) -> int:
    """The code-point column (0-based) of the client's `character` on `line`; a position past
    the end of the line is its end, one inside a character is that character."""
    count = 0
    for i, ch in enumerate(line):
        count += units(ch, encoding)
        if count > character:
            return i
    return len(line)


def span_range(span: Span, encoding: str) -> lsp.Range:
    def at(line: int, col: int) -> lsp.Position:
        text = source_line(span.source, line)
        return lsp.Position(max(line - 1, 0), units(text[: max(col - 1, 0)], encoding))

    return lsp.Range(at(span.line, span.col), at(span.end_line, span.end_col))


def cursor(text: str, position: lsp.Position, encoding: str) -> tuple[int, int]:
    """The 1-based line and column of the character at `position`, as spans count them."""
    return position.line + 1, column(source_line(text, position.line + 1), position.character, encoding) + 1


def text_before(text: str, at: tuple[int, int]) -> str:
    """`text` up to the 1-based line and column `at` (what completion reads)."""
    lines = text.split("\n")
    line, col = at
    return "\n".join([*lines[: line - 1], source_line(text, line)[: col - 1]])


def whole(text: str, encoding: str) -> lsp.Range:
    """The range of a whole document."""
    lines = text.split("\n")
    return lsp.Range(lsp.Position(0, 0), lsp.Position(len(lines) - 1, units(lines[-1], encoding)))
