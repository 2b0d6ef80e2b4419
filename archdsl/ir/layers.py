"""The primitive layers a block is made of, beyond the IR's own conv, SE and pool nodes: what
the cost model counts, the weight file holds and the backends' functional steps refer to.
Each block kind says which of them it consists of (`layers` in `archdsl/blocks/`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from .nodes import Act, ConvBnAct, Norm, Pool, SqueezeExcite


@dataclass(frozen=True)
class LayerScale:
    path: str  # the owning block; the tensor is `<block>.layer_scale.gamma`
    channels: int
    hw: tuple[int, int]
    init: float


@dataclass(frozen=True)
class ResidualAdd:
    path: str
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class InputNorm:
    """A BatchNorm of its own (MobileOne's identity branch, an attention pre-norm): tensors
    `<path>.<name>`."""

    path: str  # `<block>.identity`
    channels: int
    hw: tuple[int, int]
    norm: Norm


@dataclass(frozen=True)
class BranchSum:
    path: str  # the block
    terms: int
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class Activation:
    """An activation of its own, after a branch sum (inside a conv layer otherwise)."""

    path: str  # the block
    act: Act
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class AttentionCore:
    """softmax(q k^T / sqrt(key_dim)) v over projected queries, keys and values: the two matmuls."""

    path: str  # the block
    heads: int
    kv_heads: int
    key_dim: int
    value_dim: int
    queries: int  # N, query positions
    keys: int  # M, key/value positions


@dataclass(frozen=True)
class Upsample:
    """Bilinear upsampling (half-pixel centres, as PyTorch's align_corners=False), or nearest
    (each value repeated: Octave convolution's low-to-high path)."""

    path: str
    channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    mode: Literal["bilinear", "nearest"] = "bilinear"


@dataclass(frozen=True)
class Gate:
    """x times a per-channel factor, broadcast over H and W (LR-ASPP's gate on its features)."""

    path: str
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class Concat:
    """Channel concatenation (cut to `channels` where a ghost module keeps fewer)."""

    path: str
    channels: int  # output channels
    hw: tuple[int, int]


@dataclass(frozen=True)
class ChannelShuffle:
    """Interleave `groups` groups of channels (ShuffleNet's channel shuffle)."""

    path: str
    groups: int
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class Blur:
    """`aa=blur`'s anti-aliased downsampling: a fixed 3x3 binomial filter on each channel, zero
    padding 1, stride 2 (timm's BlurPool2d, 'blurpc'). The filter is a constant, no tensor of the
    weights; its MACs count as a depthwise conv's."""

    path: str  # `<conv>.aa`
    channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]


def split_blur(conv: ConvBnAct) -> tuple[ConvBnAct, Blur]:
    """A conv with `aa=blur` as the layers it runs: the conv at stride 1, then the blur."""
    assert conv.aa == "blur"
    unblurred = conv.model_copy(update={"stride": 1, "out_hw": conv.conv_hw, "aa": None})
    return unblurred, Blur(f"{conv.path}.aa", conv.cout, conv.conv_hw, conv.out_hw)


@dataclass(frozen=True)
class Linear:
    """A fully connected layer with bias on a flattened input: tensors `<path>.fc.*`."""

    path: str  # the block
    cin: int
    classes: int


@dataclass(frozen=True)
class Tokens:
    """Learned tokens, the same for every image (Mobile-Former's initial global tokens):
    tensor `<path>.tokens`, (count, dim)."""

    path: str
    count: int
    dim: int


@dataclass(frozen=True)
class TokenLinear:
    """A linear layer with bias applied to each of `rows` vectors (tokens), then `act`:
    tensors `<path>.weight` (cout, cin) and `<path>.bias`."""

    path: str
    cin: int
    cout: int
    rows: int
    act: Act = "identity"


@dataclass(frozen=True)
class LayerNorm:
    """Layer normalisation of each of `rows` vectors over its `dim` values: tensors
    `<path>.weight` and `<path>.bias` (drawn at random as a norm's scale and shift are)."""

    path: str
    dim: int
    rows: int
    eps: float = 1e-5


@dataclass(frozen=True)
class DynamicRelu:
    """Mobile-Former's dynamic ReLU: max(x a, x b) per channel, its coefficients a, b computed
    from a token (by TokenLinear layers of its own, listed before it)."""

    path: str
    channels: int
    hw: tuple[int, int]


@dataclass(frozen=True)
class TokenGate:
    """Tokens times factors of their own size (the Mobile->Former bridge's dynamic scale)."""

    path: str
    rows: int
    channels: int


Layer = Union[
    ConvBnAct,
    Blur,
    Concat,
    ChannelShuffle,
    SqueezeExcite,
    LayerScale,
    ResidualAdd,
    InputNorm,
    BranchSum,
    Activation,
    AttentionCore,
    Upsample,
    Gate,
    Pool,
    Linear,
    Tokens,
    TokenLinear,
    LayerNorm,
    DynamicRelu,
    TokenGate,
]


def residual_tail(path: str, channels: int, hw: tuple[int, int], residual: bool,
                  layer_scale: float | None = None) -> list[Layer]:  # fmt: skip
    """What ends a block with a residual branch: [its layer scale] [+ its input]."""
    tail: list[Layer] = [LayerScale(path, channels, hw, layer_scale)] if layer_scale is not None else []
    return tail + ([ResidualAdd(path, channels, hw)] if residual else [])
