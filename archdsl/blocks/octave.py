"""Octave convolution (Chen et al., 2019, "Drop an Octave"): a feature map factored into a
high-frequency part and a low-frequency part at half the resolution, `alpha` of the channels.
An octave conv has up to four paths: high->high, high->low (2x2 average pooling first),
low->high (nearest 2x upsampling after), low->low; the two reaching each part are summed, then
BatchNorm and the activation. A stride of 2 is taken by 2x2 average pooling before the convs, as
the authors' code does; depthwise convs keep to their part.

`alpha=A` on `conv`, `ds`, `dsa` and `ib` (with `alpha_mid` for the expanded channels of an ib)
makes the block an octave block: A x channels of its output are low-frequency channels, a whole
number (alpha=0: none, the low part of the input merged into the high one). The input's split is the
tensor's that flows in. The nodes here are `kind="octave"` whatever the word."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import ArchError
from ..ir.geometry import FeatureMap, half
from ..ir.layers import Activation, BranchSum, InputNorm, Layer, ResidualAdd, Upsample
from ..ir.nodes import HW, Act, BlockNode, BlockSpec, ConvBnAct, Node, Norm, Pool
from .build import Builder, check_odd
from .kind import ONE, BlockKind, TorchPiece

if TYPE_CHECKING:
    import numpy as np

    from ..codegen.steps import Step

PATHS = ("hh", "hl", "lh", "ll")  # from high / low, to high / low


class OctaveConv(Node):
    """One octave conv: its paths (plain convs without BatchNorm or act, None where absent),
    then per output part a BatchNorm (folded into the paths' weights in the deploy form) and
    the activation. `in_hw` / `out_hw` are the high part's; the low part's are half of them."""

    kind: Literal["octave_conv"] = "octave_conv"
    path: str
    cin: int  # high-frequency input channels
    cin_low: int
    cout: int
    cout_low: int
    stride: int
    hh: ConvBnAct | None
    hl: ConvBnAct | None
    lh: ConvBnAct | None
    ll: ConvBnAct | None
    norm: Norm | None
    act: Act
    in_hw: HW
    out_hw: HW

    def convs(self) -> list[ConvBnAct]:
        return [c for c in (self.hh, self.hl, self.lh, self.ll) if c is not None]


class OctaveBlock(BlockNode):
    """An octave `conv` (one octave conv), `ds` / `dsa` (depthwise, then pointwise), or `ib`
    (expand, depthwise, project), with a residual (per part) where shapes allow."""

    kind: Literal["octave"] = "octave"
    path: str
    variant: Literal["conv", "ds", "dsa", "ib"]
    convs: tuple[OctaveConv, ...]
    residual: bool
    drop_path: float = 0.0


def takes(b: BlockSpec) -> frozenset[str | None]:
    """An octave block (alpha given) takes an octave pair or one tensor; a plain one, one tensor."""
    return frozenset({None, "octave"}) if b.alpha is not None or b.alpha_mid is not None else ONE


def _split(b: BlockSpec, c: int, alpha: float, option: str) -> tuple[int, int]:
    """`c` channels as (high, low), alpha x c of them low: a whole number, or a located error."""
    low = alpha * c
    if abs(low - round(low)) > 1e-9:
        raise ArchError(f"{option}={alpha:g} of {c} channels is {low:g}: not a whole number of low-frequency channels",
                        b.at(option), f"choose {option} and channels whose product is whole "
                        f"(e.g. {option}=0.5 of an even count)")  # fmt: skip
    return c - round(low), round(low)


def _check(b: BlockSpec) -> None:
    given = b.option_spans or {}
    for option, why in (("se", "an SE"), ("aa", "anti-aliasing"), ("dilation", "dilation"), ("gs", "groups"),
                        ("g", "groups"), ("stride_at", "a stride position")):  # fmt: skip
        if option in given:
            raise ArchError(f"an octave block takes no {why} ({option})", given[option],
                            "drop it, or drop alpha for a plain block")  # fmt: skip
    if b.pad_mode != "symmetric":
        raise ArchError("an octave block pads symmetrically (k // 2), as the official definition does",
                        b.at("padding"), "drop padding=same, or drop alpha for a plain block")  # fmt: skip
    if b.stride not in (1, 2):
        raise ArchError(f"an octave block takes stride 1 or 2, not {b.stride}", b.at("s"), "use s2 at most")


def octave_conv(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap, cout: int, cout_low: int, k: int, s: int,
                act: Act | None, depthwise: bool = False) -> tuple[OctaveConv, FeatureMap]:  # fmt: skip
    """The octave conv from `x` to `cout` high and `cout_low` low channels."""
    check_odd(b, k)
    pad = (k // 2,) * 4
    lo_in = half(x.hw)
    pooled = [(x.hw, 2) for _ in range(s == 2)] + [(lo_in, 2) for _ in range(s == 2 and x.low > 0)]
    pooled += [(x.hw, 2 * s)] if x.c and cout_low and not depthwise else []
    for hw, window in pooled:  # unpadded windows only: every backend's average pool agrees on them
        if hw[0] % window or hw[1] % window:
            raise ArchError(f"an octave conv average-pools {hw[0]}x{hw[1]} by {window}, which does not divide it",
                            b.span, "octave blocks need sizes their pooling divides: change the input size, or "
                            "where the octave blocks begin and end")  # fmt: skip
    hi_out = (x.hw[0] // s, x.hw[1] // s)
    lo_out = half(hi_out)

    def path_conv(name: str, cin: int, c: int, hw: HW) -> ConvBnAct | None:
        if not (cin and c) or (depthwise and name in ("hl", "lh")):
            return None
        return ConvBnAct.make(path=f"{path}.{name}", cin=cin, cout=c, kernel=k, stride=1, groups=cin if depthwise else 1,
                              padding=pad, norm=None, act="identity", in_hw=hw, out_hw=hw)  # fmt: skip

    lh = path_conv("lh", x.low, cout, lo_out if s == 2 else lo_in)
    if lh is not None and s == 1 and tuple(2 * v for v in lo_in) != x.hw:
        raise ArchError(f"the low-to-high path upsamples {lo_in[0]}x{lo_in[1]} by 2, which does not give the high "
                        f"part's {x.hw[0]}x{x.hw[1]}", b.span, "an octave pair needs an even size where it is "
                        "merged at stride 1: change the input size or where the octave blocks end")  # fmt: skip
    conv = OctaveConv.make(
        path=path, cin=x.c, cin_low=x.low, cout=cout, cout_low=cout_low, stride=s,
        hh=path_conv("hh", x.c, cout, hi_out), hl=path_conv("hl", x.c, cout_low, lo_out), lh=lh,
        ll=path_conv("ll", x.low, cout_low, lo_out), norm=b.norm, act=act or "identity", in_hw=x.hw, out_hw=hi_out,
    )  # fmt: skip
    return conv, FeatureMap(cout, hi_out, cout_low)


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[OctaveBlock, FeatureMap]:
    """An octave block for the word `b.kind` / `b.variant` (conv, ds, dsa, ib)."""
    _check(b)
    assert b.kernel
    k, s = b.kernel[0] if b.kind != "uib" else b.kernel[1], b.stride
    variant = "ib" if b.kind == "uib" else (b.variant or b.kind)
    out, alpha = b.out or x.c, b.alpha or 0.0  # alpha_mid alone: an ib whose output is one tensor
    split = _split(b, out, alpha, "alpha")
    convs: list[OctaveConv] = []

    def add(
        name: str, t: FeatureMap, c: tuple[int, int], k: int, s: int, act: Act | None, dw: bool = False
    ) -> FeatureMap:
        conv, y = octave_conv(ctx, b, f"{path}.{name}", t, c[0], c[1], k, s, act, dw)
        convs.append(conv)
        return y

    if variant == "conv":
        if b.groups not in (None, 0):
            raise ArchError("an octave conv is dense or depthwise", b.at("g"), "drop g, or write dw")
        dw = b.groups == 0
        if dw and split != (x.c, x.low):
            raise ArchError(f"a depthwise octave conv keeps its input's parts ({x.show()})", b.at("alpha", "c"),
                            f"give it the input's alpha, {x.low / (x.c + x.low):g}, and no c")  # fmt: skip
        y = add("conv", x, split, k, s, b.act, dw)
    elif variant in ("ds", "dsa"):
        t = add("dw", x, (x.c, x.low), k, s, b.act, dw=True)
        y = add("pw", t, split, 1, 1, b.act if variant == "dsa" else None)
    else:
        if b.kernel[0] or (len(b.kernel) > 2 and b.kernel[2]):
            raise ArchError("an octave ib has one depthwise conv", b.at("k"), "write k<size>")
        mid = ctx.mid_channels(b, x.c + x.low)
        alpha_mid = alpha if b.alpha_mid is None else b.alpha_mid
        t = add(
            "expand", x, _split(b, mid, alpha_mid, "alpha_mid" if b.alpha_mid is not None else "alpha"), 1, 1, b.act
        )
        t = add("dw", t, (t.c, t.low), k, s, b.act, dw=True)
        y = add("project", t, split, 1, 1, None)
    residual = variant != "dsa" and ctx.residual(b, x, y, s)
    block = OctaveBlock.make(path=path, variant=variant, convs=tuple(convs), residual=residual, drop_path=b.drop_path)
    return block, y


def _pool(path: str, channels: int, hw: HW, k: int) -> Pool:
    """k x k average pooling at stride k (k divides the size: checked by `octave_conv`)."""
    return Pool.make(path=path, mode="avg", is_global=False, kernel=k, stride=k, channels=channels, in_hw=hw,
                     out_hw=(hw[0] // k, hw[1] // k))  # fmt: skip


def conv_layers(c: OctaveConv) -> Iterator[Layer]:
    """An octave conv's layers, in execution and registration order: each path's [pool] conv
    [upsample], then per part the sum of its two paths, BatchNorm and activation."""
    lo_in, lo_out, p = half(c.in_hw), half(c.out_hw), c.path
    if c.hh is not None:
        if c.stride == 2:
            yield _pool(f"{p}.hh_down", c.cin, c.in_hw, 2)
        yield c.hh
    if c.hl is not None:
        yield _pool(f"{p}.hl_down", c.cin, c.in_hw, 2 * c.stride)
        yield c.hl
    if c.lh is not None:
        yield c.lh
        if c.stride == 1:
            yield Upsample(f"{p}.lh_up", c.cout, lo_in, c.out_hw, "nearest")
    if c.ll is not None:
        if c.stride == 2:
            yield _pool(f"{p}.ll_down", c.cin_low, lo_in, 2)
        yield c.ll
    for part, channels, hw, pair in (
        ("high", c.cout, c.out_hw, (c.hh, c.lh)),
        ("low", c.cout_low, lo_out, (c.hl, c.ll)),
    ):
        if not channels:
            continue
        if None not in pair:
            yield BranchSum(f"{p}.sum_{part}", 2, channels, hw)
        if c.norm is not None:
            yield InputNorm(f"{p}.norm_{part}", channels, hw, c.norm)
        if c.act != "identity":
            yield Activation(f"{p}.act_{part}", c.act, channels, hw)


def layers(block: OctaveBlock) -> Iterator[Layer]:
    for conv in block.convs:
        yield from conv_layers(conv)
    if block.residual:
        last = block.convs[-1]
        yield ResidualAdd(block.path, last.cout, last.out_hw)
        if last.cout_low:
            yield ResidualAdd(f"{block.path}.low", last.cout_low, half(last.out_hw))


def conv_steps(c: OctaveConv) -> list[Step]:
    """An octave conv on the variables `x` (high) and `x_low` (low): its layers in order, each
    path into its own variable (`hh`, ...; a pool into `pooled` first), then each part."""
    from ..codegen.steps import ActivationStep, Assign, Branch, SumBranches, Upsample2x

    out: list[Step] = []
    parts = {"x": [n for n in ("hh", "lh") if getattr(c, n)], "x_low": [n for n in ("hl", "ll") if getattr(c, n)]}
    renamed = False
    for layer in conv_layers(c):
        name = layer.path.rsplit(".", 1)[1]
        target = "x_low" if name.endswith("_low") else "x"
        if isinstance(layer, Pool):
            out.append(Branch(layer, "pooled", "x_low" if name == "ll_down" else "x"))
            continue
        if isinstance(layer, ConvBnAct):
            pooled = name == "hl" or (c.stride == 2 and name in ("hh", "ll"))
            out.append(Branch(layer, name, "pooled" if pooled else "x_low" if name[0] == "l" else "x"))
            continue
        if isinstance(layer, Upsample):
            out.append(Upsample2x(layer.path, "lh"))
            continue
        if not renamed:  # a part that one path reaches is that path's variable
            out += [Assign(v, paths[0]) for v, paths in parts.items() if len(paths) == 1]
            renamed = True
        if isinstance(layer, BranchSum):
            out.append(SumBranches(layer.path, tuple(parts[target]), target))
        elif isinstance(layer, InputNorm):
            out.append(Branch(layer, target, target))
        elif isinstance(layer, Activation):
            out.append(ActivationStep(layer.path, layer.act, target))
    if not renamed:
        out += [Assign(v, paths[0]) for v, paths in parts.items() if len(paths) == 1]
    return out


def steps(block: OctaveBlock) -> list[Step]:
    from ..codegen.steps import AddShortcut, Assign, BlockOutput, KeepShortcut

    first, last = block.convs[0], block.convs[-1]
    out: list[Step] = []
    if block.residual:
        out.append(KeepShortcut())
        if first.cin_low:
            out.append(Assign("shortcut_low", "x_low"))
    for conv in block.convs:
        out += conv_steps(conv)
    if block.residual:
        out.append(AddShortcut(f"{block.path}.add", block.drop_path))
        if last.cout_low:
            out.append(AddShortcut(f"{block.path}.add_low", block.drop_path, "x_low", "shortcut_low"))
    out.append(BlockOutput(block.path))
    if last.cout_low:
        out.append(BlockOutput(f"{block.path}.low", "x_low"))
    return out


def _biased(c: OctaveConv) -> tuple[str, str]:
    """The path of each part that takes the folded BatchNorm's shift as its bias."""
    return ("hh" if c.hh else "lh"), ("ll" if c.ll else "hl")


def deploy(block: OctaveBlock) -> OctaveBlock:
    """Each part's BatchNorm folded into the paths that reach it; one of them takes the bias."""
    convs = []
    for c in block.convs:
        biased = _biased(c) if c.norm is not None else ()
        paths = {n: getattr(c, n).model_copy(update={"bias": n in biased}) for n in PATHS if getattr(c, n)}
        convs.append(c.model_copy(update={**paths, "norm": None}))
    return block.model_copy(update={"convs": tuple(convs)})


def deploy_weights(block: OctaveBlock, out: dict[str, np.ndarray]) -> None:
    """w' = w * g for both paths of a part, and the part's shift as the bias of one (float64)."""
    from ..ir.deploy_form import norm_affine

    for c in block.convs:
        if c.norm is None:
            continue
        for part, pair, biased in (("high", ("hh", "lh"), _biased(c)[0]), ("low", ("hl", "ll"), _biased(c)[1])):
            if not (c.cout if part == "high" else c.cout_low):
                continue
            g, shift = norm_affine(out, f"{c.path}.norm_{part}", c.norm.eps)
            for name in pair:
                if getattr(c, name) is not None:
                    key = f"{c.path}.{name}.conv.weight"
                    out[key] = out[key] * g.reshape(-1, 1, 1, 1)
            out[f"{c.path}.{biased}.conv.bias"] = shift


def conv_call(c: OctaveConv, t: Any) -> Any:
    norms = [("norm_high", t.batch_norm(c.cout, c.norm) if c.norm and c.cout else None),
             ("norm_low", t.batch_norm(c.cout_low, c.norm) if c.norm and c.cout_low else None)]  # fmt: skip
    act = ("act", t.act(c.act) if c.act != "identity" else None)
    stride = ("stride", "2" if c.stride == 2 else None)
    return t.call("OctaveConv", *((name, t.conv(getattr(c, name))) for name in PATHS), stride, *norms, act,
                  comment=t.cost_note(conv_layers(c)))  # fmt: skip


def torch_call(block: OctaveBlock, t: Any) -> Any:
    residual = [("residual", "True")] if block.residual else []
    drop = [("drop_path", repr(block.drop_path))] if block.residual and block.drop_path else []
    convs = ((c.path.rsplit(".", 1)[1], conv_call(c, t)) for c in block.convs)
    return t.call("OctaveBlock", *convs, *residual, *drop)


KIND = BlockKind(
    name="octave",
    node=OctaveBlock,
    words={},
    built_by=(("conv", "alpha"), ("ds", "alpha"), ("dsa", "alpha"), ("ib", "alpha"), ("ib", "alpha_mid")),
    build=build,
    layers=layers,
    input=lambda b: (b.convs[0].cin + b.convs[0].cin_low, b.convs[0].in_hw),
    output=lambda b: (b.convs[-1].cout + b.convs[-1].cout_low, b.convs[-1].out_hw),
    steps=steps,
    deploy=deploy,
    deploy_weights=deploy_weights,
    pair_maps=lambda b: (
        FeatureMap(b.convs[0].cin, b.convs[0].in_hw, b.convs[0].cin_low),
        FeatureMap(b.convs[-1].cout, b.convs[-1].out_hw, b.convs[-1].cout_low),
    ),  # fmt: skip
    torch=TorchPiece("octave.py.j2", ("OctaveConv", "OctaveBlock", "OctavePool"), torch_call, drop_path=True),
)
