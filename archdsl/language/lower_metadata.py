"""Lower a network's `metadata { ... }`: the text deployment formats carry with the model
(CoreML's author, license, short description and version; ONNX's doc_string and
metadata_props). Strings are the language's only free text, and they end up in generated code
and model files, so this is also where they are refused outside `metadata`, and where each one
is checked printable and bounded (the lexer already keeps `"` and newlines out of them; a
backslash is kept as written, and backends quote the text with repr or JSON)."""

from __future__ import annotations

from ..errors import ArchError, Span, did_you_mean
from ..ir.nodes import Metadata
from ..limits import MAX_METADATA_CHARS
from .syntax import Stmt, Str

SETTINGS = ("author", "license", "description", "version")
_HINTS = {"author": 'author "Jane Doe"', "license": 'license "Apache-2.0"',
          "description": 'description "MobileNetV4 conv small, our retrain"', "version": 'version "1.2"'}  # fmt: skip


def lower_metadata(body: tuple[Stmt, ...]) -> Metadata:
    out: dict[str, str] = {}
    first: dict[str, Span] = {}
    for stmt in body:
        if stmt.head not in SETTINGS:
            raise ArchError(
                f"unknown metadata setting '{stmt.head}'", stmt.head_span, did_you_mean(stmt.head, SETTINGS)
            )
        if stmt.head in out:
            raise ArchError(f"'{stmt.head}' is set twice", stmt.head_span, f"first set at line {first[stmt.head].line}")
        wrong = [i for n, i in enumerate(stmt.items) if n or not isinstance(i, Str)]  # in source order
        if stmt.body is not None or not stmt.items or wrong:
            span = wrong[0].span if wrong else stmt.head_span
            raise ArchError(f"'{stmt.head}' takes one quoted string", span, _HINTS[stmt.head])
        item = stmt.items[0]
        assert isinstance(item, Str)
        out[stmt.head], first[stmt.head] = _checked(stmt.head, item), stmt.head_span
    return Metadata.make(**out)


def _checked(setting: str, s: Str) -> str:
    """The string's text, if it is fit to copy into code and model files."""
    if not s.text.strip():
        raise ArchError(f"'{setting}' is empty", s.span, _HINTS[setting])
    if len(s.text) > MAX_METADATA_CHARS:
        raise ArchError(f"'{setting}' is {len(s.text):,} characters long", s.span,
                        f"a metadata text has at most {MAX_METADATA_CHARS} characters")  # fmt: skip
    for i, ch in enumerate(s.text):
        if not ch.isprintable():  # control, format (bidi) and separator characters; tabs too
            col = s.span.col + 1 + i  # after the opening quote; a string stays on one line
            at = Span(s.span.file, s.span.line, col, s.span.line, col + 1, s.span.source, s.span.notes, s.span.uses)
            raise ArchError(f"'{setting}' has the unprintable character {ascii(ch)}", at,
                            "metadata is printable text: letters, digits, spaces and punctuation")  # fmt: skip
    return s.text


def refuse_strings(stmt: Stmt) -> None:
    """Raise at the first string in `stmt` or the statements inside it: text belongs in `metadata`."""
    for item in stmt.items:
        if isinstance(item, Str):
            raise ArchError("a string belongs only in a network's metadata", item.span,
                            'options are words such as k3 or key=value; text goes in metadata { author "Jane Doe" }')  # fmt: skip
    for inner in stmt.body or ():
        refuse_strings(inner)
