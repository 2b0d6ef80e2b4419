"""`conv`: conv k x k (groups) -> [BatchNorm] -> [act], optionally residual: a stem or head conv,
a pointwise projection, a depthwise conv (`dw`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, residual_tail
from ..ir.nodes import BlockSpec, ConvBnAct
from . import octave
from .build import Builder, groups_of
from .kind import BlockKind, TimmPlace, TorchPiece, Word
from .octave import OctaveBlock

if TYPE_CHECKING:
    from ..codegen.steps import Step

OPTIONS = frozenset({
    "k", "s", "c", "g", "x", "act", "norm", "eps", "bias", "skip", "noskip", "fixed", "dw", "padding", "aa", "dilation",
    "alpha",
})  # fmt: skip


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[ConvBnAct | OctaveBlock, FeatureMap]:
    if b.alpha is not None:
        return octave.build(ctx, b, path, x)
    assert b.kernel
    c = ctx.conv(b, path, x, b.out or x.c, b.kernel[0], b.stride, groups_of(b, x), b.act, b.bias)
    y = FeatureMap(c.cout, c.out_hw)
    res = ctx.residual(b, x, y, b.stride) if b.skip else False
    return c.model_copy(update={"residual": res}), y


def layers(c: ConvBnAct) -> Iterator[Layer]:
    yield c
    yield from residual_tail(c.path, c.cout, c.out_hw, c.residual)


def steps(c: ConvBnAct) -> list[Step]:
    from ..codegen.steps import residual_steps

    return residual_steps([c], c.path, c.residual)


def timm(c: ConvBnAct, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """timm's stem conv (`conv_stem`, `bn1`), a stage's ConvBnAct, or its head conv (MobileNetV3's
    `conv_head` + `norm_head`, EfficientNet's `conv_head` + `bn2`)."""
    if place.part == "stem":
        out[f"{c.path}.conv"], out[f"{c.path}.bn"] = "conv_stem", "bn1"
    elif place.part == "head":
        out[f"{c.path}.conv"] = "conv_head"
        out[f"{c.path}.bn"] = "norm_head" if "norm_head.weight" in state else "bn2"
    else:
        out[f"{c.path}.conv"], out[f"{c.path}.bn"] = f"{place.prefix}.conv", f"{place.prefix}.bn1"


def authors_stem(c: ConvBnAct, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """The Mobile-Former authors' stem: one Sequential of conv (`stem.0`), BN (`stem.1`), act."""
    if place.part == "stem":
        out[f"{c.path}.conv"], out[f"{c.path}.bn"] = "stem.0", "stem.1"


KIND = BlockKind(
    name="conv",
    node=ConvBnAct,
    words={"conv": Word(OPTIONS, "conv k x k -> BN -> act", needs=("out", "kernel"))},
    build=build,
    layers=layers,
    input=lambda c: (c.cin, c.in_hw),
    output=lambda c: (c.cout, c.out_hw),
    steps=steps,
    torch=TorchPiece("conv_bn_act.py.j2", ("ConvBnAct",), lambda c, t: t.conv(c)),
    timm={"efficientnet": timm, "mobile_former": authors_stem},
    takes=octave.takes,
)
