"""Inlay hints: at the end of each block line, its output shape and MACs."""

from __future__ import annotations

from typing import Iterator

from lsprotocol import types as lsp

from ..analysis.report import shape_text, si
from ..language.syntax import BlockDef, NetworkDef, Stmt
from .analysis import Analysis
from .figures import block_places, total
from .locate import statements
from .positions import span_range


def inlay_hints(a: Analysis, first_line: int, last_line: int, encoding: str) -> list[lsp.InlayHint]:
    """Hints for the block statements on lines `first_line`..`last_line` (1-based)."""
    if a.module is None:
        return []
    places = block_places(a)
    out = []
    for stmt in _statements(a):
        runs = places.get((stmt.span.line, stmt.span.col))
        if not runs or not first_line <= stmt.span.end_line <= last_line:
            continue
        macs = sum(total(o.blocks).macs for o in runs)
        shown = f"-> {shape_text(runs[0].blocks[-1])}" if len(runs) == 1 else f"{len(runs)} uses"
        end = span_range(stmt.span, encoding).end
        out.append(lsp.InlayHint(end, f"{shown} · {si(macs)} MACs", padding_left=True))
    return out


def _statements(a: Analysis) -> Iterator[Stmt]:
    for item in a.module.items if a.module else ():
        if isinstance(item, (NetworkDef, BlockDef)):
            yield from statements(item.body)
