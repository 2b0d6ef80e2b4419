"""Mobile-Former's parts beside the convs (Chen et al., 2022, "Mobile-Former: Bridging MobileNet
and Transformer"; the authors' code, AAboys/MobileFormer `dna_blocks.py`): the two-way bridge
between a feature map and a few global tokens, the Former that runs on the tokens, and the
dynamic ReLU whose coefficients come from the first token. The blocks that use them are in
`mobile_former.py` and `mf_merge.py`.

Tokens are (batch, count, dim). Channels split into heads head-major (channel = head x
(channels / heads) + j), as the authors' views do. The bridge has no key or value projection on
the map's side: the map's channels are the keys and values (Mobile->Former) and the queries
(Former->Mobile), which is what makes it light."""

from __future__ import annotations

from typing import Any, Iterator, Literal

from ..ir.layers import AttentionCore, DynamicRelu, Layer, LayerNorm, ResidualAdd, TokenGate, TokenLinear
from ..ir.nodes import HW, Node

FFN_EXPANSION = 2  # the Former's FFN: dim -> 2 dim (GELU) -> dim
HYPER_REDUCTION = 4  # the dynamic ReLU's coefficients: token -> dim / 4 (ReLU) -> 2 x channels


class ToFormer(Node):
    """Mobile->Former: the tokens attend to the map's pixels (`heads` heads, scores scaled by
    (channels / heads)^-1/2); the result, scaled per channel by 2 hard_sigmoid(alpha(tokens)), is
    projected to the tokens' width and added to them, then LayerNorm."""

    kind: Literal["to_former"] = "to_former"
    path: str
    channels: int
    hw: HW
    count: int
    dim: int
    heads: int


class Former(Node):
    """The Former: multi-head self-attention of the tokens (queries projected, keys and values
    the tokens themselves) with an output projection, + input, LayerNorm; then the FFN, + input,
    LayerNorm (post-norm, as the authors')."""

    kind: Literal["former"] = "former"
    path: str
    count: int
    dim: int
    heads: int


class ToMobile(Node):
    """Former->Mobile: the map's pixels attend to the tokens (keys and values projected from
    them to the map's channels), added to the map."""

    kind: Literal["to_mobile"] = "to_mobile"
    path: str
    channels: int
    hw: HW
    count: int
    dim: int
    heads: int


class DynamicReLU(Node):
    """max(x a, x b) per channel, a = 2 s_1 and b = 2 s_2 - 1 for s = hard_sigmoid(fc2(relu(fc1(t))))
    of the first token t: a ReLU whose slopes the tokens choose (DY-ReLU, as the authors')."""

    kind: Literal["dynamic_relu"] = "dynamic_relu"
    path: str
    channels: int
    hw: HW
    dim: int  # the tokens'
    reduced: int


class Shuffle(Node):
    """A channel shuffle of `groups` groups (after a grouped conv: Mobile-Former's `g`)."""

    kind: Literal["shuffle"] = "shuffle"
    path: str
    groups: int
    channels: int
    hw: HW


def _cross(b: ToFormer | ToMobile, to_tokens: bool) -> AttentionCore:
    """The bridge's attention: the tokens' queries over the pixels, or the pixels' over the tokens."""
    pixels, per_head = b.hw[0] * b.hw[1], b.channels // b.heads
    queries, keys = (b.count, pixels) if to_tokens else (pixels, b.count)
    return AttentionCore(b.path, b.heads, b.heads, per_head, per_head, queries, keys)


def to_former_layers(b: ToFormer) -> Iterator[Layer]:
    p, t = b.path, b.count
    yield TokenLinear(f"{p}.q", b.dim, b.channels, t)
    yield _cross(b, to_tokens=True)
    yield TokenLinear(f"{p}.alpha", b.dim, b.channels, t, "hard_sigmoid")
    yield TokenGate(f"{p}.gate", t, b.channels)
    yield TokenLinear(f"{p}.proj", b.channels, b.dim, t)
    yield ResidualAdd(p, b.dim, (t, 1))
    yield LayerNorm(f"{p}.norm", b.dim, t)


