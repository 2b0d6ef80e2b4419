"""Exact cost of every layer: parameters, MACs, element-wise ops, and memory traffic.

Conventions (docs/cost.md has the details):
- params: every learnable tensor (conv/linear weights and biases, BN gamma and beta, layer
  scale); BN running statistics are buffers, not params.
- macs: one multiply-accumulate = 1, for convolutions and linear layers; equal to torch's
  FlopCounterMode count / 2. Bias adds are not MACs.
- elementwise: other arithmetic per element, reported apart: BN 2 (scale, shift), each
  non-identity activation 1, SE squeeze 1 per input element and gating 1, residual add 1,
  layer scale 1, a sum of n branches n - 1; global pooling 1 per input element, windowed pooling 1 per window element
  of each output.
- weight_bytes: params x dtype size. activation_bytes: elements read plus elements written by
  each layer, a layer being a conv with its BN and activation, an SE, a residual add, a layer
  scale, a pool or the classifier; no fusion across layers is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir.geometry import BLUR_KERNEL
from ..ir.layers import (
    Activation,
    AttentionCore,
    Blur,
    BranchSum,
    ChannelShuffle,
    Concat,
    DynamicRelu,
    Gate,
    InputNorm,
    Layer,
    LayerNorm,
    LayerScale,
    Linear,
    ResidualAdd,
    TokenGate,
    TokenLinear,
    Tokens,
    Upsample,
    split_blur,
)
from ..ir.network import Block, Network
from ..ir.nodes import ConvBnAct, Pool, SqueezeExcite
from .layers import layers_of, tensors_of

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


@dataclass(frozen=True)
class Cost:
    params: int = 0  # learnable scalars
    macs: int = 0  # multiply-accumulates
    elementwise: int = 0  # other element-wise arithmetic ops
    activation_elems: int = 0  # activation scalars read + written

    def __add__(self, other: Cost) -> Cost:  # summed over every layer of a network: kept plain
        return Cost(self.params + other.params, self.macs + other.macs, self.elementwise + other.elementwise,
                    self.activation_elems + other.activation_elems)  # fmt: skip

    def weight_bytes(self, dtype: str = "float32") -> int:
        return self.params * DTYPE_BYTES[dtype]  # every learnable scalar is read once

    def activation_bytes(self, dtype: str = "float32") -> int:
        return self.activation_elems * DTYPE_BYTES[dtype]


def _area(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


def _conv(layer: ConvBnAct, params: int) -> Cost:
    if layer.aa:  # what it runs: the conv at stride 1, then the blur (no tensors of its own)
        conv, blur = split_blur(layer)
        return _conv(conv, params) + _blur(blur, 0)
    out = layer.cout * _area(layer.out_hw)
    macs = out * (layer.cin // layer.groups) * layer.kernel**2
    ew = out * ((2 if layer.norm else 0) + (layer.act != "identity"))
    return Cost(params, macs, ew, layer.cin * _area(layer.in_hw) + out)


def _blur(layer: Blur, params: int) -> Cost:
    n_in, n_out = layer.channels * _area(layer.in_hw), layer.channels * _area(layer.out_hw)
    return Cost(0, n_out * BLUR_KERNEL**2, 0, n_in + n_out)  # a depthwise 3x3 conv's MACs


def _se(layer: SqueezeExcite, params: int) -> Cost:
    n = layer.channels * _area(layer.hw)
    macs = 2 * layer.channels * layer.reduced
    ew = 2 * n + layer.reduced + layer.channels  # squeeze, gating, the two small activations
    return Cost(params, macs, ew, 2 * n)


@dataclass(frozen=True)
class _Elementwise:
    """A layer of `ops` ops per element that reads `reads` tensors of its size and writes one.
    (A class, not a closure made at import: its arithmetic runs, and is tested, at each call.)"""

    ops: int
    reads: int

    def __call__(self, layer: LayerScale | ResidualAdd | InputNorm | Activation, params: int) -> Cost:
        n = layer.channels * _area(layer.hw)
        return Cost(params, 0, self.ops * n, (self.reads + 1) * n)


def _branch_sum(layer: BranchSum, params: int) -> Cost:
    n = layer.channels * _area(layer.hw)
    return Cost(0, 0, (layer.terms - 1) * n, (layer.terms + 1) * n)


def _attention(layer: AttentionCore, params: int) -> Cost:
    n, m, h = layer.queries, layer.keys, layer.heads
    macs = n * h * m * (layer.key_dim + layer.value_dim)  # q k^T and (softmax) v
    scores = n * h * m
    ew = n * h * layer.key_dim + 3 * scores  # scaling q; softmax: subtract max, exp, divide
    reads = n * h * layer.key_dim + m * layer.kv_heads * (layer.key_dim + layer.value_dim)
    return Cost(0, macs, ew, reads + 2 * scores + n * h * layer.value_dim)


def _moved(layer: Concat | ChannelShuffle, params: int) -> Cost:  # data movement only
    return Cost(0, 0, 0, 2 * layer.channels * _area(layer.hw))


def _upsample(layer: Upsample, params: int) -> Cost:
    n_in, n_out = layer.channels * _area(layer.in_hw), layer.channels * _area(layer.out_hw)
    taps = 4 if layer.mode == "bilinear" else 0  # four weighted taps per output element; nearest copies
    return Cost(0, 0, taps * n_out, n_in + n_out)


def _gate(layer: Gate, params: int) -> Cost:
    n = layer.channels * _area(layer.hw)
    return Cost(0, 0, n, 2 * n + layer.channels)  # reads x and the factors, writes x


def _pool(layer: Pool, params: int) -> Cost:
    n_in, n_out = layer.channels * _area(layer.in_hw), layer.channels * _area(layer.out_hw)
    ew = n_in if layer.is_global else n_out * layer.kernel**2
    return Cost(0, 0, ew, n_in + n_out)


def _linear(layer: Linear, params: int) -> Cost:
    return Cost(params, layer.cin * layer.classes, 0, layer.cin + layer.classes)


def _token_linear(layer: TokenLinear, params: int) -> Cost:
    out = layer.rows * layer.cout
    return Cost(
        params, layer.rows * layer.cin * layer.cout, out * (layer.act != "identity"), layer.rows * layer.cin + out
    )


def _layer_norm(layer: LayerNorm, params: int) -> Cost:
    n = layer.rows * layer.dim
    return Cost(params, 0, 5 * n, 2 * n)  # mean, variance, normalise, scale, shift


def _dynamic_relu(layer: DynamicRelu, params: int) -> Cost:
    n = layer.channels * _area(layer.hw)
    return Cost(0, 0, 3 * n + 4 * layer.channels, 2 * n + 2 * layer.channels)  # x a, x b, max; the coefficients


def _token_gate(layer: TokenGate, params: int) -> Cost:
    n = layer.rows * layer.channels
    return Cost(0, 0, n, 3 * n)


# Every primitive layer type's cost, given its learnable parameter count.
COSTS: dict[type, Callable[..., Cost]] = {
    ConvBnAct: _conv,
    Blur: _blur,
    SqueezeExcite: _se,
    LayerScale: _Elementwise(1, 1),
    ResidualAdd: _Elementwise(1, 2),
    InputNorm: _Elementwise(2, 1),
    Activation: _Elementwise(1, 1),
    BranchSum: _branch_sum,
    AttentionCore: _attention,
    Concat: _moved,
    ChannelShuffle: _moved,
    Upsample: _upsample,
    Gate: _gate,
    Pool: _pool,
    Linear: _linear,
    Tokens: lambda layer, params: Cost(params, 0, 0, layer.count * layer.dim),
    TokenLinear: _token_linear,
    LayerNorm: _layer_norm,
    DynamicRelu: _dynamic_relu,
    TokenGate: _token_gate,
}


def layer_cost(layer: Layer) -> Cost:
    params = sum(t.numel for t in tensors_of(layer) if t.learnable)
    return COSTS[type(layer)](layer, params)


def block_cost(block: Block) -> Cost:
    return sum((layer_cost(layer) for layer in layers_of(block)), Cost())


def network_cost(net: Network) -> Cost:
    return sum((block_cost(b) for b in net.blocks()), Cost())
