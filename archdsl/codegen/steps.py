"""A block as a straight sequence of steps, for backends that write a network as one function
(Keras' functional API, a CoreML MIL program). Each block kind says its steps (`steps` in
`archdsl/blocks/`); each backend maps every step type to its own call, in one table. The
decomposition, and so the order of operations, is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..blocks.bridge import DynamicReLU, Former, ToFormer, ToMobile
from ..ir.layers import InputNorm
from ..ir.nodes import Act, ConvBnAct, Norm, Pool, SqueezeExcite


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
    drop_path: float = 0.0  # stochastic depth of the branch added to the input (training only)
    source: str = "x"  # the branch (in place); an octave pair's low part: `x_low` and `shortcut_low`
    shortcut: str = "shortcut"


@dataclass(frozen=True)
class Assign:
    """`target` = `source`, a variable renamed (an octave conv's one path to a part)."""

    target: str
    source: str


@dataclass(frozen=True)
class Branch:
    """One branch of a multi-branch block: a conv (+BN), a pool or a BatchNorm of `source`,
    into its own variable; `x` itself stays the input until the branches are combined."""

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
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class SumBranches:
    path: str  # named `<block>.sum`
    sources: tuple[str, ...]
    target: str = "x"


@dataclass(frozen=True)
class ActivationStep:
    path: str  # named `<block>.act`
    act: Act
    on: str = "x"  # the variable, in place


@dataclass(frozen=True)
class AttentionStep:
    """Mobile MQA / MHSA through each backend's attention helper: pre-norm, [query pooling],
    projections, [key/value downsampling by `kv_down`], attention, output projection to `out`."""

    path: str
    out: int
    heads: int
    kv_heads: int
    key_dim: int
    value_dim: int
    norm: Norm | None
    kv_down: ConvBnAct | None  # the key downsampling conv (the value one is its twin)
    query_stride: int | None
    query_hw: tuple[int, int]  # the queries' positions, after their pooling


@dataclass(frozen=True)
class Flatten:
    path: str  # the classifier block


@dataclass(frozen=True)
class Dense:
    path: str  # the classifier block; weights `<path>.fc.*`
    classes: int
    dropout: float


@dataclass(frozen=True)
class TakeEndpoint:
    """A dense head's input: the output of the feature endpoint `name`, into `target`."""

    name: str
    target: str


@dataclass(frozen=True)
class ToRows:
    """`source` (anchors x columns channels) read as (H x W x anchors) rows of `columns`, in
    that order (an SSD prediction map's layout)."""

    path: str
    source: str
    columns: int


@dataclass(frozen=True)
class ConcatRows:
    """`x` = the `sources`' rows, one after another."""

    path: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class GateStep:
    """`x` = x times the per-channel factors `factor` (1x1), broadcast over H and W."""

    path: str
    factor: str


@dataclass(frozen=True)
class Resize:
    """`x` resized to `hw`, bilinear with half-pixel centres (PyTorch's align_corners=False)."""

    path: str
    hw: tuple[int, int]


@dataclass(frozen=True)
class Upsample2x:
    """`on` upsampled 2x by repeating each value (nearest), in place."""

    path: str
    on: str


@dataclass(frozen=True)
class InitTokens:
    """`tokens` = the learned `<path>.tokens` (count x dim), the same for each image of the
    batch: (batch, count, dim). Mobile-Former's steps read and update `tokens` beside `x`:
    ToFormer (tokens from x and tokens), Former (tokens), ToMobile and DynamicReLU (x from x and
    tokens), each through a helper of the backend's (archdsl/blocks/bridge.py says what they do)."""

    path: str
    count: int
    dim: int


@dataclass(frozen=True)
class MergeTokens:
    """`x` (the pooled map, `channels` values per image) with the first token (`dim` values)
    appended, then the linear layer `<path>.fc` to `out`, [BatchNorm1d `<path>.fc_norm`] and
    hard-swish: Mobile-Former's merge before its classifier."""

    path: str
    channels: int
    dim: int
    out: int
    norm: Norm | None


@dataclass(frozen=True)
class HeadOutput:
    """`x` is the model's output `name`."""

    name: str


@dataclass(frozen=True)
class BlockOutput:
    path: str  # an identity named by the block path, so each block's output can be compared
    source: str = "x"  # an octave pair's low part: `x_low`, named `<block>.low`


Step = Union[
    KeepShortcut,
    ConvBnAct,
    SqueezeExcite,
    AttentionStep,
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
    TakeEndpoint,
    ToRows,
    ConcatRows,
    GateStep,
    Resize,
    Upsample2x,
    Assign,
    InitTokens,
    ToFormer,
    Former,
    ToMobile,
    DynamicReLU,
    MergeTokens,
    HeadOutput,
    BlockOutput,
]
STEP_TYPES: tuple[type, ...] = Step.__args__  # type: ignore[attr-defined]


def residual_steps(
    body: list[Step], path: str, residual: bool, layer_scale: float | None = None, drop_path: float = 0.0
) -> list[Step]:
    """A sequential block's steps: [keep the input] body [layer scale] [+ input, the branch with
    stochastic depth `drop_path`], its output."""
    out: list[Step] = [KeepShortcut()] if residual else []
    out += body
    if layer_scale is not None:
        out.append(LayerScaleStep(f"{path}.layer_scale", layer_scale))
    if residual:
        out.append(AddShortcut(f"{path}.add", drop_path))
    return [*out, BlockOutput(path)]
