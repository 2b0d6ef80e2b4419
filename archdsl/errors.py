"""The one error type of archdsl: a located message with a caret and a hint.

Parse, semantic and backend errors all become `ArchError`; several can travel together in
`ArchErrors`. Rendering follows compilers: `file:line:col: error: msg`, the source line, a caret
under the span, then the hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Span:
    """A source range; lines and columns are 1-based, `end_col` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    source: str = field(default="", repr=False, compare=False)

    def line_text(self) -> str:
        lines = self.source.split("\n")  # as the lexer counts lines (not splitlines: \f, \u2028)
        return lines[self.line - 1].rstrip("\r") if 0 < self.line <= len(lines) else ""


class ArchError(Exception):
    """A user-facing error located in a spec file."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def render(self) -> str:
        if self.span is None:
            head = f"error: {self.message}"
            return head + (f"\n  hint: {self.hint}" if self.hint else "")
        s = self.span
        out = [f"{s.file}:{s.line}:{s.col}: error: {self.message}"]
        text = s.line_text()
        if text:
            width = (s.end_col - s.col) if s.end_line == s.line else len(text) - s.col + 1
            out.append(f"  {text}")
            indent = "".join(ch if ch == "\t" else " " for ch in text[: s.col - 1])  # tabs line up
            out.append("  " + indent + "^" * max(1, width))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class UsageError(ArchError):
    """A command line that cannot be carried out as written (exit status 2): a bad argument
    value, an output path that names a directory, an unknown backend or network."""


class ArchErrors(Exception):
    """Several errors reported at once, in source order."""

    def __init__(self, errors: Iterable[ArchError]):
        self.errors = sorted(errors, key=_order)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


def _order(e: ArchError) -> tuple[str, int, int]:
    return (e.span.file, e.span.line, e.span.col) if e.span else ("", 0, 0)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest valid choice, or listing the choices when none is close."""
    import difflib  # only on the error path

    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
