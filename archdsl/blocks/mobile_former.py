"""`mf` / `mf_down`: Mobile-Former's block (Chen et al., 2022), which takes a map and its tokens
and gives both: Mobile->Former (the tokens read the map), the Former (the tokens' own
self-attention and FFN), the Mobile sub-block (convs with dynamic ReLUs whose coefficients come
from the first token), Former->Mobile (the map reads the tokens); + input where shapes allow.

- `mf k3 e<E> c<C>`: expand 1x1, depthwise k x k, project 1x1 (the authors' DnaBlock); the
  residual is added before Former->Mobile.
- `mf_down k3 e<E> c<C> s2 e_dw2=<E2>`: depthwise k x k with E x channels (the stride), project
  1x1, then depthwise k x k expanding the output E2 times and project 1x1 around an inner residual
  (DnaBlock3); the residual is added after Former->Mobile. `e_dw2=0`: the first depthwise conv (with
  the block's act) and the projection alone, no bridge: the tokens pass unchanged.

`g=G` makes the 1x1 convs grouped, each followed (or, after a depthwise conv, the depthwise conv
followed) by a channel shuffle, as the authors' `group_num`. `h` is the bridge's heads (2),
`former_heads` the Former's (4). Expanded widths are round(channels x e), as the authors'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Mapping, Union

from pydantic import Field

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, ResidualAdd
from ..ir.nodes import HW, BlockNode, BlockSpec, ConvBnAct
from . import bridge
from .bridge import HYPER_REDUCTION, DynamicReLU, Former, Shuffle, ToFormer, ToMobile
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step

Part = Annotated[Union[ConvBnAct, DynamicReLU, Shuffle], Field(discriminator="kind")]
TOKENS: frozenset[str | None] = frozenset({"tokens"})
BRIDGE_HEADS, FORMER_HEADS = 2, 4  # the authors' defaults


class MobileFormerBlock(BlockNode):
    """The bridge and Former (None in an `mf_down` of convs alone), the Mobile sub-block's parts in
    order, [an inner residual from after `mobile[inner[0]]` to after `mobile[inner[1]]`], and
    the residual, added before Former->Mobile (`mf`) or after it (`mf_down`)."""

    kind: Literal["mf"] = "mf"
    path: str
    variant: Literal["mf", "mf_down"]
    cin: int
    cout: int
    in_hw: HW
    out_hw: HW
    tokens: tuple[int, int]  # count, dim
    to_former: ToFormer | None
    former: Former | None
    mobile: tuple[Part, ...]
    inner: tuple[int, int] | None
    to_mobile: ToMobile | None
    residual: bool
    residual_after_bridge: bool
    drop_path: float = 0.0


OPTIONS = frozenset({"k", "s", "e", "c", "x", "g", "h", "former_heads", "act", "norm", "eps", "skip", "noskip",
                     "fixed", "drop_path"})  # fmt: skip


def _divides(b: BlockSpec, heads: int, channels: int, option: str, what: str) -> None:
    if channels % heads:
        raise ArchError(f"{heads} heads do not divide the {channels} {what}", b.at(option),
                        f"choose heads that divide {channels}")  # fmt: skip


def _mid(b: BlockSpec, c: int, e: float, option: str, depthwise: bool) -> int:
    mid = round(c * e)
    if depthwise and (mid % c or mid == 0):
        raise ArchError(f"a depthwise conv of {c} channels expands by a whole factor: {option}={e:g} gives {mid}",
                        b.at(option), f"use a whole expansion, e.g. {option}={max(1, round(e))}")  # fmt: skip
    if mid == 0:
        raise ArchError(f"{option}={e:g} of {c} channels leaves none", b.at(option), "use a larger expansion")
    return mid


class _Parts:
    """The Mobile sub-block as it is built: convs, dynamic ReLUs and shuffles in order. A conv's
    `shuffle` (its groups) follows it only in a grouped block (`g` > 1), as the authors'."""

    def __init__(self, ctx: Builder, b: BlockSpec, path: str, dim: int, grouped: bool) -> None:
        self.ctx, self.b, self.path, self.dim, self.grouped = ctx, b, path, dim, grouped
        self.parts: list[Any] = []

    def conv(self, name: str, x: FeatureMap, cout: int, k: int, s: int, groups: int, act: Any = None,
             dynamic: bool = False, shuffle: int = 0) -> FeatureMap:  # fmt: skip
        c = self.ctx.conv(self.b, f"{self.path}.{name}", x, cout, k, s, groups, act, groups_from=("g",))
        self.parts.append(c)
        y = FeatureMap(c.cout, c.out_hw)
        if shuffle and self.grouped:
            self.parts.append(Shuffle.make(path=f"{self.path}.{name}_shuffle", groups=shuffle, channels=y.c, hw=y.hw))
        if dynamic:
            self.parts.append(DynamicReLU.make(path=f"{self.path}.{name}_act", channels=y.c, hw=y.hw, dim=self.dim,
                                               reduced=self.dim // HYPER_REDUCTION))  # fmt: skip
        return y

    def index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.parts) if p.path == f"{self.path}.{name}")


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[MobileFormerBlock, FeatureMap]:
    assert x.tokens is not None and b.kernel and b.expand is not None
    count, dim = x.tokens
    heads, former_heads, g = b.heads or BRIDGE_HEADS, b.former_heads or FORMER_HEADS, b.groups or 1
    k, s, cout, down = b.kernel[0], b.stride, b.out or x.c, b.variant == "mf_down"
    if down and b.expand_dw2 is None:
        raise ArchError("'mf_down' needs the expansion of its second depthwise conv", b.span,
                        "add e_dw2=<ratio> (the authors' 4), or e_dw2=0 for the convs alone")  # fmt: skip
    bridged = not down or bool(b.expand_dw2)
    if bridged:
        _divides(b, heads, x.c, "h", "input channels (the bridge's heads split them)")
        _divides(b, heads, cout, "h", "output channels (the bridge's heads split them)")
        _divides(b, former_heads, dim, "former_heads", "token width (the Former's heads split it)")
    parts = _Parts(ctx, b, path, dim, g > 1)
    inner = None
    if not down:
        mid = _mid(b, x.c, b.expand, "e", depthwise=False)
        t = parts.conv("expand", x, mid, 1, 1, g, dynamic=True, shuffle=g)
        t = parts.conv("dw", t, mid, k, s, mid, dynamic=True)
        y = parts.conv("project", t, cout, 1, 1, g, shuffle=g)
    elif not bridged:  # a depthwise conv's shuffle: in as many groups as its input channels
        mid = _mid(b, x.c, b.expand, "e", depthwise=True)
        t = parts.conv("dw", x, mid, k, s, x.c, act=b.act, shuffle=x.c)
        y = parts.conv("project", t, cout, 1, 1, g)
    else:
        assert b.expand_dw2
        mid = _mid(b, x.c, b.expand, "e", depthwise=True)
        t = parts.conv("dw1", x, mid, k, s, x.c, dynamic=True, shuffle=x.c)
        y = parts.conv("project1", t, cout, 1, 1, g)
        mid2 = _mid(b, cout, b.expand_dw2, "e_dw2", depthwise=True)
        t = parts.conv("dw2", y, mid2, k, 1, cout, dynamic=True, shuffle=cout)
        y = parts.conv("project2", t, cout, 1, 1, g)
        inner = (parts.index("project1"), parts.index("project2"))
    out = FeatureMap(y.c, y.hw, tokens=x.tokens)
    block = MobileFormerBlock.make(
        path=path, variant=b.variant or "mf", cin=x.c, cout=cout, in_hw=x.hw, out_hw=y.hw, tokens=x.tokens,
        to_former=ToFormer.make(path=f"{path}.to_former", channels=x.c, hw=x.hw, count=count, dim=dim, heads=heads)
        if bridged else None,
        former=Former.make(path=f"{path}.former", count=count, dim=dim, heads=former_heads) if bridged else None,
        mobile=tuple(parts.parts), inner=inner,
        to_mobile=ToMobile.make(path=f"{path}.to_mobile", channels=cout, hw=y.hw, count=count, dim=dim, heads=heads)
        if bridged else None,
        residual=ctx.residual(b, FeatureMap(x.c, x.hw), FeatureMap(y.c, y.hw), s), residual_after_bridge=down,
        drop_path=b.drop_path or 0.0,
    )  # fmt: skip
    return block, out


