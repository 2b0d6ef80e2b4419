"""The deploy form of a network: every BatchNorm folded into the conv before it, which gains a
bias, and each block kind's own merging (MobileOne's branches into one conv: `deploy` in its
module). `deploy_form` rewrites the IR; `deploy_weights` rewrites canonical weights to match,
in float64, with the spec's epsilon: w' = w * g, b' = (b - mean) * g + beta,
g = gamma / sqrt(var + eps). A merged MobileOne conv takes its block's path, so the deploy form
loads into the same backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..analysis.layers import network_tensors
from ..blocks import kind_of
from ..blocks.kind import CannotMerge
from .network import Network
from .nodes import BlockNode, ConvBnAct, Node

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CannotMerge", "deploy_form", "deploy_weights", "norm_affine"]


def _fold(node: Node) -> Node:
    if isinstance(node, ConvBnAct):  # the conv layer, a block of its own or inside one
        return node.model_copy(update={"norm": None, "bias": True}) if node.norm is not None else node
    if isinstance(node, BlockNode) and (merge := kind_of(node).deploy) is not None:
        return merge(node)  # type: ignore[no-any-return]
    update: dict[str, Any] = {}
    for field in type(node).model_fields:
        value = getattr(node, field)
        if isinstance(value, Node):
            update[field] = _fold(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Node):
            update[field] = tuple(_fold(v) for v in value)
    return node.model_copy(update=update)


def deploy_form(net: Network) -> Network:
    folded = _fold(net)
    assert isinstance(folded, Network)
    return folded.model_copy(update={"form": "deploy"})


def _convs(node: Node):  # type: ignore[no-untyped-def]
    if isinstance(node, ConvBnAct):
        yield node
        return
    for field in type(node).model_fields:
        value = getattr(node, field)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Node):
                yield from _convs(v)


def deploy_weights(net: Network, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical weights of `deploy_form(net)` from those of the train-form `net`."""
    import numpy as np  # only here: compiling needs no numpy

    out = {k: v.astype(np.float64) for k, v in weights.items()}
    for conv in _convs(net):
        if conv.norm is None:
            continue
        p = conv.path
        g, shift = norm_affine(out, f"{p}.bn", conv.norm.eps)
        b = out.get(f"{p}.conv.bias", np.zeros_like(g))
        out[f"{p}.conv.weight"] = out[f"{p}.conv.weight"] * g.reshape(-1, 1, 1, 1)
        out[f"{p}.conv.bias"] = b * g + shift
    for block in net.blocks():
        merge = kind_of(block).deploy_weights
        if merge is not None:
            merge(block, out)
    return {t.key: out[t.key].astype(np.float32) for t in network_tensors(deploy_form(net))}  # the deploy order


def norm_affine(weights: dict[str, np.ndarray], prefix: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm as y = g * x + shift (its tensors are removed from `weights`)."""
    import numpy as np

    gamma, beta, mean, var = (weights.pop(f"{prefix}.{t}") for t in ("weight", "bias", "running_mean", "running_var"))
    g = gamma / np.sqrt(var + eps)
    return g, beta - mean * g
