"""`shuffle_v2`: ShuffleNetV2's unit (Ma et al., 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import ChannelShuffle, Concat, Layer
from ..ir.nodes import HW, BlockNode, BlockSpec, ConvBnAct
from .build import Builder
from .kind import BlockKind, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class ShuffleUnit(BlockNode):
    """ShuffleNetV2 unit. Stride 1: split the channels in halves, the second through pw1 -> dw
    -> pw2, concatenated after the untouched first half. Stride 2: both branches see the whole
    input, the side one through `down_dw` -> `down_pw`, both halve the size. Then the channels
    are shuffled across the two halves (interleaved)."""

    kind: Literal["shuffle_v2"] = "shuffle_v2"
    path: str
    down_dw: ConvBnAct | None
    down_pw: ConvBnAct | None
    pw1: ConvBnAct
    dw: ConvBnAct
    pw2: ConvBnAct


OPTIONS = frozenset({"s", "c", "x", "act", "norm", "eps", "fixed"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[ShuffleUnit, FeatureMap]:
    assert b.out
    s, half = b.stride, b.out // 2
    if b.out % 2:
        raise ArchError(f"a shuffle_v2 unit needs an even channel count, got {b.out}", b.at("c"))
    down_dw = down_pw = None
    if s == 1:
        if x.c != b.out:
            raise ArchError(f"a stride-1 shuffle_v2 unit keeps its {x.c} channels, not {b.out}", b.at("c"),
                            "change the width in a stride-2 unit")  # fmt: skip
        branch = FeatureMap(half, x.hw)  # the second half of the input channels
    else:
        down_dw = ctx.conv(b, f"{path}.down_dw", x, x.c, 3, s, x.c, None)
        down_pw = ctx.conv(b, f"{path}.down_pw", FeatureMap(x.c, down_dw.out_hw), half, 1, 1, 1, b.act)
        branch = x
    pw1 = ctx.conv(b, f"{path}.pw1", branch, half, 1, 1, 1, b.act)
    dw = ctx.conv(b, f"{path}.dw", FeatureMap(half, pw1.out_hw), half, 3, s, half, None)
    pw2 = ctx.conv(b, f"{path}.pw2", FeatureMap(half, dw.out_hw), half, 1, 1, 1, b.act)
    unit = ShuffleUnit.make(path=path, down_dw=down_dw, down_pw=down_pw, pw1=pw1, dw=dw, pw2=pw2)
    return unit, FeatureMap(b.out, pw2.out_hw)


def layers(unit: ShuffleUnit) -> Iterator[Layer]:
    yield from (p for p in (unit.down_dw, unit.down_pw, unit.pw1, unit.dw, unit.pw2) if p is not None)
    channels = 2 * unit.pw2.cout
    yield Concat(f"{unit.path}.concat", channels, unit.pw2.out_hw)
    yield ChannelShuffle(f"{unit.path}.shuffle", 2, channels, unit.pw2.out_hw)


def steps(unit: ShuffleUnit) -> list[Step]:
    from ..codegen.steps import (
        BlockOutput,
        Branch,
        ConcatStep,
        ShuffleStep,
        SplitStep,
    )

    half = unit.pw2.cout
    if unit.down_dw is not None and unit.down_pw is not None:
        out: list[Step] = [Branch(unit.down_dw, "kept"), Branch(unit.down_pw, "kept", "kept")]
    else:
        out = [SplitStep(f"{unit.path}.split", half)]
    out += [unit.pw1, unit.dw, unit.pw2, ConcatStep(f"{unit.path}.concat", ("kept", "x"), 2 * half, cut=False)]
    return [*out, ShuffleStep(f"{unit.path}.shuffle", 2, 2 * half, unit.pw2.out_hw), BlockOutput(unit.path)]


def torch_call(unit: ShuffleUnit, t: Any) -> Any:
    return t.call("ShuffleUnit", ("pw1", t.conv(unit.pw1)), ("dw", t.conv(unit.dw)), ("pw2", t.conv(unit.pw2)),
                  ("down_dw", t.conv(unit.down_dw)), ("down_pw", t.conv(unit.down_pw)))  # fmt: skip


def _input(unit: ShuffleUnit) -> tuple[int, HW]:
    if unit.down_dw is None:
        return 2 * unit.pw1.cin, unit.pw1.in_hw  # at stride 1, pw1 sees half the channels
    return unit.down_dw.cin, unit.down_dw.in_hw


KIND = BlockKind(
    name="shuffle_v2",
    node=ShuffleUnit,
    words={
        "shuffle_v2": Word(
            OPTIONS,
            "ShuffleNetV2 unit: split (or two stride-2 branches), 1x1 -> dw 3x3 -> 1x1, concat, channel shuffle",
            ("out",),
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=_input,
    output=lambda u: (2 * u.pw2.cout, u.pw2.out_hw),
    steps=steps,
    torch=TorchPiece("shuffle.py.j2", ("ShuffleUnit",), torch_call, shuffle=True),
)
