"""The syntax tree of a spec file: small frozen nodes that remember their source span.

`parse(source, file)` turns text into a `Module`. Spans are excluded from equality, so two
trees compare equal when they say the same thing however they were laid out; that is what
`parse(fmt(x)) == parse(x)` checks.
"""

from __future__ import annotations

import re
from typing import Union

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from ..errors import ArchError, Span
from ..limits import MAX_CHOICE_VALUES, MAX_NUMBER_CHARS
from .grammar import parse_tree

_NO_SPAN = Span("<none>", 0, 0, 0, 0)
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?$")
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


class Range(_Node):
    """`2..4` in a choice: every whole number from `low` to `high`."""

    __slots__ = (
        "low",
        "high",
        "span",
    )
    low: Num
    high: Num
    span: Span

    def numbers(self) -> list[Num]:
        return [Num(str(v), self.span) for v in range(int(self.low.text), int(self.high.text) + 1)]


class Choice(_Node):
    """`{3,5}`, `{2..4}`, `{relu,hard_swish}`: the values a setting takes across a search space
    (`archdsl/search/`); a concrete network has none."""

    __slots__ = (
        "values",
        "span",
    )
    values: tuple[Union[Num, Name, Range], ...]
    span: Span

    def expanded(self) -> list[Num | Name]:
        """The values one by one, ranges spelled out."""
        return [n for v in self.values for n in (v.numbers() if isinstance(v, Range) else [v])]


Expr = Union[Num, Name, Shape, BinOp, Neg, Choice]

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


class ChoiceWord(_Node):
    """A compact option with a choice for its number: `k{3,5}`, `x{2..4}`, `k{0,3,5}/{0,3,5}`
    (each set its own decision), `k3/{3,5}`."""

    __slots__ = (
        "prefix",
        "parts",
        "span",
    )
    prefix: str
    parts: tuple[Union[str, Choice], ...]  # split at `/`: a number as written, or a choice
    span: Span

    def word(self, values: dict[int, str]) -> str:
        """The compact option with the choice at `parts[i]` replaced by `values[i]`."""
        return self.prefix + "/".join(values[i] if isinstance(p, Choice) else p for i, p in enumerate(self.parts))


Item = Union[Flag, KwArg, Literal, Str, ChoiceWord]


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

    @v_args(meta=True)
    def choice(self, meta, c):
        values = tuple(v if isinstance(v, Range) else self._choice_value(v) for v in c)
        return _checked_choice(Choice(values, self._meta(meta)))

    def _choice_value(self, tok: Token) -> Num | Name:
        if tok.type == "NUMBER":
            return self.number([tok])
        return Name(self._name(tok), self._tok(tok))

    @v_args(meta=True)
    def range(self, meta, c):
        return Range(self.number([c[0]]), self.number([c[1]]), self._meta(meta))

    def choice_item(self, c):
        return Literal(c[0], c[0].span)

    def choice_word(self, c):
        (tok,) = c
        return _choice_word(str(tok), self._tok(tok))

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


def _checked_choice(choice: Choice) -> Choice:
    """A choice of at most MAX_CHOICE_VALUES whole-number ranges and values, none twice."""
    seen: dict[object, Span] = {}
    count = 0
    for v in choice.values:
        if isinstance(v, Range):
            low, high = v.low.value, v.high.value
            if not (isinstance(low, int) and isinstance(high, int)):
                raise ArchError("a range takes whole numbers", v.span, "write {2..4}, or list the values: {0.5,0.75}")
            if high < low:
                raise ArchError(f"empty range {low}..{high}", v.span, f"write {high}..{low}")
            count += high - low + 1
        else:
            count += 1
        if count > MAX_CHOICE_VALUES:
            raise ArchError(f"a choice of more than {MAX_CHOICE_VALUES:,} values", v.span,
                            "a search dimension takes a few values: sample a narrower range")  # fmt: skip
    for n in choice.expanded():
        key = n.value if isinstance(n, Num) else n.id
        if key in seen:
            raise ArchError(f"{key} is in this choice twice", n.span, "keep one of them")
        seen[key] = n.span
    return choice


def _choice_word(text: str, span: Span) -> ChoiceWord:
    """A CHOICE_WORD token (one line: its parts are located by column)."""
    prefix = text[: len(text) - len(text.lstrip("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))]
    parts: list[str | Choice] = []
    col = span.col + len(prefix)
    for part in text[len(prefix) :].split("/"):
        if part.startswith("{"):
            parts.append(_checked_choice(_compact_choice(part, span, col)))
        else:
            if len(part) > MAX_NUMBER_CHARS:
                raise number_too_long(_at(span, col, len(part)), len(part))
            parts.append(part)
        col += len(part) + 1
    return ChoiceWord(prefix, tuple(parts), span)


def _compact_choice(text: str, span: Span, col: int) -> Choice:
    """`{3,5}` or `{2..4}` inside a compact option, starting at column `col`."""
    values: list[Num | Name | Range] = []
    offset = col + 1
    if not text[1:-1].strip():
        raise ArchError("an empty choice", _at(span, col, len(text)), "a choice takes at least one value: k{3,5}")
    for element in text[1:-1].split(","):
        lead = len(element) - len(element.lstrip())
        item = element.strip()
        where = _at(span, offset + lead, max(1, len(item)))
        if not item:
            raise ArchError("a choice with an empty value", where, "write the values between commas: k{3,5}")
        bounds = item.split("..")
        if len(bounds) > 2 or not all(_NUMBER.match(b) for b in bounds):
            raise ArchError(f"malformed value '{item}' in a choice", where, "numbers, or ranges such as 2..4")
        if any(len(b) > MAX_NUMBER_CHARS for b in bounds):
            raise number_too_long(where, max(map(len, bounds)))
        nums = [Num(b, where) for b in bounds]
        values.append(Range(nums[0], nums[1], where) if len(nums) == 2 else nums[0])
        offset += len(element) + 1
    return Choice(tuple(values), _at(span, col, len(text)))


def _at(span: Span, col: int, width: int) -> Span:
    return Span(span.file, span.line, col, span.line, col + width, span.source)


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