def layers(block: MobileFormerBlock) -> Iterator[Layer]:
    if block.to_former is not None and block.former is not None:
        yield from bridge.layers(block.to_former)
        yield from bridge.layers(block.former)
    for i, part in enumerate(block.mobile):
        yield from [part] if isinstance(part, ConvBnAct) else bridge.layers(part)
        if block.inner is not None and i == block.inner[1]:  # after the last projection: the block's output
            yield ResidualAdd(f"{block.path}.inner", block.cout, block.out_hw)
    residual = [ResidualAdd(block.path, block.cout, block.out_hw)] if block.residual else []
    if not block.residual_after_bridge:
        yield from residual
    if block.to_mobile is not None:
        yield from bridge.layers(block.to_mobile)
    if block.residual_after_bridge:
        yield from residual


def steps(block: MobileFormerBlock) -> list[Step]:
    """The map in `x`, the tokens in `tokens`; the bridge, Former and dynamic ReLUs are steps
    each backend has a helper for."""
    from ..codegen.steps import AddShortcut, Assign, BlockOutput, KeepShortcut, ShuffleStep

    out: list[Step] = [KeepShortcut()] if block.residual else []
    if block.to_former is not None and block.former is not None:
        out += [block.to_former, block.former]
    for i, part in enumerate(block.mobile):
        out.append(ShuffleStep(part.path, part.groups, part.channels, part.hw) if isinstance(part, Shuffle) else part)
        if block.inner is not None and i == block.inner[0]:
            out.append(Assign("inner", "x"))
        if block.inner is not None and i == block.inner[1]:
            out.append(AddShortcut(f"{block.path}.add_inner", block.drop_path, "x", "inner"))
    # stochastic depth: of the inner residual's branch, or of an mf's (not of an mf_down's, as the authors')
    residual: list[Step] = [AddShortcut(f"{block.path}.add", _residual_drop(block))] if block.residual else []
    out += [] if block.residual_after_bridge else residual
    out += [block.to_mobile] if block.to_mobile is not None else []
    out += residual if block.residual_after_bridge else []
    return [*out, BlockOutput(f"{block.path}.tokens", "tokens"), BlockOutput(block.path)]


