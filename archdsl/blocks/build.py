"""The pieces block kinds are elaborated from: a conv with its padding and checks, an SE with
its width rule, the residual decision, the expanded width. Each check raises a located error
at the option that causes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ArchError
from ..ir.geometry import BLUR_KERNEL, BLUR_PADDING, FeatureMap, out_size, padding_for
from ..ir.nodes import HW, Act, BlockSpec, ConvBnAct, Rounding, SqueezeExcite
from ..ir.rounding import make_divisible

if TYPE_CHECKING:
    from ..ir.network import Endpoint


class Builder:
    """Builds layers for the blocks of one network (its width rounding and class count)."""

    def __init__(self, rounding: Rounding, classes: int, input_hw: HW):
        self.rounding = rounding
        self.classes = classes
        self.input_hw = input_hw
        self.endpoints: list[Endpoint] = []  # found so far, in network order: a dense head reads them

    def conv(self, b: BlockSpec, path: str, x: FeatureMap, cout: int, k: int, s: int, groups: int, act: Act | None,
             bias: bool = False, norm: bool = True, groups_from: tuple[str, ...] = ("g", "dw")) -> ConvBnAct:  # fmt: skip
        check_odd(b, k)
        if b.aa and b.stride != 2:
            raise ArchError(f"aa={b.aa} downsamples by 2: the block has stride {b.stride}", b.at("aa"),
                            "give the block s2, or drop aa")  # fmt: skip
        if b.dilation > 1 and b.stride > 1:
            raise ArchError(f"a block cannot both stride and dilate (stride {b.stride}, dilation {b.dilation})",
                            b.at("dilation"), "use s1 with the dilation, as output_stride does")  # fmt: skip
        aa = b.aa if s > 1 else None  # on the conv that takes the block's stride
        d = b.dilation if k > 1 else 1
        pad = padding_for(k, 1 if aa else s, x.hw, b.pad_mode, d)
        out = out_size(x.hw, k, 1 if aa else s, pad, d)
        if aa:
            out = out_size(out, BLUR_KERNEL, s, BLUR_PADDING)
        if min(out) < 1:
            raise ArchError(f"a {k}x{k} stride-{s} conv leaves nothing of a {x.hw[0]}x{x.hw[1]} input", b.span,
                            "use a larger input or fewer stride-2 blocks")  # fmt: skip
        if x.c % groups or cout % groups:
            raise ArchError(
                f"groups={groups} must divide both {x.c} input and {cout} output channels", b.at(*groups_from)
            )
        return ConvBnAct.make(path=path, cin=x.c, cout=cout, kernel=k, stride=s, groups=groups, padding=pad,
                         bias=bias, norm=b.norm if norm else None, act=act or "identity", in_hw=x.hw, out_hw=out,
                         aa=aa, dilation=d)  # fmt: skip

    def se(self, b: BlockSpec, path: str, cin: int, mid: int, cout: int, hw: HW) -> SqueezeExcite | None:
        if not b.se:
            return None
        cfg = b.se_config
        assert cfg is not None
        if cfg.base == "mid_over_e":
            if b.expand is None and b.mid is not None:
                raise ArchError("the SE base mid_over_e divides the ratio by the expansion: the block gives mid, not e",
                                b.at("mid"), "give the block e<ratio>, or use se base=mid")  # fmt: skip
            width = mid * (b.se / (b.expand or 1.0))  # timm: se_ratio /= exp_ratio, then mid x se_ratio
        else:
            width = {"in": cin, "mid": mid, "out": cout}[cfg.base] * b.se
        reduced = make_divisible(width, cfg.divisor, cfg.round_limit)
        return SqueezeExcite.make(path=path, channels=mid, reduced=reduced, act=cfg.act, gate=cfg.gate, hw=hw)

    def residual(self, b: BlockSpec, x: FeatureMap, y: FeatureMap, stride: int) -> bool:
        fits = stride == 1 and x == y
        if b.skip and not fits:
            why = f"stride {stride}" if stride != 1 else f"input {x.show()} but output {y.show()}"
            raise ArchError(f"a residual needs equal input and output shapes: {why}", b.at("skip"),
                            f"drop 'skip', or make the block keep {x.c} channels at stride 1")  # fmt: skip
        return fits and b.skip is not False

    def mid_channels(self, b: BlockSpec, cin: int) -> int:
        if b.mid is not None:
            return b.mid
        assert b.expand is not None
        return make_divisible(cin * b.expand, self.rounding.divisor, self.rounding.round_limit)


def check_odd(b: BlockSpec, k: int) -> None:
    if k % 2 == 0 and b.pad_mode == "symmetric":
        raise ArchError(f"kernel {k} is even: symmetric padding needs an odd kernel", b.at("k"), "use padding=same")


def groups_of(b: BlockSpec, x: FeatureMap) -> int:
    """`g`, or the input channels for `dw` (groups 0)."""
    return x.c if b.groups == 0 else (b.groups or 1)
