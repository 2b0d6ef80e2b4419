"""`ghost`: GhostNet's bottleneck, built of ghost modules (Han et al., 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..ir.geometry import FeatureMap
from ..ir.layers import Concat, Layer, ResidualAdd
from ..ir.nodes import Act, BlockNode, BlockSpec, ConvBnAct, Node, SqueezeExcite
from .build import Builder, check_odd
from .kind import BlockKind, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class GhostModule(Node):
    """GhostNet's ghost module: a 1x1 `primary` conv to ceil(out / 2) channels and a `cheap`
    3x3 depthwise conv of its output, concatenated (primary first) and cut to `out` channels."""

    path: str
    primary: ConvBnAct
    cheap: ConvBnAct
    out: int


class GhostBottleneck(BlockNode):
    """GhostNet bottleneck: ghost module (act) -> [depthwise k x k, stride s, BN] -> [SE] ->
    ghost module (linear) -> + shortcut: the input, or a depthwise k x k (stride s) + BN and a
    1x1 + BN projection where the shapes differ. No activation after the add."""

    kind: Literal["ghost"] = "ghost"
    path: str
    ghost1: GhostModule
    dw: ConvBnAct | None
    se: SqueezeExcite | None
    ghost2: GhostModule
    shortcut_dw: ConvBnAct | None
    shortcut_pw: ConvBnAct | None
    drop_path: float = 0.0


OPTIONS = frozenset({"k", "s", "e", "mid", "c", "x", "se", "act", "norm", "eps", "fixed", "drop_path"})


def _module(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap, out: int, act: Act | None) -> GhostModule:
    init = -(-out // 2)
    primary = ctx.conv(b, f"{path}.primary", x, init, 1, 1, 1, act)
    cheap = ctx.conv(b, f"{path}.cheap", FeatureMap(init, primary.out_hw), init, 3, 1, init, act)
    return GhostModule.make(path=path, primary=primary, cheap=cheap, out=out)


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[GhostBottleneck, FeatureMap]:
    assert b.kernel and b.out
    k, s = b.kernel[0], b.stride
    check_odd(b, k)  # checked here too: a stride-1 block may not use k
    mid = ctx.mid_channels(b, x.c)
    ghost1 = _module(ctx, b, f"{path}.ghost1", x, mid, b.act)
    t = FeatureMap(mid, x.hw)
    dw = None
    if s > 1:
        dw = ctx.conv(b, f"{path}.dw", t, mid, k, s, mid, None)
        t = FeatureMap(mid, dw.out_hw)
    se = ctx.se(b, f"{path}.se", x.c, mid, b.out, t.hw)
    ghost2 = _module(ctx, b, f"{path}.ghost2", t, b.out, None)
    shortcut_dw = shortcut_pw = None
    if s > 1 or x.c != b.out:  # a projection where the shapes differ
        shortcut_dw = ctx.conv(b, f"{path}.shortcut_dw", x, x.c, k, s, x.c, None)
        shortcut_pw = ctx.conv(b, f"{path}.shortcut_pw", FeatureMap(x.c, shortcut_dw.out_hw), b.out, 1, 1, 1, None)
    block = GhostBottleneck.make(path=path, ghost1=ghost1, dw=dw, se=se, ghost2=ghost2, shortcut_dw=shortcut_dw,
                                 shortcut_pw=shortcut_pw, drop_path=b.drop_path)  # fmt: skip
    return block, FeatureMap(b.out, t.hw)


def module_layers(module: GhostModule) -> Iterator[Layer]:
    yield module.primary
    yield module.cheap
    yield Concat(f"{module.path}.concat", module.out, module.cheap.out_hw)


def layers(block: GhostBottleneck) -> Iterator[Layer]:
    yield from module_layers(block.ghost1)
    yield from (p for p in (block.dw, block.se) if p is not None)
    yield from module_layers(block.ghost2)
    yield from (p for p in (block.shortcut_dw, block.shortcut_pw) if p is not None)
    yield ResidualAdd(block.path, block.ghost2.out, block.ghost2.cheap.out_hw)


def _module_steps(g: GhostModule) -> list[Step]:
    from ..codegen.steps import Branch, ConcatStep

    concat = ConcatStep(f"{g.path}.concat", ("primary", "cheap"), g.out, cut=2 * g.primary.cout > g.out)
    return [Branch(g.primary, "primary"), Branch(g.cheap, "cheap", "primary"), concat]


def steps(block: GhostBottleneck) -> list[Step]:
    from ..codegen.steps import AddShortcut, BlockOutput, Branch, KeepShortcut

    out: list[Step] = [KeepShortcut(), *_module_steps(block.ghost1)]
    out += [p for p in (block.dw, block.se) if p is not None]
    out += _module_steps(block.ghost2)
    out += [Branch(p, "shortcut", "shortcut") for p in (block.shortcut_dw, block.shortcut_pw) if p is not None]
    return [*out, AddShortcut(f"{block.path}.add", block.drop_path), BlockOutput(block.path)]


def torch_call(block: GhostBottleneck, t: Any) -> Any:
    def module(g: GhostModule) -> Any:
        return t.call("GhostModule", ("primary", t.conv(g.primary)), ("cheap", t.conv(g.cheap)), ("out", str(g.out)),
                      comment=t.cost_note(module_layers(g)))  # fmt: skip

    return t.call("GhostBottleneck", ("ghost1", module(block.ghost1)), ("ghost2", module(block.ghost2)),
                  ("dw", t.conv(block.dw)), ("se", t.se(block.se)), ("shortcut_dw", t.conv(block.shortcut_dw)),
                  ("shortcut_pw", t.conv(block.shortcut_pw)),
                  ("drop_path", repr(block.drop_path) if block.drop_path else None))  # fmt: skip


def timm(block: GhostBottleneck, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """timm's GhostBottleneck: `ghostN.primary_conv.{0,1}`, `ghostN.cheap_operation.{0,1}`,
    `conv_dw`/`bn_dw`, `se.conv_reduce`/`se.conv_expand`, `shortcut.{0,1,2,3}`."""
    if place.part != "stage":
        return
    p, prefix = block.path, place.prefix
    for g in ("ghost1", "ghost2"):
        for ours, theirs in (("primary", "primary_conv"), ("cheap", "cheap_operation")):
            out[f"{p}.{g}.{ours}.conv"], out[f"{p}.{g}.{ours}.bn"] = (
                f"{prefix}.{g}.{theirs}.0",
                f"{prefix}.{g}.{theirs}.1",
            )
    out[f"{p}.dw.conv"], out[f"{p}.dw.bn"] = f"{prefix}.conv_dw", f"{prefix}.bn_dw"
    out[f"{p}.se.reduce"], out[f"{p}.se.expand"] = f"{prefix}.se.conv_reduce", f"{prefix}.se.conv_expand"
    out[f"{p}.shortcut_dw.conv"], out[f"{p}.shortcut_dw.bn"] = f"{prefix}.shortcut.0", f"{prefix}.shortcut.1"
    out[f"{p}.shortcut_pw.conv"], out[f"{p}.shortcut_pw.bn"] = f"{prefix}.shortcut.2", f"{prefix}.shortcut.3"


KIND = BlockKind(
    name="ghost",
    node=GhostBottleneck,
    words={
        "ghost": Word(
            OPTIONS,
            "GhostNet bottleneck: ghost module -> [dw, stride] -> [SE] -> linear ghost module, + shortcut",
            ("out", "kernel", "expansion"),
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.ghost1.primary.cin, b.ghost1.primary.in_hw),
    output=lambda b: (b.ghost2.out, b.ghost2.cheap.out_hw),
    steps=steps,
    torch=TorchPiece("ghost.py.j2", ("GhostModule", "GhostBottleneck"), torch_call, drop_path=True),
    timm={"efficientnet": timm},
)
