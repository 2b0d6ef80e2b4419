"""`ds` / `dsa`: depthwise-separable conv, dw k x k -> BN+act -> [SE] -> pw 1x1 -> BN, with a
residual where shapes allow (MobileNetV2/V3's first block, EfficientNet's DS); `dsa` is
MobileNetV1's form, with the activation after pw and no residual."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, residual_tail
from ..ir.nodes import BlockNode, BlockSpec, ConvBnAct, SqueezeExcite
from . import octave
from .build import Builder
from .kind import BlockKind, TorchPiece, Word
from .octave import OctaveBlock
from .timm_names import StageNames

if TYPE_CHECKING:
    from ..codegen.steps import Step


class DepthwiseSeparable(BlockNode):
    """dw k x k -> BN+act -> [SE] -> pw 1x1 -> BN [+act for the MobileNetV1 form] [+ residual]."""

    kind: Literal["ds"] = "ds"
    path: str
    variant: Literal["ds", "dsa"] = "ds"  # dsa: MobileNetV1's form, act after pw, no residual
    dw: ConvBnAct
    se: SqueezeExcite | None
    pw: ConvBnAct
    residual: bool
    drop_path: float = 0.0


OPTIONS = frozenset({
    "k", "s", "c", "x", "se", "act", "norm", "eps", "skip", "noskip", "fixed", "drop_path", "padding", "aa", "dilation",
    "alpha",
})  # fmt: skip


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[DepthwiseSeparable | OctaveBlock, FeatureMap]:
    if b.alpha is not None:
        return octave.build(ctx, b, path, x)
    assert b.kernel and b.out
    v1 = b.variant == "dsa"
    dw = ctx.conv(b, f"{path}.dw", x, x.c, b.kernel[0], b.stride, x.c, b.act)
    se = ctx.se(b, f"{path}.se", x.c, x.c, b.out, dw.out_hw)
    pw = ctx.conv(b, f"{path}.pw", FeatureMap(x.c, dw.out_hw), b.out, 1, 1, 1, b.act if v1 else None)
    y = FeatureMap(b.out, pw.out_hw)
    res = False if v1 else ctx.residual(b, x, y, b.stride)
    block = DepthwiseSeparable.make(path=path, variant="dsa" if v1 else "ds", dw=dw, se=se, pw=pw, residual=res,
                                    drop_path=b.drop_path)  # fmt: skip
    return block, y


def sequence(block: DepthwiseSeparable) -> list[ConvBnAct | SqueezeExcite]:
    """Its convs and SE, in execution order."""
    return [p for p in (block.dw, block.se, block.pw) if p is not None]


def layers(block: DepthwiseSeparable) -> Iterator[Layer]:
    yield from sequence(block)
    yield from residual_tail(block.path, block.pw.cout, block.pw.out_hw, block.residual)


def steps(block: DepthwiseSeparable) -> list[Step]:
    from ..codegen.steps import residual_steps

    return residual_steps([*sequence(block)], block.path, block.residual, drop_path=block.drop_path)


def torch_call(block: DepthwiseSeparable, t: Any) -> Any:
    return t.call("DepthwiseSeparable", ("dw", t.conv(block.dw)), ("se", t.se(block.se)), ("pw", t.conv(block.pw)),
                  *t.residual(block))  # fmt: skip


KIND = BlockKind(
    name="ds",
    node=DepthwiseSeparable,
    words={
        "ds": Word(OPTIONS, "depthwise-separable, linear pointwise, residual when shapes allow", ("out", "kernel")),
        "dsa": Word(
            OPTIONS - {"skip", "noskip", "drop_path"},
            "MobileNetV1 depthwise-separable: act after pw, no residual",
            ("out", "kernel"),
            variant="dsa",
        ),
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.dw.cin, b.dw.in_hw),
    output=lambda b: (b.pw.cout, b.pw.out_hw),
    steps=steps,
    torch=TorchPiece("depthwise_separable.py.j2", ("DepthwiseSeparable",), torch_call, drop_path=True),
    timm={"efficientnet": StageNames({"dw": ("conv_dw", "bn1"), "pw": ("conv_pw", "bn2")})},
    takes=octave.takes,
)
