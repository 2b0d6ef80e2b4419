"""What is under the cursor in a syntax tree: the top-level item, the statements around it
(outermost first), and the option or word the cursor is on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from ..errors import Span
from ..language.syntax import BlockDef, Comment, Item, Module, NetworkDef, NetworkInst, Stmt, TopItem

Position = tuple[int, int]  # 1-based line and column, as spans count them


def within(span: Span, at: Position) -> bool:
    """`at` is in `span` or just after its end (a cursor after a word is on it)."""
    return (span.line, span.col) <= at <= (span.end_line, span.end_col)


@dataclass
class Context:
    item: TopItem | None = None
    stmts: list[Stmt] = field(default_factory=list)  # enclosing statements, outermost first
    option: Item | None = None  # the option of the innermost statement at the cursor

    @property
    def stmt(self) -> Stmt | None:
        return self.stmts[-1] if self.stmts else None

    @property
    def parent(self) -> Stmt | None:
        return self.stmts[-2] if len(self.stmts) > 1 else None


def context_at(module: Module, at: Position) -> Context:
    """The syntax around `at`; on a line that only starts a statement (its indentation, or past
    its end), that statement."""
    ctx = Context()
    for item in module.items:
        if within(item.span, at) or item.span.line == at[0]:
            ctx.item = item
            break
    body = ctx.item.body if isinstance(ctx.item, (NetworkDef, BlockDef)) else ()
    while body:
        inside = [s for s in body if within(s.span, at)] or [s for s in body if s.span.line == at[0]]
        if not inside:
            break
        ctx.stmts.append(inside[0])
        body = inside[0].body or ()
    if ctx.stmt is not None:
        ctx.option = next((i for i in ctx.stmt.items if within(i.span, at)), None)
    return ctx


def statements(body: tuple[Stmt, ...]) -> Iterator[Stmt]:
    """Every statement of `body`, nested ones after the one holding them."""
    for stmt in body:
        yield stmt
        yield from statements(stmt.body or ())


def comment_above(module: Module, line: int) -> str:
    """The comment lines directly above `line` (a definition's documentation), without `#`."""
    text = module.source.split("\n")
    by_line: dict[int, Comment] = {c.line: c for c in module.comments if not text[c.line - 1][: c.col - 1].strip()}
    lines: list[str] = []
    while line - 1 in by_line:
        line -= 1
        lines.insert(0, by_line[line].text.lstrip("#").strip())
    return "\n".join(lines)


def definition_name(item: TopItem) -> tuple[str, Span] | None:
    """The name a top-level item defines, and where it is written."""
    if isinstance(item, (NetworkDef, NetworkInst, BlockDef)):
        return item.name, item.name_span
    return None
