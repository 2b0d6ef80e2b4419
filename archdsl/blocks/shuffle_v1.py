"""`shuffle_v1`: ShuffleNet's (V1) unit (Zhang et al., 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import ArchError
from ..ir.geometry import FeatureMap, out_size, padding_for
from ..ir.layers import Activation, ChannelShuffle, Concat, Layer, ResidualAdd
from ..ir.nodes import Act, BlockNode, BlockSpec, ConvBnAct, Pool
from .build import Builder
from .kind import BlockKind, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class ShuffleV1Unit(BlockNode):
    """ShuffleNet (V1) unit: grouped 1x1 `reduce` (+ act) -> channel shuffle (`groups`) -> 3x3
    depthwise `dw` (stride s) -> grouped 1x1 `expand`; stride 1: + input; stride 2: concatenated
    after a 3x3 average pool of the input (`shortcut`, padding counted); then act."""

    kind: Literal["shuffle_v1"] = "shuffle_v1"
    path: str
    reduce: ConvBnAct
    groups: int
    dw: ConvBnAct
    expand: ConvBnAct
    shortcut: Pool | None
    act: Act


OPTIONS = frozenset({"g", "s", "c", "mid", "x", "act", "norm", "eps", "fixed", "reduce_groups"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[ShuffleV1Unit, FeatureMap]:
    assert b.out
    g, s = b.groups or 1, b.stride
    branch_out = b.out - x.c if s > 1 else b.out  # stride 2: concatenated after the pooled input
    if s == 1 and x.c != b.out:
        raise ArchError(f"a stride-1 shuffle_v1 unit adds its input, so it keeps its {x.c} channels, not {b.out}",
                        b.at("c"), "change the width in a stride-2 unit")  # fmt: skip
    if branch_out < 1:
        raise ArchError(f"a stride-{s} shuffle_v1 unit concatenates its {x.c} input channels: c must exceed them",
                        b.at("c"))  # fmt: skip
    mid = b.mid or b.out // 4
    if mid < 1:
        raise ArchError(f"c/4 leaves no bottleneck channels ({b.out} output channels)", b.at("c"), "give mid=")
    reduce = ctx.conv(b, f"{path}.reduce", x, mid, 1, 1, b.reduce_groups or g, b.act,
                      groups_from=("reduce_groups", "g"))  # fmt: skip
    dw = ctx.conv(b, f"{path}.dw", FeatureMap(mid, x.hw), mid, 3, s, mid, None)
    expand = ctx.conv(b, f"{path}.expand", FeatureMap(mid, dw.out_hw), branch_out, 1, 1, g, None)
    shortcut = None
    if s > 1:
        pad = padding_for(3, s, x.hw, b.pad_mode)
        shortcut = Pool.make(path=f"{path}.shortcut", mode="avg", is_global=False, kernel=3, stride=s, padding=pad,
                             include_pad=True, channels=x.c, in_hw=x.hw, out_hw=out_size(x.hw, 3, s, pad))  # fmt: skip
    unit = ShuffleV1Unit.make(path=path, reduce=reduce, groups=g, dw=dw, expand=expand, shortcut=shortcut,
                              act=b.act or "identity")  # fmt: skip
    return unit, FeatureMap(b.out, dw.out_hw)


def _out_channels(unit: ShuffleV1Unit) -> int:
    return unit.expand.cout + (unit.shortcut.channels if unit.shortcut else 0)


def layers(unit: ShuffleV1Unit) -> Iterator[Layer]:
    yield unit.reduce
    if unit.groups > 1:
        yield ChannelShuffle(f"{unit.path}.shuffle", unit.groups, unit.reduce.cout, unit.reduce.out_hw)
    yield unit.dw
    yield unit.expand
    channels, hw = _out_channels(unit), unit.expand.out_hw
    if unit.shortcut is not None:
        yield unit.shortcut
        yield Concat(f"{unit.path}.concat", channels, hw)
    else:
        yield ResidualAdd(unit.path, channels, hw)
    if unit.act != "identity":
        yield Activation(unit.path, unit.act, channels, hw)


def steps(unit: ShuffleV1Unit) -> list[Step]:
    from ..codegen.steps import (
        ActivationStep,
        AddShortcut,
        BlockOutput,
        Branch,
        ConcatStep,
        KeepShortcut,
        ShuffleStep,
    )

    out: list[Step] = [KeepShortcut(), unit.reduce]
    if unit.groups > 1:
        out.append(ShuffleStep(f"{unit.path}.shuffle", unit.groups, unit.dw.cin, unit.dw.in_hw))
    out += [unit.dw, unit.expand]
    if unit.shortcut is not None:
        out += [Branch(unit.shortcut, "shortcut", "shortcut"),
                ConcatStep(f"{unit.path}.concat", ("shortcut", "x"), _out_channels(unit), cut=False)]  # fmt: skip
    else:
        out.append(AddShortcut(f"{unit.path}.add"))
    if unit.act != "identity":
        out.append(ActivationStep(f"{unit.path}.act", unit.act))
    return [*out, BlockOutput(unit.path)]


def torch_call(unit: ShuffleV1Unit, t: Any) -> Any:
    return t.call("ShuffleV1Unit", ("reduce", t.conv(unit.reduce)), ("dw", t.conv(unit.dw)),
                  ("expand", t.conv(unit.expand)), ("groups", str(unit.groups)),
                  ("shortcut", t.pool(unit.shortcut) if unit.shortcut is not None else None),
                  ("act", t.act(unit.act) if unit.act != "identity" else None))  # fmt: skip


KIND = BlockKind(
    name="shuffle_v1",
    node=ShuffleV1Unit,
    words={
        "shuffle_v1": Word(
            OPTIONS,
            "ShuffleNet unit: grouped 1x1 -> shuffle -> dw 3x3 -> grouped 1x1, + input (s1) or concat avg pool (s2)",
            ("out",),
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda u: (u.reduce.cin, u.reduce.in_hw),
    output=lambda u: (_out_channels(u), u.expand.out_hw),
    steps=steps,
    torch=TorchPiece("shuffle_v1.py.j2", ("ShuffleV1Unit",), torch_call, shuffle=True),
)
