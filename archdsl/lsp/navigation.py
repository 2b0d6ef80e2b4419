"""Go to definition and find references, for templates, families and `import` paths."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import Span
from ..language.syntax import BlockDef, Import, Module, NetworkDef, NetworkInst
from .analysis import Analysis, span_path
from .locate import Position, context_at, statements, within


def name_at(a: Analysis, at: Position) -> str | Import | None:
    """The template or family named at `at` (at a use or at its definition), or the import."""
    if a.module is None:
        return None
    ctx = context_at(a.module, at)
    item, stmt = ctx.item, ctx.stmt
    if isinstance(item, Import):
        return item if within(item.span, at) else None
    if stmt is not None:
        return stmt.head if within(stmt.head_span, at) and a.defs and stmt.head in a.defs.blocks else None
    if isinstance(item, NetworkInst) and within(item.base_span, at):
        return item.base
    if isinstance(item, (NetworkDef, NetworkInst, BlockDef)) and within(item.name_span, at):
        return item.name
    return None


def definition(a: Analysis, at: Position) -> Span | Path | None:
    """Where the name at `at` is defined: a span, or the imported file itself."""
    target = name_at(a, at)
    if isinstance(target, Import):
        return (a.path.parent / target.path).resolve()
    if target is None or a.defs is None:
        return None
    node = a.defs.blocks.get(target) or a.defs.networks.get(target)
    return node.name_span if node is not None else None


def references(a: Analysis, at: Position, declaration: bool, others: list[Analysis]) -> list[Span]:
    """Every place that names the template or family at `at`: in the files this buffer sees, and
    in the open buffers that see its definition (those importing its file)."""
    target = name_at(a, at)
    if not isinstance(target, str) or a.defs is None:
        return []
    node = a.defs.blocks.get(target) or a.defs.networks.get(target)
    home = span_path(node.name_span) if node is not None else a.path
    modules = {m.file: m for m in a.defs.modules}
    for other in others:
        if other.defs is not None and (other.path == home or home in other.importer):
            modules.update({m.file: m for m in other.defs.modules})
    return [s for m in modules.values() for s in _mentions(m, target, declaration)]


def _mentions(module: Module, name: str, declaration: bool) -> Iterator[Span]:
    for item in module.items:
        if isinstance(item, (NetworkDef, BlockDef, NetworkInst)) and item.name == name and declaration:
            yield item.name_span
        if isinstance(item, NetworkInst) and item.base == name:
            yield item.base_span
        if isinstance(item, (NetworkDef, BlockDef)):
            yield from (stmt.head_span for stmt in statements(item.body) if stmt.head == name)
