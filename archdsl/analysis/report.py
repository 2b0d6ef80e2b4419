"""The cost report of `archdsl cost`: a table per stage and block, or JSON for tools."""

from __future__ import annotations

from typing import Any, Sequence

from ..blocks import kind_of
from ..ir.deploy_form import CannotMerge, deploy_form
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
    LayerNorm,
    LayerScale,
    Linear,
    ResidualAdd,
    TokenGate,
    TokenLinear,
    Tokens,
    Upsample,
)
from ..ir.network import Block, Network
from .cost import Cost, block_cost, layer_cost, network_cost
from .layers import block_input, block_output, layers_of

# Layers that are not IR nodes: their row's path suffix (after the block path) and kind.
_DERIVED = {ResidualAdd: (".add", "add"), LayerScale: (".layer_scale", "layer_scale"), BranchSum: (".sum", "sum"),
            Activation: (".act", "act"), InputNorm: ("", "batchnorm"), AttentionCore: (".attention", "attention"),
            Upsample: ("", "upsample"), Gate: ("", "gate"), Concat: ("", "concat"), ChannelShuffle: ("", "shuffle"),
            Linear: ("", "classifier"), Blur: ("", "blur"), Tokens: ("", "tokens"), TokenLinear: ("", "linear"),
            LayerNorm: ("", "layernorm"), DynamicRelu: ("", "dynamic_relu"), TokenGate: ("", "gate")}  # fmt: skip


def _deploy_cost(net: Network) -> Cost | None:
    """The deploy form's cost, or None where it does not exist (branches that cannot merge)."""
    try:
        return network_cost(deploy_form(net))
    except CannotMerge:
        return None


def layer_path(layer: Any) -> str:
    suffix = _DERIVED.get(type(layer), ("", ""))[0]
    return f"{layer.path}{suffix}"


def layer_kind(layer: Any) -> str:
    return _DERIVED[type(layer)][1] if type(layer) in _DERIVED else layer.kind


def _numbers(c: Cost, dtype: str) -> dict[str, int]:
    return {
        "params": c.params,
        "macs": c.macs,
        "elementwise": c.elementwise,
        "weight_bytes": c.weight_bytes(dtype),
        "activation_bytes": c.activation_bytes(dtype),
    }


def block_seconds(latency: Any) -> dict[str, float]:
    """Predicted seconds per block, from `Predictor.network`'s (total, layer times)."""
    out: dict[str, float] = {}
    for t in latency[1]:
        out[t.block] = out.get(t.block, 0.0) + t.seconds
    return out


def backbone_cost(net: Network) -> Cost:
    """What the network built as a feature extractor computes: every block up to its last endpoint."""
    blocks = net.blocks()
    last = next(i for i, b in enumerate(blocks) if b.path == net.endpoints[-1].path)
    return sum((block_cost(b) for b in blocks[: last + 1]), Cost())


def _endpoints_json(net: Network, dtype: str) -> dict[str, Any]:
    if not net.endpoints:
        return {}
    endpoints = [{"name": e.name, "path": e.path, "channels": e.channels, "hw": list(e.hw), "reduction": e.reduction}
                 for e in net.endpoints]  # fmt: skip
    return {"endpoints": endpoints, "backbone_total": _numbers(backbone_cost(net), dtype)}


def cost_json(net: Network, dtype: str = "float32", latency: Any = None) -> dict[str, Any]:
    """Every layer's cost; with `latency` (`Predictor.network`'s answer), each layer's predicted
    seconds and the network's."""
    layers = []
    total = Cost()
    for block in net.blocks():
        for layer in layers_of(block):
            c = layer_cost(layer)
            total += c
            layers.append(
                {"path": layer_path(layer), "kind": layer_kind(layer), "block": block.path, **_numbers(c, dtype)}
            )
    if latency is not None:
        for row, t in zip(layers, latency[1], strict=True):
            row["predicted_seconds"] = t.seconds
    stages = [
        {"name": s.name, "path": s.path, "blocks": len(s.blocks),
         **_numbers(sum((block_cost(b) for b in s.blocks), Cost()), dtype)}
        for s in net.all_stages()
    ]  # fmt: skip
    deploy = _deploy_cost(net)
    return {
        "network": net.name,
        "source": net.source,
        "source_hash": net.source_hash,
        "input_shape": list(net.input_shape),
        "dtype": dtype,
        "total": _numbers(total, dtype),
        "deploy_total": None if deploy is None else _numbers(deploy, dtype),
        "stages": stages,
        "layers": layers,
        **_endpoints_json(net, dtype),
        **({} if latency is None else {"predicted_seconds": latency[0]}),
    }


