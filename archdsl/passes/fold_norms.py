"""The deploy form of a network: every BatchNorm folded into the conv before it, which gains a
bias. `fold_norms` rewrites the IR; `fold_weights` rewrites canonical weights to match, with the
spec's epsilon: w' = w * g, b' = (b - mean) * g + beta, g = gamma / sqrt(var + eps), computed in
float64. Paths do not change, so the deploy form loads into the same backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ir import ConvBnAct, Network, Node
from ..layers import network_tensors

if TYPE_CHECKING:
    import numpy as np

NAME = "fold_norms"


def _fold(node: Node) -> Node:
    if isinstance(node, ConvBnAct):
        return node.model_copy(update={"norm": None, "bias": True}) if node.norm is not None else node
    update: dict[str, Any] = {}
    for field in type(node).model_fields:
        value = getattr(node, field)
        if isinstance(value, Node):
            update[field] = _fold(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Node):
            update[field] = tuple(_fold(v) for v in value)
    return node.model_copy(update=update)


def fold_norms(net: Network) -> Network:
    folded = _fold(net)
    assert isinstance(folded, Network)
    return folded


def _convs(node: Node):  # type: ignore[no-untyped-def]
    if isinstance(node, ConvBnAct):
        yield node
        return
    for field in type(node).model_fields:
        value = getattr(node, field)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Node):
                yield from _convs(v)


def fold_weights(net: Network, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical weights of `fold_norms(net)` from those of the train-form `net`."""
    import numpy as np  # only here: compiling needs no numpy

    out = dict(weights)
    for conv in _convs(net):
        if conv.norm is None:
            continue
        p = conv.path
        gamma, beta, mean, var = (
            out.pop(f"{p}.bn.{t}").astype(np.float64) for t in ("weight", "bias", "running_mean", "running_var")
        )
        g = gamma / np.sqrt(var + conv.norm.eps)
        w = out[f"{p}.conv.weight"].astype(np.float64)
        b = out.get(f"{p}.conv.bias", np.zeros_like(mean)).astype(np.float64)
        out[f"{p}.conv.weight"] = (w * g.reshape(-1, 1, 1, 1)).astype(np.float32)
        out[f"{p}.conv.bias"] = ((b - mean) * g + beta).astype(np.float32)
    return {t.key: out[t.key] for t in network_tensors(fold_norms(net))}  # the deploy form's order
