"""Read a spec file and the files it imports, and index their definitions by name.

Import paths are relative to the importing file. Cycles are reported with the chain that
forms them, and a path that leaves the project tree is refused unless a wider root is given.
Only regular files are read (a FIFO or a device would block or never end), up to
`MAX_SPEC_BYTES` each, `MAX_IMPORT_DEPTH` imports deep and `MAX_IMPORTED_FILES` in all.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..errors import ArchError, Span
from ..input_files import open_regular
from ..limits import MAX_IMPORT_DEPTH, MAX_IMPORTED_FILES, MAX_SPEC_BYTES
from .syntax import BlockDef, Import, Module, NetworkDef, NetworkInst, parse
from .vocabulary import WORDS

NetworkNode = Union[NetworkDef, NetworkInst]
_ROOT_MARKERS = ("pyproject.toml", ".git", "archdsl.toml")


@dataclass
class Definitions:
    """Every network and block template visible from the main file."""

    main: Module
    networks: dict[str, NetworkNode] = field(default_factory=dict)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # main first, then imports in load order
    modules: list[Module] = field(default_factory=list)  # their syntax trees, in the same order
    loaded: set[Path] = field(default_factory=set)
    imported: list[Path] = field(default_factory=list)  # resolved paths of sources[1:], in load order

    @property
    def source_hash(self) -> str:
        # line endings normalised: a CRLF checkout of the same spec has the same hash
        digest = hashlib.sha256("\0".join(self.sources).replace("\r\n", "\n").encode())
        return digest.hexdigest()[:16]


def project_root(start: Path) -> Path:
    """The nearest directory above `start` that marks a project; `start` itself if none does."""
    start = start.resolve()
    for d in (start, *start.parents):
        if any((d / m).exists() for m in _ROOT_MARKERS):
            return d
    return start


def display_path(path: Path) -> str:
    """A path as shown in messages: relative to the working directory when below it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (ValueError, OSError):  # OSError: the working directory is gone
        return str(path)


def read_spec(path: str | Path, imported: Import | None = None) -> str:
    """A spec file's text: UTF-8 on every machine, whatever the locale; a leading byte-order mark
    dropped. Only a regular file of at most `MAX_SPEC_BYTES` is read. For an `imported` file,
    errors are located at its import statement, or in the file where its text is not UTF-8."""

    def refuse(why: str) -> ArchError:
        if imported is None:
            return ArchError(f"cannot read spec {str(path)!r}: {why}")
        return ArchError(f"cannot import {imported.path!r}: {why}", imported.span)

    try:
        with open_regular(path, MAX_SPEC_BYTES, "a spec may have", refuse) as (f, _):
            data = f.read(MAX_SPEC_BYTES + 1)  # bounded even where the size lies (/proc)
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    except ValueError as exc:  # a NUL in the path
        raise refuse(str(exc)) from None
    if len(data) > MAX_SPEC_BYTES:
        raise refuse(f"it has more than the {MAX_SPEC_BYTES:,} bytes a spec may have")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a byte-order mark: accepted, as Python does
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = str(path) if imported is None else display_path(Path(path))
        raise _not_utf8(data[bom:], exc.start, bom, shown) from None


def _not_utf8(data: bytes, start: int, skipped: int, file: str) -> ArchError:
    """The error at the first byte that is not UTF-8 (`start`, after `skipped` bytes of a
    byte-order mark), located at its line and column."""
    line_start = data.rfind(b"\n", 0, start) + 1
    line, col = data.count(b"\n", 0, start) + 1, len(data[line_start:start].decode("utf-8")) + 1
    span = Span(file, line, col, line, col + 1, data.decode("utf-8", "replace"))
    return ArchError(f"spec {file!r} is not UTF-8 text (byte {skipped + start})", span, "save the file as UTF-8")


class SpecFiles:
    """Where the loader gets a file's text and syntax tree: the disk and the parser. The language
    server gives its open buffers' unsaved text instead, and trees from its cache."""

    def read(self, path: Path, imported: Import) -> str:
        return read_spec(path, imported)

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def parse(self, text: str, file: str) -> Module:
        return parse(text, file)


DISK = SpecFiles()


def load_file(path: str | Path, root: Path | None = None) -> Definitions:
    return load_text(read_spec(path), str(path), root)


def load_text(text: str, file: str, root: Path | None = None, files: SpecFiles = DISK) -> Definitions:
    """Parse `text` (shown as `file`) and everything it imports."""
    main = files.parse(text, file)
    base = Path(file).resolve().parent
    defs = Definitions(main, sources=[main.source], modules=[main])  # without a byte-order mark
    _index(defs, main)
    top = root.resolve() if root else project_root(base)
    _follow_imports(defs, main, base, top, [Path(file).resolve()], files)
    return defs


def _follow_imports(
    defs: Definitions, module: Module, base: Path, root: Path, chain: list[Path], files: SpecFiles
) -> None:
    for item in module.items:
        if not isinstance(item, Import):
            continue
        if "\0" in item.path:
            raise ArchError(f"cannot import {item.path!r}: a path cannot hold a NUL character", item.span)
        try:
            target = (base / item.path).resolve()
        except (RuntimeError, OSError) as exc:  # RuntimeError: a symbolic link loop before Python 3.13
            oserror = exc if isinstance(exc, OSError) and exc.errno != errno.ELOOP else None
            why = (oserror.strerror or str(oserror)) if oserror else "a symbolic link loop"
            raise ArchError(f"cannot import {item.path!r}: {why}", item.span) from None
        if target in chain:
            cycle = " -> ".join(p.name for p in chain[chain.index(target) :] + [target])
            raise ArchError(f"import cycle: {cycle}", item.span, "remove one of these imports")
        if not target.is_relative_to(root):
            raise ArchError(
                f"import {item.path!r} leaves the project tree {display_path(root)}",
                item.span,
                "keep imported specs inside the project, or pass --import-root",
            )
        if target in defs.loaded:
            continue
        if len(chain) > MAX_IMPORT_DEPTH:
            names = [p.name for p in chain]
            raise ArchError(
                f"imports nest more than {MAX_IMPORT_DEPTH} deep",
                item.span,
                " -> ".join([*names[:2], "...", *names[-2:], target.name]),
            )
        if len(defs.loaded) >= MAX_IMPORTED_FILES:
            raise ArchError(f"a spec may import at most {MAX_IMPORTED_FILES} files", item.span)
        if not files.exists(target):
            raise ArchError(f"cannot import {item.path!r}: no such file", item.span)
        text = files.read(target, item)
        sub = files.parse(text, display_path(target))
        defs.sources.append(text)
        defs.modules.append(sub)
        defs.loaded.add(target)
        defs.imported.append(target)
        _index(defs, sub)
        _follow_imports(defs, sub, target.parent, root, chain + [target], files)


def _index(defs: Definitions, module: Module) -> None:
    for item in module.items:
        if isinstance(item, (NetworkDef, NetworkInst)):
            table: dict = defs.networks
        elif isinstance(item, BlockDef):
            table = defs.blocks
        else:
            continue
        if isinstance(item, BlockDef) and item.name in WORDS:
            raise ArchError(
                f"block '{item.name}' has the name of a built-in block kind", item.name_span, "choose another name"
            )
        if item.name in defs.networks or item.name in defs.blocks:
            first = (defs.networks.get(item.name) or defs.blocks[item.name]).name_span
            raise ArchError(
                f"'{item.name}' is defined twice",
                item.name_span,
                f"first defined at {first.file}:{first.line}:{first.col}",
            )
        table[item.name] = item
