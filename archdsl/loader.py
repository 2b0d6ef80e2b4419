"""Read a spec file and the files it imports, and index their definitions by name.

Import paths are relative to the importing file. Cycles are reported with the chain that
forms them, and a path that leaves the project tree is refused unless a wider root is given.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from .errors import ArchError
from .syntax import BlockDef, Import, Module, NetworkDef, NetworkInst, parse
from .vocabulary import KINDS

NetworkNode = Union[NetworkDef, NetworkInst]
_ROOT_MARKERS = ("pyproject.toml", ".git", "archdsl.toml")


@dataclass
class Definitions:
    """Every network and block template visible from the main file."""

    main: Module
    networks: dict[str, NetworkNode] = field(default_factory=dict)
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # main first, then imports in load order
    loaded: set[Path] = field(default_factory=set)

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
    except ValueError:
        return str(path)


def read_spec(path: str | Path) -> str:
    """A spec file's text: UTF-8 on every machine, whatever the locale."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ArchError(f"cannot read spec {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ArchError(f"spec {str(path)!r} is not UTF-8 text (byte {exc.start})") from None


def load_file(path: str | Path, root: Path | None = None) -> Definitions:
    return load_text(read_spec(path), str(path), root)


def load_text(text: str, file: str, root: Path | None = None) -> Definitions:
    """Parse `text` (shown as `file`) and everything it imports."""
    main = parse(text, file)
    base = Path(file).resolve().parent
    defs = Definitions(main, sources=[text])
    _index(defs, main)
    _follow_imports(defs, main, base, root.resolve() if root else project_root(base), [Path(file).resolve()])
    return defs


def _follow_imports(defs: Definitions, module: Module, base: Path, root: Path, chain: list[Path]) -> None:
    for item in module.items:
        if not isinstance(item, Import):
            continue
        target = (base / item.path).resolve()
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
        if not target.is_file():
            raise ArchError(f"cannot import {item.path!r}: no such file", item.span)
        text = read_spec(target)
        sub = parse(text, display_path(target))
        defs.sources.append(text)
        defs.loaded.add(target)
        _index(defs, sub)
        _follow_imports(defs, sub, target.parent, root, chain + [target])


def _index(defs: Definitions, module: Module) -> None:
    for item in module.items:
        if isinstance(item, (NetworkDef, NetworkInst)):
            table: dict = defs.networks
        elif isinstance(item, BlockDef):
            table = defs.blocks
        else:
            continue
        if isinstance(item, BlockDef) and item.name in KINDS:
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
