"""The syntax tree of a spec file: small frozen nodes that remember their source span.

`parse(source, file)` turns text into a `Module`. Spans are excluded from equality, so two
trees compare equal when they say the same thing however they were laid out; that is what
`parse(fmt(x)) == parse(x)` checks.
"""

from __future__ import annotations

from typing import Union

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from ..errors import ArchError, Span
from ..limits import MAX_NUMBER_CHARS
from .grammar import parse_tree

_NO_SPAN = Span("<none>", 0, 0, 0, 0)
# Where a node was written, and what it was read from: never part of its meaning.
_LOCATION = frozenset({"span", "head_span", "key_span", "name_span", "base_span", "comments", "source", "file"})


class _Node:
    """An immutable syntax node whose fields are its `__slots__`; equality, hashing and repr
    ignore locations. (Plain classes rather than dataclasses: generating dataclass methods for
    every node class cost about a twentieth of a compile's start-up.)"""

    __slots__: tuple[str, ...] = ()
    _defaults: dict[str, object] = {}

    def __init__(self, *args: object, **kwargs: object) -> None:
        values = dict(zip(self.__slots__, args, strict=False))
        values.update(kwargs)
        for name in self.__slots__:
            if name not in values:
                if name not in self._defaults and name not in _LOCATION:
                    raise TypeError(f"{type(self).__name__} needs {name!r}")
                values[name] = self._defaults.get(name, _NO_SPAN)
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _meaning(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__ if n not in _LOCATION)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._meaning() == other._meaning()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._meaning()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n not in _LOCATION)
        return f"{type(self).__name__}({shown})"


# ---- expressions -------------------------------------------------------------------------


class Num(_Node):
    __slots__ = (
        "text",
        "span",
    )
    text: str  # as written, so formatting never changes a number's spelling
    span: Span

    @property
    def value(self) -> int | float:
        return int(self.text) if self.text.isdigit() else float(self.text)


class Name(_Node):
    __slots__ = (
        "id",
        "span",
    )
    id: str
    span: Span


class Shape(_Node):
    __slots__ = (
        "dims",
        "span",
    )
    dims: tuple[int, ...]
    span: Span


class BinOp(_Node):
    __slots__ = (
        "op",
        "left",
        "right",
        "span",
    )
    op: str  # one of + - * /
    left: Expr
    right: Expr
    span: Span


class Neg(_Node):
    __slots__ = (
        "operand",
        "span",
    )
    operand: Expr
    span: Span


Expr = Union[Num, Name, Shape, BinOp, Neg]

# ---- statements ----------------------------------------------------------------------------


class Flag(_Node):
    """A bare word: a block kind, a flag (`skip`), a symbol (`relu`) or a compact option (`k3`)."""

    __slots__ = (
        "word",
        "span",
    )
    word: str
    span: Span


class KwArg(_Node):
    __slots__ = (
        "key",
        "value",
        "span",
        "key_span",
    )
    key: str
    value: Expr
    span: Span
    key_span: Span


class Literal(_Node):
    """A positional value: a number or shape, or any expression in parentheses."""

    __slots__ = (
        "value",
        "span",
    )
    value: Expr
    span: Span


class Str(_Node):
    """A quoted string, its text without the quotes (the lexer admits no `"` or newline in it):
    what `metadata` settings take; anywhere else the lowering refuses it."""

    __slots__ = (
        "text",
        "span",
    )
    text: str
    span: Span


Item = Union[Flag, KwArg, Literal, Str]


class Stmt(_Node):
    __slots__ = (
        "head",
        "items",
        "body",
        "span",
        "head_span",
    )
    head: str
    items: tuple[Item, ...]
    body: tuple[Stmt, ...] | None
    span: Span
    head_span: Span


class Param(_Node):
    __slots__ = (
        "name",
        "default",
        "span",
    )
    name: str
    default: Expr | None
    span: Span


class Import(_Node):
    __slots__ = (
        "path",
        "span",
    )
    path: str
    span: Span


class NetworkDef(_Node):
    __slots__ = (
        "name",
        "params",
        "body",
        "span",
        "name_span",
    )
    name: str
    params: tuple[Param, ...] | None  # None: a plain network; () or more: a family
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


class NetworkInst(_Node):
    """`network lite2 = efficientnet_lite(width=1.1, ...)`: one member of a family."""

    __slots__ = (
        "name",
        "base",
        "args",
        "span",
        "name_span",
        "base_span",
    )
    name: str
    base: str
    args: tuple[KwArg, ...]
    span: Span
    name_span: Span
    base_span: Span


class BlockDef(_Node):
    __slots__ = (
        "name",
        "params",
        "body",
        "span",
        "name_span",
    )
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


TopItem = Union[Import, NetworkDef, NetworkInst, BlockDef]


class Comment(_Node):
    __slots__ = (
        "text",
        "line",
        "col",
    )
    text: str
    line: int
    col: int


class Module(_Node):
    __slots__ = (
        "file",
        "items",
        "comments",
        "source",
    )
    _defaults = {"comments": (), "source": ""}
    file: str
    items: tuple[TopItem, ...]
    comments: tuple[Comment, ...]
    source: str


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
        if len(tok) > MAX_NUMBER_CHARS:
            raise number_too_long(self._tok(tok), len(tok))
        return Num(str(tok), self._tok(tok))

    def shape(self, c):
        (tok,) = c
        dims = str(tok).split("x")
        if max(map(len, dims)) > MAX_NUMBER_CHARS:
            raise number_too_long(self._tok(tok), max(map(len, dims)))
        return Shape(tuple(int(d) for d in dims), self._tok(tok))

    def string(self, c):
        (tok,) = c
        return Str(str(tok)[1:-1], self._tok(tok))

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


def number_too_long(span: Span, length: int) -> ArchError:
    return ArchError(
        f"number too long: {length:,} characters",
        span,
        f"a number in a spec has at most {MAX_NUMBER_CHARS} characters",
    )


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
    """Parse spec text into a `Module`; raises `ArchError` located at the first mistake. A
    leading byte-order mark is dropped, as Python drops it from source files."""
    if source.startswith("\ufeff"):
        source = source[1:]
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
