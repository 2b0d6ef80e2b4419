"""The primitive layers of a resolved network, and the tensors each one owns.

Every backend, the cost model and the canonical weight file agree on this inventory: a tensor's
key is its layer's IR path plus a fixed name (PyTorch layout), listed in registration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

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
    Network,
    Norm,
    Pool,
    ShuffleUnit,
    ShuffleV1Unit,
    SqueezeExcite,
    UniversalInvertedBottleneck,
)


@dataclass(frozen=True)
class Tensor:
    key: str
    shape: tuple[int, ...]
    role: str  # weight, bias, bn_weight, bn_bias, bn_mean, bn_var, layer_scale

    @property
    def learnable(self) -> bool:
        return self.role not in ("bn_mean", "bn_var")

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


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
    """MobileOne's identity branch: a BatchNorm of the block input, tensors `<path>.<name>`."""

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
    """Bilinear upsampling (half-pixel centres, as PyTorch's align_corners=False)."""

    path: str
    channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]


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


Layer = Union[
    ConvBnAct,
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
    Pool,
    Classifier,
]


def attention_layers(block: MobileAttention) -> Iterator[Layer]:
    c, hw = block.channels, block.hw
    if block.norm is not None:
        yield InputNorm(f"{block.path}.norm", c, hw, block.norm)
    if block.query_pool is not None:
        yield block.query_pool
        if block.query_norm is not None:
            yield InputNorm(f"{block.path}.query_norm", c, block.query_pool.out_hw, block.query_norm)
    yield from (p for p in (block.query, block.key_down, block.key, block.value_down, block.value) if p is not None)
    q_hw, kv_hw = block.query.out_hw, block.key.out_hw
    yield AttentionCore(block.path, block.heads, block.kv_heads, block.key_dim, block.value_dim,
                        q_hw[0] * q_hw[1], kv_hw[0] * kv_hw[1])  # fmt: skip
    if q_hw != hw:
        yield Upsample(f"{block.path}.upsample", block.heads * block.value_dim, q_hw, hw)
    yield block.output
    if block.layer_scale is not None:
        yield LayerScale(block.path, block.output.cout, hw, block.layer_scale)
    if block.residual:
        yield ResidualAdd(block.path, block.output.cout, hw)


def mobileone_layers(block: MobileOneBlock) -> Iterator[Layer]:
    first = block.first
    yield from block.branches
    if block.scale is not None:
        yield block.scale
    if block.identity is not None:
        yield InputNorm(f"{block.path}.identity", first.cin, first.in_hw, block.identity)
    terms = len(block.branches) + (block.scale is not None) + (block.identity is not None)
    if terms > 1:
        yield BranchSum(block.path, terms, first.cout, first.out_hw)
    if block.se is not None:
        yield block.se
    if block.act != "identity":
        yield Activation(block.path, block.act, first.cout, first.out_hw)


def parts(block: DepthwiseSeparable | UniversalInvertedBottleneck | FusedInvertedBottleneck) -> list:
    """A sequential block's convs and SE, in execution order."""
    if isinstance(block, DepthwiseSeparable):
        seq: list = [block.dw, block.se, block.pw]
    elif isinstance(block, FusedInvertedBottleneck):
        seq = [block.expand, block.se, block.project]
    else:
        seq = [block.dw_start, block.expand, block.dw_mid, block.se, block.project, block.dw_end]
    return [p for p in seq if p is not None]


def layers_of(block: Block) -> Iterator[Layer]:
    """A block's primitive layers in execution (and registration) order."""
    if isinstance(block, (ConvBnAct, Pool, Classifier)):
        yield block
        if isinstance(block, ConvBnAct) and block.residual:
            yield ResidualAdd(block.path, block.cout, block.out_hw)
        return
    if isinstance(block, MobileOneBlock):
        yield from mobileone_layers(block)
        return
    if isinstance(block, MobileAttention):
        yield from attention_layers(block)
        return
    if isinstance(block, GhostBottleneck):
        yield from ghost_layers(block)
        return
    if isinstance(block, ShuffleUnit):
        yield from shuffle_layers(block)
        return
    if isinstance(block, ShuffleV1Unit):
        yield from shuffle_v1_layers(block)
        return
    assert isinstance(block, (DepthwiseSeparable, FusedInvertedBottleneck, UniversalInvertedBottleneck))
    yield from parts(block)
    out = block.pw if isinstance(block, DepthwiseSeparable) else getattr(block, "dw_end", None) or block.project
    if isinstance(block, UniversalInvertedBottleneck) and block.layer_scale is not None:
        yield LayerScale(block.path, out.cout, out.out_hw, block.layer_scale)
    if block.residual:
        yield ResidualAdd(block.path, out.cout, out.out_hw)


def block_input(block: Block) -> tuple[int, tuple[int, int]]:
    """The channels and spatial size a block takes."""
    if isinstance(block, Classifier):
        return block.cin, (1, 1)
    if isinstance(block, Pool):
        return block.channels, block.in_hw
    if isinstance(block, MobileAttention):
        return block.channels, block.hw
    if isinstance(block, GhostBottleneck):
        first = block.ghost1.primary
    elif isinstance(block, ShuffleV1Unit):
        first = block.reduce
    elif isinstance(block, ShuffleUnit):
        if block.down_dw is None:
            return 2 * block.pw1.cin, block.pw1.in_hw  # at stride 1, pw1 sees half the channels
        first = block.down_dw
    elif isinstance(block, MobileOneBlock):
        first = block.first
    elif isinstance(block, ConvBnAct):
        first = block
    elif isinstance(block, DepthwiseSeparable):
        first = block.dw
    elif isinstance(block, FusedInvertedBottleneck):
        first = block.expand
    else:
        first = block.dw_start or block.expand
    return first.cin, first.in_hw


