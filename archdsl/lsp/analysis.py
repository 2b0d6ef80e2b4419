"""What the compiler makes of one editor buffer: its syntax tree, the definitions it sees, every
located error, and each network it defines, resolved. The same parser, loader, lowering and
passes as `archdsl compile`; only where text comes from differs (open buffers before the disk),
and syntax trees are cached by content, so an edit re-parses only the buffer edited."""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArchError, ArchErrors, Span
from ..ir.network import Network
from ..ir.pipeline import resolve
from ..language.loader import Definitions, SpecFiles, display_path, load_text
from ..language.lower import concrete_in, lower
from ..language.syntax import Import, Module, NetworkDef
from ..limits import MAX_BLOCKS, MAX_SPEC_BYTES
from ..search.space import Space

_TOO_BIG = f"has more than the {MAX_SPEC_BYTES:,} bytes a spec may have"
_CACHED_TREES = 64  # files whose last syntax tree is kept: far more than an editing session has open
MAX_RESOLVED_BLOCKS = MAX_BLOCKS  # per analysis, over all the networks of a buffer
MAX_NETWORKS = 64  # networks (and default-complete families) analysed per buffer


class NotAnalysed(ArchError):
    """A network left out of a buffer's analysis by the bounds above: a notice, not an error."""


def too_big(text: str) -> bool:
    """Over the bound the disk's specs have (`read_spec`), which buffers keep too."""
    return len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES


class EditorFiles(SpecFiles):
    """Open buffers' text before the disk's; syntax trees (or the error a text gives) cached by
    file and content. Used from one thread at a time."""

    def __init__(self) -> None:
        self.open_texts: dict[Path, str] = {}  # set before each analysis
        self.importer: dict[Path, Path] = {}  # the last analysis's imported file -> the file importing it
        self._trees: OrderedDict[str, tuple[str, Module | ArchError]] = OrderedDict()  # file -> its last text

    def read(self, path: Path, imported: Import) -> str:
        self.importer[path] = span_path(imported.span)
        text = self.open_texts.get(path)
        if text is None:
            return super().read(path, imported)
        if too_big(text):
            raise ArchError(f"cannot import {imported.path!r}: {_TOO_BIG}", imported.span)
        return text

    def exists(self, path: Path) -> bool:
        return path in self.open_texts or super().exists(path)

    def parse(self, text: str, file: str) -> Module:
        """The tree of `text`, from the cache when it is the text `file` had last time."""
        cached = self._trees.get(file)
        if cached is None or cached[0] != text:
            try:
                cached = (text, super().parse(text, file))
            except ArchError as e:
                cached = (text, e)
            self._trees[file] = cached
            if len(self._trees) > _CACHED_TREES:
                self._trees.popitem(last=False)
        self._trees.move_to_end(file)
        tree = cached[1]
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
    spaces: list[tuple[Space, int]] = field(default_factory=list)  # search spaces, the candidate shown
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
    if too_big(text):
        out.errors = [ArchError(f"this buffer {_TOO_BIG}", Span(out.file, 1, 1, 1, 1, text[:1000]))]
        return out
    try:
        out.module = files.parse(text, out.file)
        out.defs = load_text(text, out.file, files=files)
        _resolve_networks(out)
    except (ArchError, ArchErrors) as e:
        out.errors = _each(e)
    except Exception as e:  # a bug of ours: said where the user sees it, and the server goes on
        out.errors.append(ArchError(f"internal error: {type(e).__name__}: {e}", Span(out.file, 1, 1, 1, 1, text),
                                    "please report it, with this spec"))  # fmt: skip
    return out


def _resolve_networks(out: Analysis) -> None:
    """Each network the buffer defines, as far as `MAX_RESOLVED_BLOCKS` blocks or `MAX_NETWORKS`
    networks in all (the others are not analysed: a buffer stays quick however many it defines)."""
    assert out.defs is not None
    blocks = 0
    for index, name in enumerate(_networks(out.defs)):
        if blocks > MAX_RESOLVED_BLOCKS or index >= MAX_NETWORKS:
            why = (f"the networks above it have more than {MAX_RESOLVED_BLOCKS:,} blocks" if blocks > MAX_RESOLVED_BLOCKS
                   else f"the editor analyses a buffer's first {MAX_NETWORKS} networks")  # fmt: skip
            out.errors.append(NotAnalysed(f"network '{name}' not analysed here: {why}", out.defs.networks[name].name_span,
                                          f"`archdsl compile --network {name}` checks it"))  # fmt: skip
            continue
        try:
            net = _resolved(out, name)
        except (ArchError, ArchErrors) as e:
            out.errors += [x for x in _each(e) if _key(x) not in {_key(y) for y in out.errors}]
        else:
            out.networks.append(net)
            blocks += len(net.blocks())


_TRIED_CANDIDATES = 16  # of a space whose first candidate does not build, before saying why


def _resolved(out: Analysis, name: str) -> Network:
    """The network; of a search space (every value of every choice checked first: a bad one is a
    diagnostic where it stands), the first candidate that builds, from candidate 0 then a few
    drawn at random; where none does, candidate 0's error."""
    assert out.defs is not None
    space = Space(out.defs, name)
    if not space.dimensions:
        return resolve(lower(out.defs, name), out.file)
    space.check()
    tries = [0, *random.Random(0).sample(range(1, space.size), min(space.size - 1, _TRIED_CANDIDATES))] \
        if space.size < 2**62 else [0, *(random.Random(i).randrange(space.size) for i in range(_TRIED_CANDIDATES))]  # fmt: skip
    first: ArchError | ArchErrors | None = None
    for index in tries:
        try:
            net = resolve(space.candidate(index).lower(), out.file)
        except (ArchError, ArchErrors) as e:
            if first is None:
                first = e
                for x in _each(e):
                    x.add_note("in candidate 0 of the space, every choice at its first value")
            continue
        out.spaces.append((space, index))
        return net
    assert first is not None
    raise first


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
