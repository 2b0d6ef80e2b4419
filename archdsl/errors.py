"""The one error type of archdsl: a located message with a caret and a hint.

Parse, semantic and backend errors all become `ArchError`; several can travel together in
`ArchErrors`. Rendering follows compilers: `file:line:col: error: msg`, the source line, a caret
under the span, then the hint and any notes (`in block 'mb' used at ...`: where a template or
family containing the mistake was used). Nothing from a spec reaches the terminal raw: control,
format (bidi) and other unprintable characters are shown escaped, with the caret kept under them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Span:
    """A source range; lines and columns are 1-based, `end_col` is exclusive. `notes` say where
    the definition holding the range was used (innermost first); they follow the span into the
    IR, so an error found by a later pass shows them too; `uses` are the places they name."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    source: str = field(default="", repr=False, compare=False)
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)
    uses: tuple[Span, ...] = field(default=(), repr=False, compare=False)  # the notes' places, where they have one

    def line_text(self) -> str:
        return source_line(self.source, self.line)

    def noted(self, note: str, used_at: Span) -> Span:
        """This span with one more (outer) note, which names the place `used_at` (a template's or
        family's use: where editors show what the definition gives there)."""
        notes, uses = (*self.notes, note), (*self.uses, used_at)
        return Span(self.file, self.line, self.col, self.end_line, self.end_col, self.source, notes, uses)

    def contains(self, other: Span) -> bool:
        return (
            other.file == self.file
            and (self.line, self.col) <= (other.line, other.col)
            and (other.end_line, other.end_col) <= (self.end_line, self.end_col)
        )


def source_line(text: str, number: int) -> str:
    """Line `number` (1-based) of `text` without its line ending, "" past the end; lines end at
    "\n" only, as the lexer counts them (not splitlines: a form feed or U+2028 ends none)."""
    lines = text.split("\n")
    return lines[number - 1].rstrip("\r") if 0 < number <= len(lines) else ""


class ArchError(Exception):
    """A user-facing error located in a spec file."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.notes: list[str] = list(span.notes) if span is not None else []
        self.uses: list[Span] = list(span.uses) if span is not None else []  # the places notes name

    def add_note(self, note: str, used_at: Span | None = None) -> None:
        """Say where the definition holding the mistake was used (call innermost first).
        (`used_at` is optional only as BaseException.add_note's override.)"""
        if note not in self.notes:
            self.notes.append(note)
            if used_at is not None:
                self.uses.append(used_at)

    def render(self) -> str:
        tail = ([f"  hint: {self.hint}"] if self.hint else []) + [f"  note: {n}" for n in self.notes]
        if self.span is None:
            return "\n".join(escaped(line) for line in [f"error: {self.message}", *tail])
        s = self.span
        out = [escaped(f"{s.file}:{s.line}:{s.col}: error: {self.message}")]
        text = s.line_text()
        if text:
            out += _source_and_caret(text, s)
        return "\n".join(out + [escaped(line) for line in tail])

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


def add_note(error: ArchError | ArchErrors, note: str, used_at: Span) -> None:
    """Add `note`, which names the use at `used_at` of a definition, to `error` (to each, for
    several), except to those located inside that use."""
    for e in error.errors if isinstance(error, ArchErrors) else (error,):
        if e.span is None or not used_at.contains(e.span):
            e.add_note(note, used_at)


# ---- showing spec text safely -------------------------------------------------------------

_WINDOW = 160  # longer source lines are cut to this many characters around the span


def _shown(ch: str) -> tuple[str, str]:
    """How one character of a source line is shown, and what lies under it on the caret line."""
    if ch == "\t":
        return ch, ch  # tabs stay, so what follows lines up however the terminal expands them
    if not ch.isprintable():
        text = ascii(ch)[1:-1]  # \x00, \x1b, \u202e: as Python writes them
        return text, " " * len(text)
    import unicodedata  # only on the error path

    if unicodedata.combining(ch):
        return ch, ""
    return ch, "  " if unicodedata.east_asian_width(ch) in ("W", "F") else " "


def escaped(text: str) -> str:
    """`text` with every unprintable character (but tab) escaped as Python writes it."""
    return text if text.isprintable() else "".join(_shown(ch)[0] for ch in text)


def _source_and_caret(text: str, s: Span) -> list[str]:
    start = min(max(s.col - 1, 0), len(text))
    end = min(s.end_col - 1, len(text)) if s.end_line == s.line else len(text)
    end = max(end, start + 1)
    first, last = 0, len(text)  # the part of the line shown
    if len(text) > _WINDOW:
        first = max(0, min(start - _WINDOW // 2, len(text) - _WINDOW))
        last = min(len(text), first + _WINDOW)
    line, under = ["..."] if first else [], ["   "] if first else []
    caret = 0
    for i in range(first, last):
        shown, blank = _shown(text[i])
        line.append(shown)
        if i < start:
            under.append(blank)
        elif i < end:
            caret += max(1, len(blank))  # tabs and escapes count as wide as they are shown
    if last < len(text):
        line.append("...")
    return ["  " + "".join(line), "  " + "".join(under) + "^" * max(1, caret)]


class Suggestion(str):
    """A hint that names the one word meant: editors offer to put `word` in the error's place."""

    word: str

    def __new__(cls, word: str) -> Suggestion:
        hint = super().__new__(cls, f"did you mean '{word}'?")
        hint.word = word
        return hint


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest valid choice, or listing the choices when none is close."""
    import difflib  # only on the error path

    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return Suggestion(close[0])
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
