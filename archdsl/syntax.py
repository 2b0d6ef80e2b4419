"""The syntax tree of a spec file: small frozen nodes that remember their source span.

`parse(source, file)` turns text into a `Module`. Spans are excluded from equality, so two
trees compare equal when they say the same thing however they were laid out; that is what
`parse(fmt(x)) == parse(x)` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from .errors import ArchError, Span
from .grammar import parse_tree

_NO_SPAN = Span("<none>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=_NO_SPAN, compare=False, repr=False)


# ---- expressions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    text: str  # as written, so formatting never changes a number's spelling
    span: Span = _span()

    @property
    def value(self) -> int | float:
        return int(self.text) if self.text.isdigit() else float(self.text)


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True)
class Shape:
    dims: tuple[int, ...]
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * /
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span = _span()


Expr = Union[Num, Name, Shape, BinOp, Neg]

# ---- statements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A bare word: a block kind, a flag (`skip`), a symbol (`relu`) or a compact option (`k3`)."""

    word: str
    span: Span = _span()


@dataclass(frozen=True)
class KwArg:
    key: str
    value: Expr
    span: Span = _span()
    key_span: Span = _span()


@dataclass(frozen=True)
class Literal:
    """A positional value: a number, shape or string, or any expression in parentheses."""

    value: Expr
    span: Span = _span()


Item = Union[Flag, KwArg, Literal]


@dataclass(frozen=True)
class Stmt:
    head: str
    items: tuple[Item, ...]
    body: tuple[Stmt, ...] | None
    span: Span = _span()
    head_span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Import:
    path: str
    span: Span = _span()


@dataclass(frozen=True)
class NetworkDef:
    name: str
    params: tuple[Param, ...] | None  # None: a plain network; () or more: a family
    body: tuple[Stmt, ...]
    span: Span = _span()
    name_span: Span = _span()


@dataclass(frozen=True)
class NetworkInst:
    """`network lite2 = efficientnet_lite(width=1.1, ...)`: one member of a family."""

    name: str
    base: str
    args: tuple[KwArg, ...]
    span: Span = _span()
    name_span: Span = _span()
    base_span: Span = _span()


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()
    name_span: Span = _span()


TopItem = Union[Import, NetworkDef, NetworkInst, BlockDef]


@dataclass(frozen=True)
class Comment:
    text: str
    line: int
    col: int


@dataclass(frozen=True)
class Module:
    file: str = field(compare=False)
    items: tuple[TopItem, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False, repr=False)


# ---- tree -> nodes -------------------------------------------------------------------------