def former_layers(b: Former) -> Iterator[Layer]:
    p, t, d = b.path, b.count, b.dim
    yield TokenLinear(f"{p}.q", d, d, t)
    yield AttentionCore(p, b.heads, b.heads, d // b.heads, d // b.heads, t, t)
    yield TokenLinear(f"{p}.proj", d, d, t)
    yield ResidualAdd(p, d, (t, 1))
    yield LayerNorm(f"{p}.norm", d, t)
    yield TokenLinear(f"{p}.ffn1", d, FFN_EXPANSION * d, t, "gelu")
    yield TokenLinear(f"{p}.ffn2", FFN_EXPANSION * d, d, t)
    yield ResidualAdd(f"{p}.ffn", d, (t, 1))
    yield LayerNorm(f"{p}.ffn_norm", d, t)


def to_mobile_layers(b: ToMobile) -> Iterator[Layer]:
    p, t = b.path, b.count
    yield TokenLinear(f"{p}.k", b.dim, b.channels, t)
    yield TokenLinear(f"{p}.proj", b.dim, b.channels, t)  # the values
    yield _cross(b, to_tokens=False)
    yield ResidualAdd(p, b.channels, b.hw)


def dynamic_relu_layers(b: DynamicReLU) -> Iterator[Layer]:
    yield TokenLinear(f"{b.path}.fc1", b.dim, b.reduced, 1, "relu")
    yield TokenLinear(f"{b.path}.fc2", b.reduced, 2 * b.channels, 1, "hard_sigmoid")
    yield DynamicRelu(b.path, b.channels, b.hw)


def layers(part: ToFormer | Former | ToMobile | DynamicReLU | Shuffle) -> Iterator[Layer]:
    """The layers of any of these parts (a Shuffle: its one)."""
    from ..ir.layers import ChannelShuffle

    if isinstance(part, Shuffle):
        yield ChannelShuffle(part.path, part.groups, part.channels, part.hw)
        return
    yield from {ToFormer: to_former_layers, Former: former_layers, ToMobile: to_mobile_layers,
                DynamicReLU: dynamic_relu_layers}[type(part)](part)  # type: ignore[operator]  # fmt: skip


def torch_call(part: ToFormer | Former | ToMobile | DynamicReLU, t: Any) -> Any:
    """The constructor call of a part's PyTorch class (backends/torch/mobile_former.py.j2)."""
    note = t.cost_note(layers(part))
    if isinstance(part, Former):
        return t.call("Former", ("", str(part.dim)), ("heads", str(part.heads)), comment=note)
    if isinstance(part, DynamicReLU):
        return t.call("DynamicReLU", ("", str(part.channels)), ("", str(part.dim)), ("", str(part.reduced)),
                      comment=note)  # fmt: skip
    name = "MobileToFormer" if isinstance(part, ToFormer) else "FormerToMobile"
    return t.call(name, ("", str(part.channels)), ("", str(part.dim)), ("heads", str(part.heads)), comment=note)


def authors_names(part: ToFormer | Former | ToMobile | DynamicReLU, src: str, out: dict[str, str]) -> None:
    """Our module path -> the authors' (AAboys/MobileFormer) for a part's layers; `src`: the
    part's module there (`features.3.local_global`, `features.3.hyper1`, ...)."""
    p = part.path
    if isinstance(part, ToFormer):
        names = {"q": "q", "alpha": "alpha.0", "proj": "proj", "norm": "layer_norm"}
    elif isinstance(part, Former):
        names = {"q": "q", "proj": "channel_mlp", "norm": "layer_norm", "ffn1": "ffn.0", "ffn2": "ffn.2",
                 "ffn_norm": "ffn_norm"}  # fmt: skip
    elif isinstance(part, ToMobile):
        names = {"k": "k", "proj": "proj"}
    else:
        names = {"fc1": "hyper.0", "fc2": "hyper.2"}
    out.update({f"{p}.{ours}": f"{src}.{theirs}" for ours, theirs in names.items()})