def _residual_drop(block: MobileFormerBlock) -> float:
    return block.drop_path if block.variant == "mf" else 0.0


def torch_call(block: MobileFormerBlock, t: Any) -> Any:
    def part(p: Any) -> Any:
        if isinstance(p, ConvBnAct):
            return t.conv(p)
        return t.call("ChannelShuffle", ("", str(p.groups))) if isinstance(p, Shuffle) else bridge.torch_call(p, t)

    named = [(p.path.rsplit(".", 1)[1], part(p)) for p in block.mobile]
    inner = None if block.inner is None else "({}, {})".format(*(f'"{named[i][0]}"' for i in block.inner))
    return t.call(
        "MobileFormerBlock",
        ("to_former", bridge.torch_call(block.to_former, t) if block.to_former else None),
        ("former", bridge.torch_call(block.former, t) if block.former else None),
        *named, ("to_mobile", bridge.torch_call(block.to_mobile, t) if block.to_mobile else None),
        ("inner", inner), ("residual", "True" if block.residual else None),
        ("residual_after_bridge", "True" if block.residual and block.residual_after_bridge else None),
        ("drop_path", repr(block.drop_path) if block.drop_path and (block.residual or block.inner) else None),
    )  # fmt: skip


# The authors' module names of the Mobile sub-block's convs (`features.N.<name>.0`, BN `.1`)
# and dynamic ReLUs (`hyperN`), by our names; the convs alone are one Sequential (`conv.K`).
_AUTHORS = {
    "mf": {"expand": "conv1", "dw": "conv2", "project": "conv3", "expand_act": "hyper1", "dw_act": "hyper2"},
    "mf_down": {"dw1": "conv1", "project1": "conv2", "dw2": "conv3", "project2": "conv4", "dw1_act": "hyper1",
                "dw2_act": "hyper3"},
}  # fmt: skip


def authors_names(block: MobileFormerBlock, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """The authors' `features.N` module names (AAboys/MobileFormer `dna_blocks.py`)."""
    p, src = block.path, place.prefix
    if block.to_former is None:  # DnaBlock3's convs alone: conv.0 (dw), conv.1 (BN), conv.4 (pw), conv.5 (BN)
        out.update({f"{p}.dw.conv": f"{src}.conv.0", f"{p}.dw.bn": f"{src}.conv.1", f"{p}.project.conv": f"{src}.conv.4",
                    f"{p}.project.bn": f"{src}.conv.5"})  # fmt: skip
        return
    assert block.former is not None and block.to_mobile is not None
    bridge.authors_names(block.to_former, f"{src}.local_global", out)
    bridge.authors_names(block.former, f"{src}.global_block", out)
    bridge.authors_names(block.to_mobile, f"{src}.global_local", out)
    names = _AUTHORS[block.variant]
    for part in block.mobile:
        name = part.path.rsplit(".", 1)[1]
        if isinstance(part, ConvBnAct):
            out[f"{part.path}.conv"], out[f"{part.path}.bn"] = f"{src}.{names[name]}.0", f"{src}.{names[name]}.1"
        elif isinstance(part, DynamicReLU):
            bridge.authors_names(part, f"{src}.{names[name]}", out)


def _maps(b: MobileFormerBlock) -> tuple[FeatureMap, FeatureMap]:
    return FeatureMap(b.cin, b.in_hw, tokens=b.tokens), FeatureMap(b.cout, b.out_hw, tokens=b.tokens)


KIND = BlockKind(
    name="mf",
    node=MobileFormerBlock,
    words={
        "mf": Word(
            OPTIONS,
            "Mobile-Former block: Mobile->Former, Former, expand/dw/project with dynamic ReLUs, Former->Mobile",
            ("out", "kernel", "expansion"),
            variant="mf",
        ),
        "mf_down": Word(
            OPTIONS | {"e_dw2"},
            "Mobile-Former block with two depthwise convs (the stride first): "
            "bridge, dw/project/dw/project with dynamic ReLUs; e_dw2=0: the convs alone",
            ("out", "kernel", "expansion"),
            variant="mf_down",
        ),
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.cin, b.in_hw),
    output=lambda b: (b.cout, b.out_hw),
    steps=steps,
    torch=TorchPiece(
        "mobile_former.py.j2",
        (
            "MobileFormerBlock",
            "MobileToFormer",
            "Former",
            "FormerToMobile",
            "DynamicReLU",
            "ChannelShuffle",
            "Tokens",
            "MobileFormerMerge",
        ),
        torch_call,
        drop_path=True,
        shuffle=True,
    ),  # fmt: skip
    timm={"mobile_former": authors_names},
    takes=lambda b: TOKENS,
    pair_maps=_maps,
)
