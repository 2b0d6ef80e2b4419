"""What the generated models offer training code, as timm's and Keras applications' models do:
where the head splits into `forward_features` (everything before the global pool) and
`forward_head` (the pool, what follows it, the classifier), their widths, and the
`pretrained_cfg` the data pipeline reads (input size, preprocessing)."""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.layers import layers_of
from ..blocks import kind_of
from ..ir.network import Network
from ..ir.nodes import ConvBnAct


@dataclass(frozen=True)
class HeadSplit:
    pool: int  # index of the head block where forward_head starts: the first to leave a 1x1 map
    global_pool: bool  # that block is a global pool, which `global_pool=` may replace
    num_features: int  # the channels forward_features gives
    hidden: int  # the classifier's input width (pre-logits)
    classifier: str  # the classifier's path
    tokens: bool = False  # forward_features gives the map and its tokens (Mobile-Former), not one tensor


def head_split(net: Network) -> HeadSplit:
    head = net.head.blocks
    flat = [i for i, b in enumerate(head[:-1]) if kind_of(b).output(b)[1] == (1, 1)]
    pool = flat[0] if flat else len(head) - 1
    before = head[pool - 1] if pool else (net.stages[-1].blocks[-1] if net.stages else net.stem.blocks[-1])
    block = head[pool]
    is_global = bool(getattr(block, "is_global", False))  # a global pool, which GlobalPool(mode) builds
    pair = kind_of(before).pair_maps(before)
    return HeadSplit(pool, is_global, kind_of(before).output(before)[0], kind_of(head[-1]).input(head[-1])[0],
                     head[-1].path, pair is not None and pair[1].pair == "tokens")  # fmt: skip


def first_conv(net: Network) -> str:
    """The first conv's weight path prefix."""
    first = next(layer for b in net.blocks() for layer in layers_of(b) if isinstance(layer, ConvBnAct))
    return f"{first.path}.conv"


def pretrained_cfg(net: Network) -> list[tuple[str, str]]:
    """(key, Python literal) pairs of timm's `pretrained_cfg` for this network (a dense one has
    no classifier to name)."""
    p = net.preprocess
    cfg = [("input_size", repr(tuple(net.input_shape))), ("interpolation", f'"{p.interpolation}"'),
           ("mean", repr(tuple(p.mean))), ("std", repr(tuple(p.std))), ("crop_pct", repr(p.crop_pct)),
           ("num_classes", str(net.classes)), ("first_conv", f'"{first_conv(net)}"')]  # fmt: skip
    return cfg if net.dense_head else [*cfg, ("classifier", f'"{head_split(net).classifier}.fc"')]


def sequence_call(module: str, start: int, stop: int, length: int) -> str | None:
    """`x = <module>[start:stop](x)` spelled as simply as it can be (None for no blocks)."""
    if start >= stop:
        return None
    if stop - start == 1:
        return f"x = {module}[{start}](x)"
    if start == 0 and stop == length:
        return f"x = {module}(x)"
    return f"x = {module}[{start or ''}:{stop if stop < length else ''}](x)"


def dense_outputs(net: Network) -> str | None:
    """A dense-prediction network's named outputs with their shapes (PyTorch's layout), for
    generated docstrings; None for a classifier."""
    if net.dense_head is None:
        return None
    return ", ".join(f"`{name}` (N, {', '.join(map(str, shape))})" for name, shape in net.outputs())
