"""A block as a straight sequence of steps, for backends that write a network as one function
(Keras' functional API, a CoreML MIL program). Each backend maps a step to its own call; the
decomposition, and so the order of operations, is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..analysis.layers import InputNorm, mobileone_layers, parts
from ..ir.nodes import (
    Act,
    Block,
    Classifier,
    ConvBnAct,
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    GhostBottleneck,
    GhostModule,
    MobileAttention,
    MobileOneBlock,
    Pool,
    ShuffleUnit,
    ShuffleV1Unit,
    SqueezeExcite,
    UniversalInvertedBottleneck,
)
from .base import Call


@dataclass(frozen=True)
class KeepShortcut:
    """Remember the block input for the residual add."""


@dataclass(frozen=True)
class LayerScaleStep:
    path: str  # the tensor key, `<block>.layer_scale`
    init: float


@dataclass(frozen=True)
class AddShortcut:
    path: str  # named `<block>.add`


@dataclass(frozen=True)
class Branch:
    """One branch of a multi-branch block: a conv (+BN) or a BatchNorm of the block input `x`,
    into its own variable; `x` itself stays the input until the branches are summed."""

    layer: ConvBnAct | InputNorm | Pool
    target: str
    source: str = "x"


@dataclass(frozen=True)
class ConcatStep:
    """`x` = the `sources` concatenated along channels, cut to the first `channels`."""

    path: str
    sources: tuple[str, ...]
    channels: int
    cut: bool  # the concatenation has more than `channels` channels


@dataclass(frozen=True)
class SplitStep:
    """Channel halves: `kept` = the first `half` channels of `x`, `x` = the rest."""

    path: str
    half: int


@dataclass(frozen=True)
class ShuffleStep:
    path: str
    groups: int


@dataclass(frozen=True)
class SumBranches:
    path: str  # named `<block>.sum`
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ActivationStep:
    path: str  # named `<block>.act`
    act: Act


@dataclass(frozen=True)
class Flatten:
    path: str  # the classifier block


@dataclass(frozen=True)
class Dense:
    path: str  # the classifier block; weights `<path>.fc.*`
    classes: int
    dropout: float


@dataclass(frozen=True)
class BlockOutput:
    path: str  # an identity named by the block path, so each block's output can be compared


@dataclass(frozen=True)
class Line:
    """One statement of a generated function: `target = value`."""

    value: Call | str
    target: str = "x"


def quoted(text: str) -> str:
    """A string literal in generated code (text is an IR path or a word of the language)."""
    return f'"{text}"'


Step = Union[
    KeepShortcut,
    ConvBnAct,
    SqueezeExcite,
    MobileAttention,
    LayerScaleStep,
    AddShortcut,
    Branch,
    SumBranches,
    ActivationStep,
    ConcatStep,
    SplitStep,
    ShuffleStep,
    Pool,
    Flatten,
    Dense,
    BlockOutput,
]


def attention_args(a: MobileAttention) -> list[tuple[str, str]]:
    """The keyword arguments every backend's attention helper takes, as generated text."""
    args = [("heads", str(a.heads)), ("key_dim", str(a.key_dim)), ("value_dim", str(a.value_dim))]
    if a.kv_heads != 1:
        args.append(("kv_heads", str(a.kv_heads)))
    if a.norm is not None:
        args.append(("eps", repr(a.norm.eps)))
    if a.key_down is not None:
        args.append(("kv_stride", str(a.key_down.stride)))
    if a.query_pool is not None:
        args.append(("query_stride", str(a.query_pool.stride)))
    return args


def _mobileone_steps(block: MobileOneBlock) -> list[Step]:
    branches = [layer for layer in mobileone_layers(block) if isinstance(layer, (ConvBnAct, InputNorm))]
    out: list[Step] = []
    if len(branches) == 1:  # the deploy form: one conv
        assert isinstance(branches[0], ConvBnAct)
        out.append(branches[0])
    else:
        names = tuple(f"branch{i}" for i in range(len(branches)))
        out += [Branch(layer, name) for layer, name in zip(branches, names, strict=True)]
        out.append(SumBranches(f"{block.path}.sum", names))
    if block.se is not None:
        out.append(block.se)
    if block.act != "identity":
        out.append(ActivationStep(f"{block.path}.act", block.act))
    return [*out, BlockOutput(block.path)]


