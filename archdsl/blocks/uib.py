"""`uib` and its instantiations `ib`, `extra_dw`, `convnext`, `ffn`: MobileNetV4's universal
inverted bottleneck (MobileNetV2/V3's and EfficientNet's inverted bottleneck is its `ib`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, residual_tail
from ..ir.nodes import Act, BlockNode, BlockSpec, ConvBnAct, SqueezeExcite
from . import octave
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word
from .octave import OctaveBlock
from .timm_names import IR, UIR, add_scheme

if TYPE_CHECKING:
    from ..codegen.steps import Step


class UniversalInvertedBottleneck(BlockNode):
    """MobileNetV4 UIB: [dw_start] -> expand -> [dw_mid] -> [SE] -> project -> [dw_end]
    -> [layer scale] -> [+ residual]. IB, ConvNeXt, ExtraDW and FFN are its instantiations."""

    kind: Literal["uib"] = "uib"
    path: str
    variant: str  # ib, convnext, extra_dw, ffn, or uib for other combinations
    dw_start: ConvBnAct | None
    expand: ConvBnAct
    dw_mid: ConvBnAct | None
    se: SqueezeExcite | None
    project: ConvBnAct
    dw_end: ConvBnAct | None
    layer_scale: float | None
    residual: bool
    drop_path: float = 0.0


OPTIONS = frozenset({
    "k", "s", "e", "mid", "c", "x", "se", "act", "norm", "eps", "skip", "noskip", "fixed",
    "layer_scale", "drop_path", "padding", "aa", "gs", "stride_at", "dilation", "k_start", "k_mid", "k_end",
})  # fmt: skip
_NAMED_KERNELS = frozenset({"k_start", "k_mid", "k_end"})
_NEEDS = ("out", "kernels", "expansion")


def build(
    ctx: Builder, b: BlockSpec, path: str, x: FeatureMap
) -> tuple[UniversalInvertedBottleneck | OctaveBlock, FeatureMap]:
    if b.alpha is not None or b.alpha_mid is not None:
        return octave.build(ctx, b, path, x)
    assert b.kernel and b.out
    ks, km, ke = b.kernel
    s = b.stride
    if s > 1 and not (ks or km or ke):
        raise ArchError(f"stride {s} needs a depthwise conv to apply it", b.at("s"), "an FFN block has none; use s1")
    at = _stride_at(b, ks, km, ke)
    gs = b.group_size or 1  # channels per group of the depthwise convs

    def dw(name: str, t: FeatureMap, k: int, act: Act | None) -> ConvBnAct:
        if t.c % gs:
            raise ArchError(f"gs={gs} does not divide the {t.c} channels of {path}.{name}", b.at("gs"),
                            "give a group size that divides every depthwise conv's channels (1: depthwise)")  # fmt: skip
        return ctx.conv(b, f"{path}.{name}", t, t.c, k, s if at == name.removeprefix("dw_") else 1, t.c // gs, act)

    t = x
    dw_start = None
    if ks:
        dw_start = dw("dw_start", t, ks, None)
        t = FeatureMap(t.c, dw_start.out_hw)
    mid = ctx.mid_channels(b, x.c)
    expand = ctx.conv(b, f"{path}.expand", t, mid, 1, 1, 1, b.act)
    t = FeatureMap(mid, expand.out_hw)
    dw_mid = None
    if km:
        dw_mid = dw("dw_mid", t, km, b.act)
        t = FeatureMap(mid, dw_mid.out_hw)
    se = ctx.se(b, f"{path}.se", x.c, mid, b.out, t.hw)
    project = ctx.conv(b, f"{path}.project", t, b.out, 1, 1, 1, None)
    t = FeatureMap(b.out, project.out_hw)
    dw_end = None
    if ke:
        dw_end = dw("dw_end", t, ke, None)
        t = FeatureMap(t.c, dw_end.out_hw)
    block = UniversalInvertedBottleneck.make(
        path=path, variant=b.variant or _variant(ks, km, ke), dw_start=dw_start, expand=expand, dw_mid=dw_mid, se=se,
        project=project, dw_end=dw_end, layer_scale=b.layer_scale, residual=ctx.residual(b, x, t, s),
        drop_path=b.drop_path,
    )  # fmt: skip
    return block, t


def _stride_at(b: BlockSpec, ks: int, km: int, ke: int) -> str | None:
    """Which depthwise conv takes the block's stride: `stride_at`, else the middle one, else the
    start one, else the end one (timm's and TF's rule; TF's `middle_dw_downsample=False` is
    `stride_at=start`)."""
    present = {"start": ks, "mid": km, "end": ke}
    if b.stride_at is not None:
        if not present[b.stride_at]:
            raise ArchError(f"stride_at={b.stride_at}: the block has no {b.stride_at} depthwise conv", b.at("stride_at"),
                            f"it has: {', '.join(n for n, k in present.items() if k) or 'none'}")  # fmt: skip
        return b.stride_at
    return next((n for n in ("mid", "start", "end") if present[n]), None)


def _variant(ks: int, km: int, ke: int) -> str:
    if ke:
        return "uib"
    return {(True, True): "extra_dw", (False, True): "ib", (True, False): "convnext", (False, False): "ffn"}[
        (bool(ks), bool(km))
    ]


def sequence(block: UniversalInvertedBottleneck) -> list[ConvBnAct | SqueezeExcite]:
    """Its convs and SE, in execution order."""
    seq = (block.dw_start, block.expand, block.dw_mid, block.se, block.project, block.dw_end)
    return [p for p in seq if p is not None]


def _last(block: UniversalInvertedBottleneck) -> ConvBnAct:
    return block.dw_end or block.project


def layers(block: UniversalInvertedBottleneck) -> Iterator[Layer]:
    yield from sequence(block)
    out = _last(block)
    yield from residual_tail(block.path, out.cout, out.out_hw, block.residual, block.layer_scale)


def steps(block: UniversalInvertedBottleneck) -> list[Step]:
    from ..codegen.steps import residual_steps

    return residual_steps([*sequence(block)], block.path, block.residual, block.layer_scale, block.drop_path)


def torch_call(block: UniversalInvertedBottleneck, t: Any) -> Any:
    scale = ("layer_scale", repr(block.layer_scale) if block.layer_scale is not None else None)
    return t.call("UniversalInvertedBottleneck", ("dw_start", t.conv(block.dw_start)), ("expand", t.conv(block.expand)),
                  ("dw_mid", t.conv(block.dw_mid)), ("se", t.se(block.se)), ("project", t.conv(block.project)),
                  ("dw_end", t.conv(block.dw_end)), scale, *t.residual(block))  # fmt: skip


def timm(block: UniversalInvertedBottleneck, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """timm's `uir` (MobileNetV4) or `ir` (MobileNetV2/V3, EfficientNet) code, told apart by the
    names the checkpoint holds."""
    if place.part != "stage":
        return
    prefix = place.prefix
    add_scheme(block.path, prefix, UIR if f"{prefix}.pw_exp.conv.weight" in state else IR, out)
    if block.layer_scale is not None:
        out[f"{block.path}.layer_scale"] = f"{prefix}.layer_scale"


_COMPACT = OPTIONS - _NAMED_KERNELS
KIND = BlockKind(
    name="uib",
    node=UniversalInvertedBottleneck,
    words={
        "uib": Word(OPTIONS, "universal inverted bottleneck, k<start>/<mid>[/<end>]", _NEEDS, kernels="uib"),
        "ib": Word(
            _COMPACT | {"alpha", "alpha_mid"}, "inverted bottleneck (MobileNetV2)", _NEEDS, variant="ib", kernels="mid"
        ),
        "extra_dw": Word(_COMPACT, "UIB ExtraDW, k<start>/<mid>", _NEEDS, variant="extra_dw", kernels="start_mid"),
        "convnext": Word(_COMPACT, "UIB ConvNeXt-like, start dw only", _NEEDS, variant="convnext", kernels="start"),
        "ffn": Word(
            _COMPACT - {"k", "gs", "stride_at", "dilation"},
            "UIB FFN, no depthwise",
            _NEEDS,
            variant="ffn",
            kernels="none",
        ),
    },
    build=build,
    layers=layers,
    input=lambda b: ((b.dw_start or b.expand).cin, (b.dw_start or b.expand).in_hw),
    output=lambda b: (_last(b).cout, _last(b).out_hw),
    steps=steps,
    torch=TorchPiece(
        "uib.py.j2", ("UniversalInvertedBottleneck",), torch_call, helpers=("layer_scale",), drop_path=True
    ),  # fmt: skip
    timm={"efficientnet": timm},
    layer_scale_default=True,
    takes=octave.takes,
)
