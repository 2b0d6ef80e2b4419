"""Roofline figures in the style of MobileNetV4's: figure 2 (each network's latency against the
ridge point, relative to a baseline network) and figure 3 (one network's per-layer latency at a
low and a high ridge point). Rendered with matplotlib's Agg backend and fixed metadata, so the
same inputs give the same file bytes (SVG or PNG)."""

from __future__ import annotations

import io

from ..ir.network import Network
from .roofline import effective_macs, loads


def pyplot_agg():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "archdsl"  # ids in the SVG, otherwise random
    import matplotlib.pyplot as plt

    return plt


def figure_bytes(fig, fmt: str) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    metadata = {"Date": None, "Creator": "archdsl"} if fmt == "svg" else {"Software": "archdsl"}
    fig.savefig(buf, format=fmt, metadata=metadata, dpi=120)
    return buf.getvalue()


def sweep_figure(nets: list[Network], dtype: str, fmt: str, max_ridge: float = 500.0) -> bytes:
    """Figure 2: latency relative to `nets[0]` over ridge points 0 to `max_ridge`."""
    plt = pyplot_agg()
    ridges = [max_ridge * i / 100 for i in range(101)]
    per_net = [loads(net, dtype) for net in nets]
    base = [effective_macs(per_net[0], r) for r in ridges]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for net, layers in zip(nets, per_net, strict=True):
        ax.plot(ridges, [effective_macs(layers, r) / b for r, b in zip(ridges, base, strict=True)], label=net.name)
    ax.set_xlabel("ridge point (MACs/byte)")
    ax.set_ylabel(f"roofline latency relative to {nets[0].name}")
    ax.set_xlim(0, max_ridge)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"Roofline latency across hardware ({dtype})")
    fig.tight_layout()
    data = figure_bytes(fig, fmt)
    plt.close(fig)
    return data


def layers_figure(net: Network, dtype: str, fmt: str, low: float = 5.0, high: float = 500.0) -> bytes:
    """Figure 3: each layer's share of the roofline latency at a low and a high ridge point;
    memory-bound layers in one colour, compute-bound in another."""
    plt = pyplot_agg()
    layers = loads(net, dtype)
    fig, axes = plt.subplots(2, 1, figsize=(7.2, 4.8), sharex=True)
    for ax, ridge in zip(axes, (low, high), strict=True):
        total = effective_macs(layers, ridge) or 1.0
        shares = [x.effective(ridge) / total * 100 for x in layers]
        colours = ["tab:orange" if x.memory_bound(ridge) else "tab:blue" for x in layers]
        ax.bar(range(len(layers)), shares, color=colours, width=1.0)
        ax.set_ylabel("% of latency")
        ax.set_title(f"ridge point {ridge:g} MACs/byte", fontsize="medium")
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xlabel(f"layer of {net.name} (orange: memory-bound, blue: compute-bound)")
    fig.suptitle(f"{net.name}: per-layer roofline latency ({dtype})")
    fig.tight_layout()
    data = figure_bytes(fig, fmt)
    plt.close(fig)
    return data
