"""What every backend shares: the interface, the collected `UnsupportedError`, the Jinja
environment, and the header facts (spec, hash, totals) each generated file starts with."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import jinja2

from ..analysis.cost import Cost, block_cost
from ..analysis.layers import block_input, block_output
from ..analysis.report import shape_text
from ..blocks import kind_of
from ..errors import ArchError
from ..ir.network import Block, Network, Stage, is_dense
from ..resources import template_dir, user_cache_dir
from .calls import literal_tuple


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
    root = user_cache_dir()
    if root is None:
        return None
    (root / "jinja").mkdir(exist_ok=True)
    return jinja2.FileSystemBytecodeCache(str(root / "jinja"))


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


def class_name(network: str, reserved: frozenset[str] = frozenset()) -> str:
    """CamelCase class name of a network; names come from the grammar's NAME token."""
    name = "".join(part[:1].upper() + part[1:] for part in network.split("_") if part) or "Network"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "Net" + name
    return name if name not in reserved else name + "Network"


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
    form: str  # "train" or "deploy"
    classifier: str  # the classifier's linear layer (`<classifier>.weight`, `.bias`); "" for a dense head
    class_layers: str  # a dense head's layers sized by the class count, as `CLASS_LAYERS = (...)`

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
            net.form,
            "" if net.dense_head else f"{net.head.blocks[-1].path}.fc",
            literal_tuple("CLASS_LAYERS", _class_layers(net.dense_head)) if net.dense_head else "",
        )


def _class_layers(head: Block) -> tuple[str, ...]:
    layers = kind_of(head).class_layers
    assert layers is not None, f"{head.kind}: a dense head names its class layers"
    return layers(head)


def _shape(c: int, hw: tuple[int, int]) -> str:
    return f"{c}x{hw[0]}x{hw[1]}"


def cost_note(params: int, macs: int) -> str:
    return f"{params:,} params, {macs:,} MACs"


def _in_out(block: Block) -> str:
    if is_dense(block):
        return f"{shape_text(block, 'input')} -> {shape_text(block)}"
    if kind_of(block).flat_output:
        return f"{block_input(block)[0]} -> {block_output(block)[0]}"
    return f"{_shape(*block_input(block))} -> {_shape(*block_output(block))}"


def block_comment(block: Block, cost: Cost) -> str:
    name = getattr(block, "variant", block.kind)
    return f"{block.path} {name}: {_in_out(block)} | {cost_note(cost.params, cost.macs)}"


def stage_comment(stage: Stage, cost: Cost) -> str:
    return f"{stage.path} ({stage.name}): {_plural(len(stage.blocks), 'block')} | {cost_note(cost.params, cost.macs)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