class _ToNodes(Transformer):
    def __init__(self, file: str, source: str):
        super().__init__()
        self.file, self.source = file, source

    def _tok(self, tok: Token) -> Span:
        assert tok.line is not None and tok.column is not None  # the LALR lexer always sets positions
        return Span(
            self.file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column, self.source
        )

    def _name(self, tok: Token) -> str:
        """A word used as a name: no compact numeric suffix such as the one in `k5/3`."""
        if not str(tok).isidentifier():
            raise ArchError(f"'{tok}' is not a valid name", self._tok(tok), "names are letters, digits and '_'")
        return str(tok)

    def _meta(self, meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column, self.source)

    def start(self, children):
        return list(children)

    def import_stmt(self, c):
        (tok,) = c
        return Import(str(tok)[1:-1], self._tok(tok))

    @v_args(meta=True)
    def network_def(self, meta, c):
        name, params, body = c if len(c) == 3 else (c[0], None, c[1])
        return NetworkDef(self._name(name), params, body, self._meta(meta), self._tok(name))

    @v_args(meta=True)
    def network_inst(self, meta, c):
        name, base, args = c
        return NetworkInst(self._name(name), self._name(base), args, self._meta(meta), self._tok(name), self._tok(base))

    @v_args(meta=True)
    def block_def(self, meta, c):
        name, params, body = c if len(c) == 3 else (c[0], (), c[1])
        return BlockDef(self._name(name), params, body, self._meta(meta), self._tok(name))

    def param_list(self, c):
        return _unique(tuple(p for p in c if p is not None), "parameter")

    @v_args(meta=True)
    def param(self, meta, c):
        name, default = c
        return Param(self._name(name), default, self._meta(meta))

    def arg_list(self, c):
        return _unique(tuple(a for a in c if a is not None), "argument")

    @v_args(meta=True)
    def arg(self, meta, c):
        name, value = c
        return KwArg(self._name(name), value, self._meta(meta), self._tok(name))

    def body(self, c):
        return tuple(c)

    @v_args(meta=True)
    def stmt(self, meta, c):
        head, *rest = c
        body = rest.pop() if rest and isinstance(rest[-1], tuple) else None
        return Stmt(str(head), tuple(rest), body, self._meta(meta), self._tok(head))

    @v_args(meta=True)
    def kwarg(self, meta, c):
        key, value = c
        return KwArg(self._name(key), value, self._meta(meta), self._tok(key))

    def flag(self, c):
        (tok,) = c
        return Flag(str(tok), self._tok(tok))

    # Literals appear both as items and inside expressions; items wrap them in `Literal`.
    def number(self, c):
        (tok,) = c
        return Num(str(tok), self._tok(tok))

    def shape(self, c):
        (tok,) = c
        return Shape(tuple(int(d) for d in str(tok).split("x")), self._tok(tok))

    def paren(self, c):
        return Literal(c[0], c[0].span)

    def name(self, c):
        (tok,) = c
        return Name(self._name(tok), self._tok(tok))

    @v_args(meta=True)
    def add(self, meta, c):
        return BinOp("+", c[0], c[1], self._meta(meta))

    @v_args(meta=True)
    def sub(self, meta, c):
        return BinOp("-", c[0], c[1], self._meta(meta))

    @v_args(meta=True)
    def mul(self, meta, c):
        return BinOp("*", c[0], c[1], self._meta(meta))

    @v_args(meta=True)
    def div(self, meta, c):
        return BinOp("/", c[0], c[1], self._meta(meta))

    @v_args(meta=True)
    def neg(self, meta, c):
        return Neg(c[0], self._meta(meta))


def _unique(items: tuple, what: str) -> tuple:
    """Parameters or arguments, each named once."""
    seen: set[str] = set()
    for item in items:
        name = item.name if isinstance(item, Param) else item.key
        if name in seen:
            raise ArchError(f"{what} '{name}' given twice", item.span, "keep one of them")
        seen.add(name)
    return items


def _wrap_literals(stmt: Stmt) -> Stmt:
    items = tuple(Literal(i, i.span) if isinstance(i, (Num, Shape)) else i for i in stmt.items)
    body = tuple(_wrap_literals(s) for s in stmt.body) if stmt.body is not None else None
    return Stmt(stmt.head, items, body, stmt.span, stmt.head_span)


def _wrap_top(item: TopItem) -> TopItem:
    if isinstance(item, (NetworkDef, BlockDef)):
        body = tuple(_wrap_literals(s) for s in item.body)
        return type(item)(item.name, item.params, body, item.span, item.name_span)  # type: ignore[arg-type]
    return item


def parse(source: str, file: str = "<string>") -> Module:
    """Parse spec text into a `Module`; raises `ArchError` located at the first mistake."""
    tree, comment_tokens = parse_tree(source, file)
    try:
        items = _ToNodes(file, source).transform(tree)
    except VisitError as exc:  # an error raised inside the transformer arrives wrapped
        if isinstance(exc.orig_exc, ArchError):
            raise exc.orig_exc from None
        raise
    assert isinstance(items, list) and not isinstance(items, Tree)
    comments = tuple(Comment(str(t).rstrip(), t.line or 0, t.column or 0) for t in comment_tokens)
    return Module(file, tuple(_wrap_top(i) for i in items), comments, source)