def _ghost_module_steps(g: GhostModule) -> list[Step]:
    concat = ConcatStep(f"{g.path}.concat", ("primary", "cheap"), g.out, cut=2 * g.primary.cout > g.out)
    return [Branch(g.primary, "primary"), Branch(g.cheap, "cheap", "primary"), concat]


def _ghost_steps(block: GhostBottleneck) -> list[Step]:
    out: list[Step] = [KeepShortcut(), *_ghost_module_steps(block.ghost1)]
    out += [p for p in (block.dw, block.se) if p is not None]
    out += _ghost_module_steps(block.ghost2)
    out += [Branch(p, "shortcut", "shortcut") for p in (block.shortcut_dw, block.shortcut_pw) if p is not None]
    return [*out, AddShortcut(f"{block.path}.add"), BlockOutput(block.path)]


def _shuffle_v1_steps(unit: ShuffleV1Unit) -> list[Step]:
    out: list[Step] = [KeepShortcut(), unit.reduce]
    if unit.groups > 1:
        out.append(ShuffleStep(f"{unit.path}.shuffle", unit.groups))
    out += [unit.dw, unit.expand]
    if unit.shortcut is not None:
        channels = unit.expand.cout + unit.shortcut.channels
        out += [Branch(unit.shortcut, "shortcut", "shortcut"),
                ConcatStep(f"{unit.path}.concat", ("shortcut", "x"), channels, cut=False)]  # fmt: skip
    else:
        out.append(AddShortcut(f"{unit.path}.add"))
    if unit.act != "identity":
        out.append(ActivationStep(f"{unit.path}.act", unit.act))
    return [*out, BlockOutput(unit.path)]


def _shuffle_steps(unit: ShuffleUnit) -> list[Step]:
    half = unit.pw2.cout
    if unit.down_dw is not None and unit.down_pw is not None:
        out: list[Step] = [Branch(unit.down_dw, "kept"), Branch(unit.down_pw, "kept", "kept")]
    else:
        out = [SplitStep(f"{unit.path}.split", half)]
    out += [unit.pw1, unit.dw, unit.pw2, ConcatStep(f"{unit.path}.concat", ("kept", "x"), 2 * half, cut=False)]
    return [*out, ShuffleStep(f"{unit.path}.shuffle", 2), BlockOutput(unit.path)]


def steps(block: Block) -> list[Step]:
    if isinstance(block, MobileOneBlock):
        return _mobileone_steps(block)
    if isinstance(block, GhostBottleneck):
        return _ghost_steps(block)
    if isinstance(block, ShuffleUnit):
        return _shuffle_steps(block)
    if isinstance(block, ShuffleV1Unit):
        return _shuffle_v1_steps(block)
    residual = getattr(block, "residual", False)
    out: list[Step] = [KeepShortcut()] if residual else []
    if isinstance(block, (ConvBnAct, Pool)):
        out.append(block)
    elif isinstance(block, Classifier):
        out += [Flatten(block.path), Dense(block.path, block.classes, block.dropout)]
    elif isinstance(block, MobileAttention):  # one step: each backend has an attention helper
        out.append(block)
    else:
        assert isinstance(block, (DepthwiseSeparable, UniversalInvertedBottleneck, FusedInvertedBottleneck))
        out += parts(block)
    if isinstance(block, (UniversalInvertedBottleneck, MobileAttention)) and block.layer_scale is not None:
        out.append(LayerScaleStep(f"{block.path}.layer_scale", block.layer_scale))
    if residual:
        out.append(AddShortcut(f"{block.path}.add"))
    return [*out, BlockOutput(block.path)]


def convs(block: Block) -> list[ConvBnAct]:
    found = (s.layer if isinstance(s, Branch) else s for s in steps(block))
    return [s for s in found if isinstance(s, ConvBnAct)]


def activations(block: Block) -> set[str]:
    """Every activation a block applies: in its convs, its SE, or on its own."""
    acts = {c.act for c in convs(block)} | {a for se in ses(block) for a in (se.act, se.gate)}
    return acts | {s.act for s in steps(block) if isinstance(s, ActivationStep)}


def ses(block: Block) -> list[SqueezeExcite]:
    return [s for s in steps(block) if isinstance(s, SqueezeExcite)]
