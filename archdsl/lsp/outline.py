"""The document outline: networks, families and templates; their stages and blocks, as written."""

from __future__ import annotations

from lsprotocol import types as lsp

from ..language.fmt import item_text, params_text
from ..language.syntax import BlockDef, Import, Module, NetworkDef, NetworkInst, Stmt
from ..language.vocabulary import WORDS
from .positions import span_range

_SECTIONS = ("stem", "stage", "head", "defaults")


def outline(module: Module, encoding: str) -> list[lsp.DocumentSymbol]:
    out = []
    for item in module.items:
        if isinstance(item, Import):
            continue
        rng, name_rng = span_range(item.span, encoding), span_range(item.name_span, encoding)
        if isinstance(item, NetworkInst):
            detail, kind, children = f"= {item.base}(...)", lsp.SymbolKind.Object, []
        else:
            params = params_text(item.params) if item.params else ""
            family = isinstance(item, NetworkDef) and item.params is not None
            kind = lsp.SymbolKind.Function if isinstance(item, BlockDef) or family else lsp.SymbolKind.Class
            detail = ("block" if isinstance(item, BlockDef) else "family" if family else "network") + params
            children = [_statement(s, encoding) for s in item.body if s.body is not None or _listed(s, item)]
        out.append(lsp.DocumentSymbol(item.name, kind, rng, name_rng, detail=detail, children=children))
    return out


def _listed(stmt: Stmt, item: NetworkDef | BlockDef) -> bool:
    """A network lists its sections (and a one-line stem); a template, its blocks."""
    return isinstance(item, BlockDef) or stmt.head == "stem" or stmt.head in WORDS


def _statement(stmt: Stmt, encoding: str) -> lsp.DocumentSymbol:
    options = " ".join(item_text(i) for i in stmt.items)
    if stmt.body is not None and stmt.head in _SECTIONS:
        name = f"{stmt.head} {options}".strip()
        kind = lsp.SymbolKind.Namespace
        children = [_statement(s, encoding) for s in stmt.body]
    else:
        name, kind, children = f"{stmt.head} {options}".strip(), lsp.SymbolKind.Field, []
    return lsp.DocumentSymbol(
        name, kind, span_range(stmt.span, encoding), span_range(stmt.head_span, encoding), children=children
    )
