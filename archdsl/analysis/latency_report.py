"""`archdsl latency`'s output: the predicted time of a network per call, and its split over
blocks (or layers), from a calibrated profile."""

from __future__ import annotations

from typing import Any

from ..ir.network import Network
from .latency import LayerTime, Profile
from .report import aligned, block_seconds

Prediction = tuple[float, list[LayerTime]]


def _header(net: Network, profile: Profile, form: str) -> str:
    shape = "x".join(map(str, net.input_shape))
    return (f"{net.name}: predicted batch-1 latency on {profile.runtime}, {profile.threads} thread(s), input {shape}, "
            f"{form} form; profile of {len(profile.entries)} measured units, {len(profile.networks)} network(s)")  # fmt: skip


def report_text(net: Network, profile: Profile, predicted: Prediction, form: str, per_layer: bool = False) -> str:
    total, layers = predicted
    fitted = sum(t.source.startswith("fitted") for t in layers)
    measured = sum(t.source == "measured" for t in layers)
    lines = [_header(net, profile, form),
             f"total {total * 1e3:.3f} ms per call; {measured} layer(s) measured, {fitted} fitted from similar units, "
             f"{len(layers) - measured - fitted} folded into others"]  # fmt: skip
    if per_layer:
        rows = [("layer", "ms", "share", "from")]
        rows += [(t.path, f"{t.seconds * 1e3:.3f}", f"{t.seconds / total:.1%}", t.source) for t in layers]
    else:
        rows = [("block", "ms", "share", "")]
        rows += [(b, f"{s * 1e3:.3f}", f"{s / total:.1%}", "") for b, s in block_seconds(predicted).items()]
    return "\n".join(lines + aligned(rows, indent="  ")) + "\n"


def report_json(net: Network, profile: Profile, predicted: Prediction, form: str) -> dict[str, Any]:
    total, layers = predicted
    return {"network": net.name, "source": net.source, "form": form, "runtime": profile.runtime,
            "threads": profile.threads, "seconds": total, "overhead_seconds": profile.overhead,
            "blocks": block_seconds(predicted),
            "layers": [{"path": t.path, "block": t.block, "seconds": t.seconds, "from": t.source} for t in layers]}  # fmt: skip
