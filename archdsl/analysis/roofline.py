"""MobileNetV4's roofline (Qin et al., 2024, section 3): a layer takes the longer of its compute
time, MACs / peak MACs/s, and its memory time, bytes / bandwidth; a network the sum over layers.

Dividing by the peak MACs/s leaves the ridge point, peak / bandwidth (MACs per byte), as the
only hardware figure: a layer costs max(MACs, ridge x bytes) "effective MACs", and seconds are
effective MACs / peak where the peak is known. At ridge 0 this is the MAC count; raising the
ridge charges memory traffic more, as accelerators do. Bytes are each layer's weights plus
activations read and written at the given dtype (`cost.py`), with no fusion across layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ir.network import Network
from .cost import layer_cost
from .hardware import Hardware
from .layers import layers_of
from .report import aligned, layer_kind, layer_path


@dataclass(frozen=True)
class LayerLoad:
    """One layer's work: MACs and the bytes it moves."""

    path: str
    block: str
    kind: str
    macs: int
    bytes: int

    def effective(self, ridge: float) -> float:
        return max(float(self.macs), ridge * self.bytes)

    def memory_bound(self, ridge: float) -> bool:
        return ridge * self.bytes > self.macs

    @property
    def intensity(self) -> float:
        """Operational intensity, MACs per byte: memory-bound below the ridge point."""
        return self.macs / self.bytes if self.bytes else float("inf")


def loads(net: Network, dtype: str) -> list[LayerLoad]:
    out = []
    for block in net.blocks():
        for layer in layers_of(block):
            c = layer_cost(layer)
            moved = c.weight_bytes(dtype) + c.activation_bytes(dtype)
            out.append(LayerLoad(layer_path(layer), block.path, layer_kind(layer), c.macs, moved))
    return out


def effective_macs(layers: list[LayerLoad], ridge: float) -> float:
    return sum(layer.effective(ridge) for layer in layers)


def roofline_seconds(net: Network, peak_macs_per_s: float, bytes_per_s: float, dtype: str = "float32") -> float:
    """Seconds on hardware with this peak and bandwidth."""
    return effective_macs(loads(net, dtype), peak_macs_per_s / bytes_per_s) / peak_macs_per_s


def sweep(nets: list[Network], ridges: list[float], dtype: str) -> list[list[float]]:
    """Effective MACs of each network (columns) at each ridge point (rows)."""
    per_net = [loads(net, dtype) for net in nets]
    return [[effective_macs(layers, r) for layers in per_net] for r in ridges]


def report_json(nets: list[Network], hw: Hardware, ridges: list[float], dtype: str) -> dict[str, Any]:
    table = sweep(nets, ridges, dtype)
    networks = []
    for i, net in enumerate(nets):
        layers = loads(net, dtype)
        total = effective_macs(layers, hw.ridge)
        networks.append({
            "network": net.name, "source": net.source, "macs": sum(x.macs for x in layers),
            "bytes": sum(x.bytes for x in layers), "effective_macs": total,
            "seconds": total / hw.peak_macs if hw.peak_macs else None,
            "memory_bound_layers": sum(x.memory_bound(hw.ridge) for x in layers),
            "layers": [{"path": x.path, "block": x.block, "kind": x.kind, "macs": x.macs, "bytes": x.bytes,
                        "effective_macs": x.effective(hw.ridge), "memory_bound": x.memory_bound(hw.ridge)}
                       for x in layers],
            "sweep": [{"ridge": r, "effective_macs": row[i], "relative": row[i] / row[0] if row[0] else None}
                      for r, row in zip(ridges, table, strict=True)],
        })  # fmt: skip
    hardware = {"name": hw.name, "ridge": hw.ridge, "dtype": hw.dtype, "source": hw.source,
                "peak_macs": hw.peak_macs, "bandwidth": hw.bandwidth}  # fmt: skip
    return {"hardware": hardware, "dtype": dtype, "ridges": ridges, "baseline": nets[0].name, "networks": networks}


def _time(effective: float, hw: Hardware) -> str:
    return f"{effective / hw.peak_macs * 1e3:.3f} ms" if hw.peak_macs else f"{effective / 1e6:,.1f}M eff. MACs"


def report_text(nets: list[Network], hw: Hardware, ridges: list[float], dtype: str, per_layer: bool = False) -> str:
    absolute = f", peak {hw.peak_macs:.3g} MACs/s, {hw.bandwidth:.3g} B/s" if hw.peak_macs else ""
    lines = [f"roofline on {hw.name}: ridge point {hw.ridge:g} MACs/byte{absolute}, {dtype}",
             f"  ({hw.source}; a layer takes max(MACs, ridge x bytes): docs/latency.md)", ""]  # fmt: skip
    for net in nets:
        layers = loads(net, dtype)
        total = effective_macs(layers, hw.ridge)
        bound = [x for x in layers if x.memory_bound(hw.ridge)]
        share = effective_macs(bound, hw.ridge) / total if total else 0.0
        lines.append(f"{net.name}: {_time(total, hw)} ({sum(x.macs for x in layers) / 1e6:,.1f}M MACs, "
                     f"{sum(x.bytes for x in layers) / 1e6:,.2f} MB moved); {len(bound)} of {len(layers)} layers "
                     f"memory-bound, {share:.0%} of the time")  # fmt: skip
        if len(nets) == 1:
            lines += _rows(layers, hw, per_layer)
    lines += ["", _sweep_text(nets, ridges, dtype)]
    return "\n".join(lines) + "\n"


def _rows(layers: list[LayerLoad], hw: Hardware, per_layer: bool) -> list[str]:
    """Where the time goes: per block (or per layer), with its intensity and what bounds it."""
    groups: dict[str, list[LayerLoad]] = {}
    for x in layers:
        groups.setdefault(x.path if per_layer else x.block, []).append(x)
    total = effective_macs(layers, hw.ridge) or 1.0
    rows = [("layer" if per_layer else "block", "MACs", "bytes", "MACs/byte", "bound", "share")]
    for name, group in groups.items():
        macs, moved, eff = sum(x.macs for x in group), sum(x.bytes for x in group), effective_macs(group, hw.ridge)
        bound = {True: "memory", False: "compute"}
        kinds = {bound[x.memory_bound(hw.ridge)] for x in group}
        rows.append((name, f"{macs:,}", f"{moved:,}", f"{macs / moved:.1f}" if moved else "-",
                     kinds.pop() if len(kinds) == 1 else "mixed", f"{eff / total:.1%}"))  # fmt: skip
    return aligned(rows, indent="  ")


def _sweep_text(nets: list[Network], ridges: list[float], dtype: str) -> str:
    table = sweep(nets, ridges, dtype)
    what = f"relative to {nets[0].name}" if len(nets) > 1 else "effective MACs (M)"
    head = ["ridge (MACs/byte)", *(n.name for n in nets)]
    rows = [head] + [
        [f"{r:g}", *(f"{v / row[0]:.3f}" if len(nets) > 1 and row[0] else f"{v / 1e6:,.1f}" for v in row)]
        for r, row in zip(ridges, table, strict=True)
    ]
    return f"ridge-point sweep, {what} (MobileNetV4, figure 2):\n" + "\n".join(aligned(rows))
