"""Evaluate the small expressions of the language (numbers, parameters, + - * /) and convert
values to the types options need, with errors located at the offending text.

Every intermediate result is bounded (`MAX_VALUE`, finite floats), so no arithmetic here or
later (`float(int)`) can overflow; the recursion is as deep as the parser allowed an
expression to nest (`MAX_NESTING`).
"""

from __future__ import annotations

import math
from typing import Mapping, Union

from ..errors import ArchError, Span, did_you_mean
from ..limits import MAX_VALUE
from .syntax import BinOp, Choice, Expr, Flag, Literal, Name, Neg, Num, Shape

Value = Union[int, float, str, tuple[int, ...]]
Env = Mapping[str, Value]


def evaluate(expr: Expr, env: Env) -> Value:
    value = _evaluate(expr, env)
    if isinstance(value, float) and not math.isfinite(value):
        raise ArchError("number out of range", expr.span)
    if isinstance(value, int) and not -MAX_VALUE <= value <= MAX_VALUE:
        raise ArchError("number out of range", expr.span, f"whole numbers stay within ±{float(MAX_VALUE):g}")
    return value


def _evaluate(expr: Expr, env: Env) -> Value:
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Name):
        return env.get(expr.id, expr.id)  # an unbound name is a symbol such as `relu`
    if isinstance(expr, Shape):
        return expr.dims
    if isinstance(expr, Neg):
        return -number(expr.operand, env)
    if isinstance(expr, Choice):
        raise in_a_space(expr.span)
    assert isinstance(expr, BinOp)
    a, b = number(expr.left, env), number(expr.right, env)
    if expr.op == "+":
        return _tidy(a + b)
    if expr.op == "-":
        return _tidy(a - b)
    if expr.op == "*":
        return _tidy(a * b)
    if b == 0:
        raise ArchError("division by zero", expr.right.span)
    return _tidy(a / b)


def number(expr: Expr, env: Env) -> int | float:
    value = evaluate(expr, env)
    if isinstance(value, (int, float)):
        return value
    if isinstance(expr, Name) and expr.id in env:
        raise ArchError(f"parameter '{expr.id}' is {_show(value)}, not a number", expr.span)
    if isinstance(expr, Name):
        raise ArchError(f"unknown parameter '{expr.id}'", expr.span, did_you_mean(expr.id, env))
    raise ArchError("expected a number", expr.span)


def item_value(item: Flag | Literal, env: Env) -> Value:
    """The value of a positional item: a literal, or a bare word naming a parameter or symbol."""
    if isinstance(item, Flag):
        return env.get(item.word, item.word)
    return evaluate(item.value, env)


class InASpace(ArchError):
    """A choice (or a named one, `let`) met by the compiler: a space is sampled first. The first
    one is the only error a network lowering reports (what follows from it is noise)."""


def in_a_space(span: Span, what: str = "a choice") -> InASpace:
    return InASpace(f"{what}: this spec describes a space of networks, not one", span,
                     "list its dimensions with `archdsl space SPEC`; write one network with "
                     "`archdsl sample SPEC --index 0 -o CANDIDATE.arch`")  # fmt: skip


def _tidy(v: int | float) -> int | float:
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v


# Beyond these a spec is a typo, and the arithmetic would overflow or run for ever.
MAX_INT = 1 << 20
MAX_FLOAT = 1e6


def as_int(value: Value, span: Span, what: str, minimum: int = 1, maximum: int = MAX_INT) -> int:
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_FLOAT:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArchError(f"{what} must be a whole number, got {_show(value)}", span)
    if value < minimum:
        raise ArchError(f"{what} must be at least {minimum}, got {value}", span)
    if value > maximum:
        raise ArchError(f"{what} must be at most {maximum:,}, got {value:,}", span)
    return value


def as_float(value: Value, span: Span, what: str, low: float = 0.0, high: float = MAX_FLOAT,
             low_open: bool = True, high_open: bool = False) -> float:  # fmt: skip
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArchError(f"{what} must be a number, got {_show(value)}", span)
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if too_low or too_high:
        bounds = f"{'>' if low_open else '>='} {low:g} and {'<' if high_open else '<='} {high:g}"
        raise ArchError(f"{what} must be {bounds}, got {v:g}", span)
    return v


def as_symbol(value: Value, span: Span, what: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArchError(f"unknown {what} {_show(value)}", span, did_you_mean(str(value), choices))
    return value


def _show(value: Value) -> str:
    return repr(value) if isinstance(value, str) else str(value)
