"""`output_stride N`: once the stem and stages have downsampled by N, every later stride becomes
a dilation, so the features keep 1/N of the input's size (DeepLab's atrous backbones).

The rule is timm's `output_stride`: a block whose stride would pass N runs at stride 1 with the
dilation reached so far, and the dilation is multiplied by its stride for the blocks after it
(torchvision and TF Model Garden's inverted bottlenecks give that block the multiplied rate
instead: written with explicit `dilation`). A block's own `dilation` multiplies the rate
(DeepLab's multi-grid). A de-strided block drops `aa` (there is nothing to downsample) and takes
a residual where its shapes now allow one, as timm's does. The head is left alone."""

from __future__ import annotations

from typing import Any

from ..blocks import KINDS
from ..errors import ArchError
from .nodes import BlockSpec, NetworkSpec, StageSpec
from .stages import map_stages

NAME = "output_stride"


def dilates(b: BlockSpec) -> bool:
    """Whether the block's kind, as written, takes `dilation`."""
    return any(w.variant == b.variant and "dilation" in w.options for w in KINDS[b.kind].words.values())


def output_stride(spec: NetworkSpec) -> NetworkSpec:
    target = spec.output_stride
    if target is None or NAME in spec.applied:
        return map_stages(spec, NAME, lambda s, _: s)  # recorded as applied, nothing else
    stride, rate = 1, 1  # reached so far

    def block(b: BlockSpec) -> BlockSpec:
        nonlocal stride, rate
        if b.stride > 1 and stride * b.stride <= target:
            stride *= b.stride
            return b
        if b.stride == 1 and rate == 1:
            return b
        if stride < target:
            raise ArchError(f"output_stride {target}: this block's stride {b.stride} takes the network from "
                            f"{stride} past it", b.at("s"), "give output_stride a value the strides reach exactly")  # fmt: skip
        if not dilates(b):
            if b.stride == 1:
                return b  # no k x k window to spread (attention) or no way to (see docs/language.md)
            raise ArchError(f"output_stride {target}: this {b.kind} block has stride {b.stride} past it, and "
                            f"{b.kind} blocks cannot dilate", b.at("s"),
                            "end the network's downsampling earlier, or use a larger output_stride")  # fmt: skip
        update: dict[str, Any] = {"dilation": b.dilation * rate}
        if b.stride > 1:
            update |= {"stride": 1, "aa": None}
            rate *= b.stride
        return b.model_copy(update=update)

    def stage(s: StageSpec, index: int | None) -> StageSpec:
        if s is spec.head:
            return s
        return s.model_copy(update={"blocks": tuple(block(b) for b in s.blocks)})

    out = map_stages(spec, NAME, stage)
    if stride < target:
        raise ArchError(f"output_stride {target}, but the network only downsamples by {stride}",
                        (spec.setting_spans or {}).get("output_stride"), f"use output_stride {stride} or less, or drop it")  # fmt: skip
    return out
