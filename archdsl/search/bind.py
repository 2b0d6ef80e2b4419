"""Bind a space to one candidate: the syntax tree with every choice replaced by its value, every
`let` name by its choice's value and the `let` statements gone. Only nodes that hold a choice are
rebuilt (`Found.holders`); the rest of the tree is shared, so binding costs little more than the
choices it replaces.

What comes out is an ordinary spec: a number where `{3,5}` stood (a `Literal` as an item, `Num`
in an expression), a word where `{relu,hard_swish}` stood (a `Flag` as an item), `k5` where
`k{3,5}` stood. Values keep the choice's location, so an error in a candidate points at the
choice that gave it."""

from __future__ import annotations

from typing import Any, Sequence

from ..language.syntax import (
    BinOp,
    BlockDef,
    Choice,
    ChoiceWord,
    Expr,
    Flag,
    Item,
    KwArg,
    Literal,
    Name,
    Neg,
    NetworkDef,
    NetworkInst,
    Num,
    Param,
    Stmt,
)
from .dimensions import Found

Value = Num | Name


class Binder:
    """Rebuilds the held nodes of a network for one assignment of values to dimensions."""

    def __init__(self, found: Found, values: Sequence[Value]):
        self.found, self.values = found, values
        self.lets = {name: values[d] for name, d in found.lets.items()}

    def _held(self, node: object) -> bool:
        return id(node) in self.found.holders

    def _choice(self, c: Choice) -> Value:
        d = self.found.choices.get(id(c))
        return self.values[d] if d is not None else self.found.fixed[id(c)]

    def network(self, net: NetworkDef) -> NetworkDef:
        if not self._held(net):
            return net
        params = tuple(self.param(p) for p in net.params) if net.params is not None else None
        body = tuple(self.stmt(s) for s in net.body if s.head != "let")
        return NetworkDef(net.name, params, body, net.span, net.name_span)

    def instance(self, inst: NetworkInst) -> NetworkInst:
        if not self._held(inst):
            return inst
        args = tuple(KwArg(a.key, self.expr(a.value), a.span, a.key_span) for a in inst.args)
        return NetworkInst(inst.name, inst.base, args, inst.span, inst.name_span, inst.base_span)

    def template(self, tpl: BlockDef) -> BlockDef:
        if not self._held(tpl):
            return tpl
        outer, self.lets = self.lets, {}
        bound = BlockDef(tpl.name, tuple(map(self.param, tpl.params)), tuple(map(self.stmt, tpl.body)), tpl.span,
                         tpl.name_span)  # fmt: skip
        self.lets = outer
        return bound

    def param(self, p: Param) -> Param:
        return Param(p.name, self.expr(p.default), p.span) if self._held(p) and p.default is not None else p

    def stmt(self, s: Stmt) -> Stmt:
        if not self._held(s):
            return s
        body = tuple(map(self.stmt, s.body)) if s.body is not None else None
        return Stmt(s.head, tuple(map(self.item, s.items)), body, s.span, s.head_span)

    def item(self, item: Item) -> Item:
        if not self._held(item):
            return item
        if isinstance(item, ChoiceWord):
            values = {i: self._choice(p) for i, p in enumerate(item.parts) if isinstance(p, Choice)}
            # located at the value where one choice gives it (an error about it underlines that)
            span = next(iter(values.values())).span if len(values) == 1 else item.span
            return Flag(item.word({i: _text(v) for i, v in values.items()}), span)
        if isinstance(item, KwArg):
            return KwArg(item.key, self.expr(item.value), item.span, item.key_span)
        if isinstance(item, Flag):  # a let name where a word or number stands alone
            return _as_item(self.lets[item.word], item)
        assert isinstance(item, Literal)
        if isinstance(item.value, Choice):  # `width {0.75,1.0}`, `act {relu,hard_swish}`
            return _as_item(self._choice(item.value), item)
        return Literal(self.expr(item.value), item.span)

    def expr(self, e: Any) -> Expr:
        if not self._held(e):
            return e  # type: ignore[no-any-return]
        if isinstance(e, Choice):
            return _located(self._choice(e), e)
        if isinstance(e, Name):
            return _located(self.lets[e.id], e)
        if isinstance(e, BinOp):
            return BinOp(e.op, self.expr(e.left), self.expr(e.right), e.span)
        assert isinstance(e, Neg)
        return Neg(self.expr(e.operand), e.span)


def _text(v: Value) -> str:
    return v.text if isinstance(v, Num) else v.id


def _located(v: Value, where: Any) -> Value:
    """The value, located where it is used: a `let` value at the name that uses it."""
    if isinstance(where, Choice):  # the value's own place inside the choice
        return v
    return Num(v.text, where.span) if isinstance(v, Num) else Name(v.id, where.span)


def _as_item(v: Value, where: Any) -> Item:
    """A value standing alone in a statement: a number literal, or a bare word."""
    v = _located(v, where) if not isinstance(where, Literal) else v
    return Literal(v, v.span) if isinstance(v, Num) else Flag(v.id, v.span)
