"""`fused_ib`: the fused inverted bottleneck (EfficientNetV2 / MobileNetV4's FusedIB, timm's
EdgeResidual): a full k x k expand conv -> [SE] -> 1x1 project [+ residual]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, residual_tail
from ..ir.nodes import BlockNode, BlockSpec, ConvBnAct, SqueezeExcite
from .build import Builder
from .kind import BlockKind, TorchPiece, Word
from .timm_names import StageNames
from .uib import OPTIONS as UIB_OPTIONS

if TYPE_CHECKING:
    from ..codegen.steps import Step


class FusedInvertedBottleneck(BlockNode):
    """Fused IB (EdgeResidual): full k x k expand conv -> [SE] -> 1x1 project [+ residual]."""

    kind: Literal["fused_ib"] = "fused_ib"
    path: str
    expand: ConvBnAct
    se: SqueezeExcite | None
    project: ConvBnAct
    residual: bool
    drop_path: float = 0.0


OPTIONS = UIB_OPTIONS - {"k_start", "k_mid", "k_end", "layer_scale", "gs", "stride_at"}  # no depthwise conv


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[FusedInvertedBottleneck, FeatureMap]:
    assert b.kernel and b.out
    mid = ctx.mid_channels(b, x.c)
    expand = ctx.conv(b, f"{path}.expand", x, mid, b.kernel[0], b.stride, 1, b.act)
    se = ctx.se(b, f"{path}.se", x.c, mid, b.out, expand.out_hw)
    project = ctx.conv(b, f"{path}.project", FeatureMap(mid, expand.out_hw), b.out, 1, 1, 1, None)
    y = FeatureMap(b.out, project.out_hw)
    block = FusedInvertedBottleneck.make(path=path, expand=expand, se=se, project=project,
                                         residual=ctx.residual(b, x, y, b.stride), drop_path=b.drop_path)  # fmt: skip
    return block, y


def sequence(block: FusedInvertedBottleneck) -> list[ConvBnAct | SqueezeExcite]:
    return [p for p in (block.expand, block.se, block.project) if p is not None]


def layers(block: FusedInvertedBottleneck) -> Iterator[Layer]:
    yield from sequence(block)
    yield from residual_tail(block.path, block.project.cout, block.project.out_hw, block.residual)


def steps(block: FusedInvertedBottleneck) -> list[Step]:
    from ..codegen.steps import residual_steps

    return residual_steps([*sequence(block)], block.path, block.residual, drop_path=block.drop_path)


def torch_call(block: FusedInvertedBottleneck, t: Any) -> Any:
    return t.call("FusedInvertedBottleneck", ("expand", t.conv(block.expand)), ("se", t.se(block.se)),
                  ("project", t.conv(block.project)), *t.residual(block))  # fmt: skip


KIND = BlockKind(
    name="fused_ib",
    node=FusedInvertedBottleneck,
    words={"fused_ib": Word(OPTIONS, "fused IB: full k x k expand, 1x1 project", ("out", "kernel", "expansion"))},
    build=build,
    layers=layers,
    input=lambda b: (b.expand.cin, b.expand.in_hw),
    output=lambda b: (b.project.cout, b.project.out_hw),
    steps=steps,
    torch=TorchPiece("fused_ib.py.j2", ("FusedInvertedBottleneck",), torch_call, drop_path=True),
    timm={"efficientnet": StageNames({"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")})},
)
