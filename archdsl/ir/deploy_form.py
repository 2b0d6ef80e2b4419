"""The deploy form of a network: every BatchNorm folded into the conv before it, which gains a
bias, and every MobileOne block's branches merged into one conv. `deploy_form` rewrites the IR;
`deploy_weights` rewrites canonical weights to match, in float64, with the spec's epsilon:
w' = w * g, b' = (b - mean) * g + beta, g = gamma / sqrt(var + eps). A MobileOne block's
folded branches add up: the 1x1 branch as the centre tap of a k x k kernel, the identity BN as
a kernel with a one at each channel's own centre tap. The merged conv keeps the first branch's
path, so the deploy form loads into the same backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..analysis.layers import network_tensors
from ..errors import ArchError
from .nodes import ConvBnAct, MobileOneBlock, Network, Node

if TYPE_CHECKING:
    import numpy as np

NAME = "deploy_form"


def _fold(node: Node) -> Node:
    if isinstance(node, ConvBnAct):
        return node.model_copy(update={"norm": None, "bias": True}) if node.norm is not None else node
    if isinstance(node, MobileOneBlock):
        _check_mergeable(node)
        # Without an SE between the sum and the activation, the merged conv applies it itself.
        act_inside = node.se is None
        merged = node.first.model_copy(
            update={"norm": None, "bias": True, "act": node.act if act_inside else "identity"}
        )
        return node.model_copy(
            update={
                "branches": (merged,),
                "scale": None,
                "identity": None,
                "act": "identity" if act_inside else node.act,
            }
        )
    update: dict[str, Any] = {}
    for field in type(node).model_fields:
        value = getattr(node, field)
        if isinstance(value, Node):
            update[field] = _fold(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Node):
            update[field] = tuple(_fold(v) for v in value)
    return node.model_copy(update=update)


class CannotMerge(ArchError):
    """A MobileOne block whose branches cannot merge into one conv: the network has no deploy
    form (`cost` reports that; `--deploy` fails with this error)."""


def _check_mergeable(block: MobileOneBlock) -> None:
    """The merged kernel adds the 1x1 branch at the k x k kernel's centre tap: right only where
    the k x k conv pads k // 2 on top and on the left (TF 'same' at stride 2 may not)."""
    first, k = block.first, block.first.kernel
    top, left = first.padding[0], first.padding[2]
    if (top, left) != (k // 2, k // 2) or (block.scale is not None and any(block.scale.padding)):
        raise CannotMerge(f"the branches of {block.path} cannot merge: its {k}x{k} conv pads {top} on top and {left} "
                        f"on the left, off-centre from its 1x1 branch", block.span, "use padding symmetric")  # fmt: skip


def deploy_form(net: Network) -> Network:
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


def deploy_weights(net: Network, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical weights of `deploy_form(net)` from those of the train-form `net`."""
    import numpy as np  # only here: compiling needs no numpy

    out = {k: v.astype(np.float64) for k, v in weights.items()}
    for conv in _convs(net):
        if conv.norm is None:
            continue
        p = conv.path
        g, shift = _norm_affine(out, f"{p}.bn", conv.norm.eps)
        b = out.get(f"{p}.conv.bias", np.zeros_like(g))
        out[f"{p}.conv.weight"] = out[f"{p}.conv.weight"] * g.reshape(-1, 1, 1, 1)
        out[f"{p}.conv.bias"] = b * g + shift
    for block in net.blocks():
        if isinstance(block, MobileOneBlock):
            _merge_branches(block, out)
    return {t.key: out[t.key].astype(np.float32) for t in network_tensors(deploy_form(net))}  # the deploy order


def _norm_affine(weights: dict[str, np.ndarray], prefix: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm as y = g * x + shift (its tensors are removed from `weights`)."""
    import numpy as np

    gamma, beta, mean, var = (weights.pop(f"{prefix}.{t}") for t in ("weight", "bias", "running_mean", "running_var"))
    g = gamma / np.sqrt(var + eps)
    return g, beta - mean * g


def _merge_branches(block: MobileOneBlock, out: dict[str, np.ndarray]) -> None:
    """Sum a MobileOne block's BN-folded branches into its first branch's conv."""
    import numpy as np

    first = block.first
    k, c = first.kernel, first.path
    weight, bias = out[f"{c}.conv.weight"], out.get(f"{c}.conv.bias", np.zeros(first.cout))  # no bias: no BN
    for branch in block.branches[1:]:
        weight = weight + out.pop(f"{branch.path}.conv.weight")
        bias = bias + out.pop(f"{branch.path}.conv.bias", 0.0)
    if block.scale is not None:
        s = block.scale.path
        weight = weight + np.pad(out.pop(f"{s}.conv.weight"), ((0, 0), (0, 0), (k // 2,) * 2, (k // 2,) * 2))
        bias = bias + out.pop(f"{s}.conv.bias", 0.0)
    if block.identity is not None:
        g, shift = _norm_affine(out, f"{block.path}.identity", block.identity.eps)
        per_group = first.cin // first.groups
        channels = np.arange(first.cout)
        identity = np.zeros_like(weight)
        identity[channels, channels % per_group, k // 2, k // 2] = g
        weight, bias = weight + identity, bias + shift
    out[f"{c}.conv.weight"], out[f"{c}.conv.bias"] = weight, bias
