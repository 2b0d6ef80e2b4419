"""What every backend shares: the interface, the collected `UnsupportedError`, the Jinja
environment, and the header facts (spec, hash, totals) each generated file starts with."""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import jinja2

from ..cost import Cost, block_cost
from ..errors import ArchError
from ..ir import Network
from ..resources import template_dir


@dataclass(frozen=True)
class Call:
    """A call to lay out in generated code: inline when `args` holds only text, nested otherwise.
    A call that is an element of a list or argument list ends with a comma."""

    name: str
    args: tuple[tuple[str, str | Call], ...]  # (keyword or "", value)
    comment: str = ""
    trailing_comma: bool = True
    applied_to: str | None = None  # `Layer(...)(x)`: the call's result is called on this

    @property
    def nested(self) -> bool:
        return any(isinstance(v, Call) for _, v in self.args)

    @property
    def flat(self) -> str:
        text = f"{self.name}(" + ", ".join(f"{k}={v}" if k else str(v) for k, v in self.args) + ")"
        return text + (f"({self.applied_to})" if self.applied_to else "")


class UnsupportedError(ArchError):
    """Everything a backend cannot express in one network, reported together."""

    def __init__(self, backend: str, reasons: list[str]):
        self.reasons = reasons
        super().__init__(f"the {backend} backend cannot express: " + "; ".join(reasons))


class Backend:
    name: ClassVar[str]
    file_suffix: ClassVar[str] = ".py"

    def emit(self, net: Network) -> str:
        raise NotImplementedError


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates cached per user, keyed by template source, so a compile skips Jinja's
    parse-and-compile step; without a writable cache directory templates compile every time."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archdsl" / "jinja"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(root))


@cache
def environment(backend: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(template_dir() / backend), str(template_dir() / "common")]),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["num"] = lambda n: f"{n:,}"
    return env


def class_name(network: str) -> str:
    """CamelCase class name of a network; names come from the grammar's NAME token."""
    name = "".join(part[:1].upper() + part[1:] for part in network.split("_") if part) or "Network"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "Net" + name
    return name if name not in RESERVED_NAMES else name + "Network"


RESERVED_NAMES = frozenset(
    {"ConvBnAct", "SqueezeExcite", "DepthwiseSeparable", "UniversalInvertedBottleneck",
     "FusedInvertedBottleneck", "GlobalPool", "Pool", "Classifier", "Stage", "DropPath", "Any"}
)  # fmt: skip


def display_source(path: str) -> str:
    """The spec path as shown in generated code: POSIX separators, and nothing that could end a
    docstring or a comment (a path is user text)."""
    return re.sub(r"[^A-Za-z0-9_./+-]", "_", path.replace("\\", "/"))


@dataclass(frozen=True)
class Header:
    """Facts at the top of every generated file, and each block's and stage's cost, computed once."""

    network: str
    source: str
    source_hash: str
    input_shape: tuple[int, int, int]
    classes: int
    total: Cost
    block_costs: dict[str, Cost]
    stage_costs: dict[str, Cost]
    stage_lines: list[str]

    @classmethod
    def of(cls, net: Network) -> Header:
        blocks = {b.path: block_cost(b) for b in net.blocks()}
        stages = {s.path: sum((blocks[b.path] for b in s.blocks), Cost()) for s in net.all_stages()}
        lines = [
            f"{s.name:<8} {len(s.blocks):>3} block(s) {stages[s.path].params:>12,} params {stages[s.path].macs:>15,} MACs"
            for s in net.all_stages()
        ]
        total = sum(stages.values(), Cost())
        return cls(
            net.name,
            display_source(net.source),
            net.source_hash,
            net.input_shape,
            net.classes,
            total,
            blocks,
            stages,
            lines,
        )
