"""Calls and statements as generated code lays them out; block kinds and backends build them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Call:
    """A call to lay out in generated code: inline when `args` holds only text, nested otherwise.
    A call that is an element of a list or argument list ends with a comma. A call without a
    name is a list of its (positional) arguments."""

    name: str
    args: tuple[tuple[str, str | Call], ...]  # (keyword or "", value)
    comment: str = ""
    trailing_comma: bool = True
    applied_to: str | None = None  # `Layer(...)(x)`: the call's result is called on this

    @property
    def nested(self) -> bool:
        return any(isinstance(v, Call) for _, v in self.args)

    @property
    def opening(self) -> str:
        return f"{self.name}(" if self.name else "["

    @property
    def closing(self) -> str:
        return ")" if self.name else "]"

    @property
    def flat(self) -> str:
        text = self.opening + ", ".join(f"{k}={v}" if k else str(v) for k, v in self.args) + self.closing
        return text + (f"({self.applied_to})" if self.applied_to else "")


Arg = tuple[str, "str | Call"]


@dataclass(frozen=True)
class Line:
    """One statement of a generated function: `target = value`."""

    value: Call | str
    target: str = "x"


def quoted(text: str) -> str:
    """A string literal in generated code (text is an IR path or a word of the language)."""
    return f'"{text}"'


def literal_tuple(name: str, texts: Sequence[str]) -> str:
    """`NAME = ("a", "b")` of IR paths (identifiers, digits and dots only), laid out as ruff formats it."""
    quoted = [f'"{t}"' for t in texts]
    one_line = f"{name} = ({', '.join(quoted)}{',' if len(quoted) == 1 else ''})"
    if len(one_line) <= 120:
        return one_line
    return f"{name} = (\n" + "".join(f"    {q},\n" for q in quoted) + ")"