def si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def cost_table(net: Network, dtype: str = "float32", latency: Any = None) -> str:
    """The cost per block; with `latency` (`Predictor.network`'s answer), a column of predicted
    milliseconds."""
    rows: list[tuple[str, ...]] = [("block", "kind", "output", "params", "MACs", "weights", "activations", "MACs/byte")]
    total = Cost()
    for stage in net.all_stages():
        label = stage.path if stage.name == stage.path else f"{stage.path} ({stage.name})"
        rows.append((label, "", "", "", "", "", "", ""))
        for block in stage.blocks:
            c = block_cost(block)
            total += c
            moved = c.weight_bytes(dtype) + c.activation_bytes(dtype)
            rows.append((
                "  " + block.path, getattr(block, "variant", block.kind), shape_text(block), f"{c.params:,}",
                f"{c.macs:,}", si(c.weight_bytes(dtype)) + "B", si(c.activation_bytes(dtype)) + "B",
                f"{c.macs / moved:.1f}" if moved else "-",
            ))  # fmt: skip
    moved = total.weight_bytes(dtype) + total.activation_bytes(dtype)
    rows.append(("total", "", "x".join(map(str, net.input_shape)) + " in", f"{total.params:,}", f"{total.macs:,}",
                 si(total.weight_bytes(dtype)) + "B", si(total.activation_bytes(dtype)) + "B",
                 f"{total.macs / moved:.1f}"))  # fmt: skip
    if latency is not None:
        ms = {path: f"{s * 1e3:.3f}" for path, s in block_seconds(latency).items()}
        rows[0] = (*rows[0], "pred. ms")
        for i in range(1, len(rows) - 1):
            rows[i] = (*rows[i], ms.get(rows[i][0].strip(), ""))
        rows[-1] = (*rows[-1], f"{latency[0] * 1e3:.3f}")
    lines = aligned(rows, left=3)
    deploy = _deploy_cost(net)
    if deploy is None:
        lines.append("deploy form: none (a MobileOne block's branches cannot merge; see `archdsl cost --deploy`)")
    else:
        lines.append(f"deploy form (BatchNorm folded, branches merged): {deploy.params:,} params, {deploy.macs:,} MACs")
    if net.endpoints:
        shown = ", ".join(f"{e.name} {e.channels}x{e.hw[0]}x{e.hw[1]} (1/{e.reduction})" for e in net.endpoints)
        backbone = backbone_cost(net)
        lines.append(f"feature endpoints: {shown}; the backbone up to them: {backbone.params:,} params, "
                     f"{backbone.macs:,} MACs")  # fmt: skip
    title = f"{net.name}: input {'x'.join(map(str, net.input_shape))} (CxHxW), {dtype}; MACs = multiply-accumulates"
    return title + "\n" + "\n".join(lines) + "\n"


def aligned(rows: Sequence[Sequence[str]], left: int = 1, indent: str = "") -> list[str]:
    """Rows as text columns two spaces apart: the first `left` columns left-aligned, the others
    (numbers) right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (
            indent
            + "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        ).rstrip()
        for r in rows
    ]


def shape_text(block: Block, side: str = "output") -> str:
    """A block's output (or input) as CxHxW, or as its length where it is a vector; a dense head's
    outputs joined with `+` (it reads the endpoints)."""
    predictions = kind_of(block).predictions
    if predictions is not None:  # a dense head
        return "endpoints" if side == "input" else " + ".join("x".join(map(str, s)) for _, s in predictions(block))
    pair = kind_of(block).pair_maps(block)
    if pair is not None:  # an octave pair: both parts
        return pair[side == "output"].show()
    c, (h, w) = block_output(block) if side == "output" else block_input(block)
    if side == "output" and kind_of(block).flat_output:
        return str(c)
    return f"{c}x{h}x{w}"
