"""The primitive layers of a resolved network, and the tensors each one owns.

Every backend, the cost model and the canonical weight file agree on this inventory: a tensor's
key is its layer's IR path plus a fixed name (PyTorch layout), listed in registration order.
Which layers a block has, its kind says (`layers` in `archdsl/blocks/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from ..blocks import kind_of
from ..ir.layers import InputNorm, Layer, LayerNorm, LayerScale, Linear, TokenLinear, Tokens, split_blur
from ..ir.network import Block, Network
from ..ir.nodes import ConvBnAct, SqueezeExcite


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


def layers_of(block: Block) -> Iterator[Layer]:
    """A block's primitive layers in execution (and registration) order; a conv with `aa=blur`
    as the two it runs (the conv at stride 1, then the blur)."""
    for layer in kind_of(block).layers(block):
        if isinstance(layer, ConvBnAct) and layer.aa:
            yield from split_blur(layer)
        else:
            yield layer


def block_input(block: Block) -> tuple[int, tuple[int, int]]:
    """The channels and spatial size a block takes."""
    return kind_of(block).input(block)


def block_output(block: Block) -> tuple[int, tuple[int, int]]:
    """The channels and spatial size a block gives."""
    return kind_of(block).output(block)


def network_layers(net: Network) -> Iterator[Layer]:
    for block in net.blocks():
        yield from layers_of(block)


_BN = (("weight", "bn_weight"), ("bias", "bn_bias"), ("running_mean", "bn_mean"), ("running_var", "bn_var"))


def _conv(layer: ConvBnAct) -> list[Tensor]:
    p = layer.path
    out = [Tensor(f"{p}.conv.weight", (layer.cout, layer.cin // layer.groups, layer.kernel, layer.kernel), "weight")]
    if layer.bias:
        out.append(Tensor(f"{p}.conv.bias", (layer.cout,), "bias"))
    if layer.norm is not None:
        out += [Tensor(f"{p}.bn.{n}", (layer.cout,), r) for n, r in _BN]
    return out


def _se(layer: SqueezeExcite) -> list[Tensor]:
    p, c, r = layer.path, layer.channels, layer.reduced
    return [
        Tensor(f"{p}.reduce.weight", (r, c, 1, 1), "weight"),
        Tensor(f"{p}.reduce.bias", (r,), "bias"),
        Tensor(f"{p}.expand.weight", (c, r, 1, 1), "weight"),
        Tensor(f"{p}.expand.bias", (c,), "bias"),
    ]


def _linear(layer: Linear) -> list[Tensor]:
    return [
        Tensor(f"{layer.path}.fc.weight", (layer.classes, layer.cin), "weight"),
        Tensor(f"{layer.path}.fc.bias", (layer.classes,), "bias"),
    ]


# The layer types that own tensors; every other layer owns none.
_TENSORS: dict[type, Callable[..., list[Tensor]]] = {
    ConvBnAct: _conv,
    SqueezeExcite: _se,
    InputNorm: lambda n: [Tensor(f"{n.path}.{name}", (n.channels,), role) for name, role in _BN],
    LayerScale: lambda s: [Tensor(f"{s.path}.layer_scale.gamma", (s.channels,), "layer_scale")],
    Linear: _linear,
    Tokens: lambda t: [Tensor(f"{t.path}.tokens", (t.count, t.dim), "weight")],
    TokenLinear: lambda f: [
        Tensor(f"{f.path}.weight", (f.cout, f.cin), "weight"),
        Tensor(f"{f.path}.bias", (f.cout,), "bias"),
    ],  # fmt: skip
    LayerNorm: lambda n: [
        Tensor(f"{n.path}.weight", (n.dim,), "bn_weight"),
        Tensor(f"{n.path}.bias", (n.dim,), "bn_bias"),
    ],
}


def tensors_of(layer: Layer) -> list[Tensor]:
    owner = _TENSORS.get(type(layer))
    return owner(layer) if owner is not None else []


def network_tensors(net: Network) -> list[Tensor]:
    return [t for layer in network_layers(net) for t in tensors_of(layer)]
