"""What the compiler makes of one editor buffer: its syntax tree, the definitions it sees, every
located error, and each network it defines, resolved. The same parser, loader, lowering and
passes as `archdsl compile`; only where text comes from differs (open buffers before the disk),
and syntax trees are cached by content, so an edit re-parses only the buffer edited."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchError, ArchErrors, Span
from ..ir.network import Network
from ..ir.pipeline import resolve
from ..language.loader import Definitions, SpecFiles, display_path, load_text
from ..language.lower import concrete_in, lower
from ..language.syntax import Import, Module, NetworkDef
from ..limits import MAX_SPEC_BYTES

_TOO_BIG = f"has more than the {MAX_SPEC_BYTES:,} bytes a spec may have"
_CACHED_TREES = 64  # syntax trees kept: far more files than an editing session has open


class EditorFiles(SpecFiles):
    """Open buffers' text before the disk's; syntax trees (or the error a text gives) cached by
    file and content. Used from one thread at a time."""

    def __init__(self) -> None:
        self.open_texts: dict[Path, str] = {}  # set before each analysis
        self.importer: dict[Path, Path] = {}  # the last analysis's imported file -> the file importing it
        self._trees: OrderedDict[tuple[str, str], Module | ArchError] = OrderedDict()

    def read(self, path: Path, imported: Import) -> str:
        self.importer[path] = span_path(imported.span)
        text = self.open_texts.get(path)
        if text is None:
            return super().read(path, imported)
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
            raise ArchError(f"cannot import {imported.path!r}: {_TOO_BIG}", imported.span)
        return text

    def parse(self, text: str, file: str) -> Module:
        key = (file, text)
        tree = self._trees.get(key)
        if tree is None:
            try:
                tree = super().parse(text, file)
            except ArchError as e:
                tree = e
            self._trees[key] = tree
            if len(self._trees) > _CACHED_TREES:
                self._trees.popitem(last=False)
        self._trees.move_to_end(key)
        if isinstance(tree, ArchError):  # a fresh copy: later stages add notes to what they raise
            raise ArchError(tree.message, tree.span, tree.hint)
        return tree


@dataclass
class Analysis:
    path: Path  # absolute
    file: str  # as spans name it (the CLI's way: relative to the working directory when below it)
    text: str
    module: Module | None = None  # None where the text does not parse
    defs: Definitions | None = None  # None where an import fails
    errors: list[ArchError] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)  # each that resolves
    importer: dict[Path, Path] = field(default_factory=dict)  # imported file -> the file importing it
    seen: dict[Path, str] = field(default_factory=dict)  # the open buffers' texts it was given

    def in_file(self, span: Span | None) -> bool:
        return span is not None and span_path(span) == self.path


def span_path(span: Span) -> Path:
    """The file a span is in (span files are shown relative to the working directory)."""
    return Path(os.path.abspath(span.file))


def analyse(path: Path, text: str, files: EditorFiles, open_texts: dict[Path, str]) -> Analysis:
    """`text` (the buffer of `path`) analysed, reading imports from `open_texts` before the disk."""
    out = Analysis(path, display_path(path), text, seen=open_texts)
    files.open_texts, files.importer = open_texts, {}
    out.importer = files.importer
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:  # the disk's bound, for buffers too
        out.errors = [ArchError(f"this buffer {_TOO_BIG}", Span(out.file, 1, 1, 1, 1, text[:1000]))]
        return out
    try:
        out.module = files.parse(text, out.file)
        out.defs = load_text(text, out.file, files=files)
    except (ArchError, ArchErrors) as e:
        out.errors = _each(e)
        return out
    for name in _networks(out.defs):
        try:
            out.networks.append(resolve(lower(out.defs, name), out.file))
        except (ArchError, ArchErrors) as e:
            out.errors += [x for x in _each(e) if _key(x) not in {_key(y) for y in out.errors}]
    return out


def _networks(defs: Definitions) -> list[str]:
    """The main file's networks that compile as they are, and its families whose parameters all
    have defaults (so a family's body is checked while it is written)."""
    families = [i for i in defs.main.items if isinstance(i, NetworkDef) and i.params]
    ready = [f.name for f in families if all(p.default is not None for p in f.params or ())]
    return [*concrete_in(defs), *ready]


def _each(e: ArchError | ArchErrors) -> list[ArchError]:
    return list(e.errors) if isinstance(e, ArchErrors) else [e]


def _key(e: ArchError) -> tuple:
    s = e.span
    return (e.message, s.file, s.line, s.col) if s else (e.message,)