def block_output(block: Block) -> tuple[int, tuple[int, int]]:
    """The channels and spatial size a block gives."""
    if isinstance(block, Classifier):
        return block.classes, (1, 1)
    if isinstance(block, Pool):
        return block.channels, block.out_hw
    if isinstance(block, GhostBottleneck):
        return block.ghost2.out, block.ghost2.cheap.out_hw
    if isinstance(block, ShuffleUnit):
        return 2 * block.pw2.cout, block.pw2.out_hw
    if isinstance(block, ShuffleV1Unit):
        return block.expand.cout + (block.shortcut.channels if block.shortcut else 0), block.expand.out_hw
    if isinstance(block, MobileOneBlock):
        last = block.first
    elif isinstance(block, MobileAttention):
        last = block.output
    elif isinstance(block, ConvBnAct):
        last = block
    elif isinstance(block, DepthwiseSeparable):
        last = block.pw
    elif isinstance(block, FusedInvertedBottleneck):
        last = block.project
    else:
        last = block.dw_end or block.project
    return last.cout, last.out_hw


def ghost_module_layers(module: GhostModule) -> Iterator[Layer]:
    yield module.primary
    yield module.cheap
    yield Concat(f"{module.path}.concat", module.out, module.cheap.out_hw)


def ghost_layers(block: GhostBottleneck) -> Iterator[Layer]:
    yield from ghost_module_layers(block.ghost1)
    yield from (p for p in (block.dw, block.se) if p is not None)
    yield from ghost_module_layers(block.ghost2)
    yield from (p for p in (block.shortcut_dw, block.shortcut_pw) if p is not None)
    yield ResidualAdd(block.path, block.ghost2.out, block.ghost2.cheap.out_hw)


def shuffle_v1_layers(unit: ShuffleV1Unit) -> Iterator[Layer]:
    yield unit.reduce
    if unit.groups > 1:
        yield ChannelShuffle(f"{unit.path}.shuffle", unit.groups, unit.reduce.cout, unit.reduce.out_hw)
    yield unit.dw
    yield unit.expand
    channels, hw = unit.expand.cout, unit.expand.out_hw
    if unit.shortcut is not None:
        yield unit.shortcut
        channels += unit.shortcut.channels
        yield Concat(f"{unit.path}.concat", channels, hw)
    else:
        yield ResidualAdd(unit.path, channels, hw)
    if unit.act != "identity":
        yield Activation(unit.path, unit.act, channels, hw)


def shuffle_layers(unit: ShuffleUnit) -> Iterator[Layer]:
    yield from (p for p in (unit.down_dw, unit.down_pw, unit.pw1, unit.dw, unit.pw2) if p is not None)
    channels = 2 * unit.pw2.cout
    yield Concat(f"{unit.path}.concat", channels, unit.pw2.out_hw)
    yield ChannelShuffle(f"{unit.path}.shuffle", 2, channels, unit.pw2.out_hw)


def network_layers(net: Network) -> Iterator[Layer]:
    for block in net.blocks():
        yield from layers_of(block)


def tensors_of(layer: Layer) -> list[Tensor]:
    if isinstance(layer, ConvBnAct):
        p = layer.path
        out = [
            Tensor(f"{p}.conv.weight", (layer.cout, layer.cin // layer.groups, layer.kernel, layer.kernel), "weight")
        ]
        if layer.bias:
            out.append(Tensor(f"{p}.conv.bias", (layer.cout,), "bias"))
        if layer.norm is not None:
            out += [Tensor(f"{p}.bn.{n}", (layer.cout,), r) for n, r in _BN]
        return out
    if isinstance(layer, SqueezeExcite):
        p, c, r = layer.path, layer.channels, layer.reduced
        return [
            Tensor(f"{p}.reduce.weight", (r, c, 1, 1), "weight"),
            Tensor(f"{p}.reduce.bias", (r,), "bias"),
            Tensor(f"{p}.expand.weight", (c, r, 1, 1), "weight"),
            Tensor(f"{p}.expand.bias", (c,), "bias"),
        ]
    if isinstance(layer, InputNorm):
        return [Tensor(f"{layer.path}.{n}", (layer.channels,), r) for n, r in _BN]
    if isinstance(layer, LayerScale):
        return [Tensor(f"{layer.path}.layer_scale.gamma", (layer.channels,), "layer_scale")]
    if isinstance(layer, Classifier):
        return [
            Tensor(f"{layer.path}.fc.weight", (layer.classes, layer.cin), "weight"),
            Tensor(f"{layer.path}.fc.bias", (layer.classes,), "bias"),
        ]
    return []


_BN = (("weight", "bn_weight"), ("bias", "bn_bias"), ("running_mean", "bn_mean"), ("running_var", "bn_var"))


def network_tensors(net: Network) -> list[Tensor]:
    return [t for layer in network_layers(net) for t in tensors_of(layer)]
