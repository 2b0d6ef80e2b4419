"""Resolve a prepared `NetworkSpec` into a `Network`: walk the blocks in order, carrying the
channels and spatial size, and build each block's explicit layers with paddings and paths."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchError
from .bounds import Totals
from .nodes import (
    HW,
    Act,
    Block,
    BlockSpec,
    Classifier,
    ConvBnAct,
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    GhostBottleneck,
    GhostModule,
    MobileAttention,
    MobileOneBlock,
    Network,
    NetworkSpec,
    Padding,
    Pool,
    ShuffleUnit,
    ShuffleV1Unit,
    SqueezeExcite,
    Stage,
    StageSpec,
    UniversalInvertedBottleneck,
)  # fmt: skip
from .rounding import make_divisible


@dataclass(frozen=True)
class _Tensor:
    """What flows between blocks: channels and spatial size."""

    c: int
    hw: HW

    def show(self) -> str:
        return f"{self.c}x{self.hw[0]}x{self.hw[1]}"


def padding_for(k: int, s: int, hw: HW, mode: str) -> Padding:
    """Explicit (top, bottom, left, right) padding: symmetric k//2, or TensorFlow 'same'."""
    if mode == "symmetric":
        return (k // 2,) * 4  # type: ignore[return-value]
    pads = []
    for size in hw:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return (pads[0], pads[1], pads[2], pads[3])


def out_size(hw: HW, k: int, s: int, pad: Padding) -> HW:
    return ((hw[0] + pad[0] + pad[1] - k) // s + 1, (hw[1] + pad[2] + pad[3] - k) // s + 1)


class _Builder:
    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.rounding = spec.width.rounding

    def conv(self, b: BlockSpec, path: str, x: _Tensor, cout: int, k: int, s: int, groups: int, act: Act | None,
             bias: bool = False, norm: bool = True, groups_from: tuple[str, ...] = ("g", "dw")) -> ConvBnAct:  # fmt: skip
        if k % 2 == 0 and b.pad_mode == "symmetric":
            raise ArchError(f"kernel {k} is even: symmetric padding needs an odd kernel", b.at("k"), "use padding=same")
        pad = padding_for(k, s, x.hw, b.pad_mode)
        out = out_size(x.hw, k, s, pad)
        if min(out) < 1:
            raise ArchError(f"a {k}x{k} stride-{s} conv leaves nothing of a {x.hw[0]}x{x.hw[1]} input", b.span,
                            "use a larger input or fewer stride-2 blocks")  # fmt: skip
        if x.c % groups or cout % groups:
            raise ArchError(
                f"groups={groups} must divide both {x.c} input and {cout} output channels", b.at(*groups_from)
            )
        return ConvBnAct.make(path=path, cin=x.c, cout=cout, kernel=k, stride=s, groups=groups, padding=pad,
                         bias=bias, norm=b.norm if norm else None, act=act or "identity", in_hw=x.hw, out_hw=out)  # fmt: skip

    def se(self, b: BlockSpec, path: str, cin: int, mid: int, cout: int, hw: HW) -> SqueezeExcite | None:
        if not b.se:
            return None
        cfg = b.se_config
        assert cfg is not None
        base = {"in": cin, "mid": mid, "out": cout}[cfg.base]
        reduced = make_divisible(base * b.se, cfg.divisor, cfg.round_limit)
        return SqueezeExcite.make(path=path, channels=mid, reduced=reduced, act=cfg.act, gate=cfg.gate, hw=hw)

    def residual(self, b: BlockSpec, x: _Tensor, y: _Tensor, stride: int) -> bool:
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

    def block(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        kind = b.kind
        if kind == "conv":
            assert b.kernel
            groups = x.c if b.groups == 0 else (b.groups or 1)
            c = self.conv(b, path, x, b.out or x.c, b.kernel[0], b.stride, groups, b.act, b.bias)
            y = _Tensor(c.cout, c.out_hw)
            res = self.residual(b, x, y, b.stride) if b.skip else False
            return c.model_copy(update={"residual": res}), y
        if kind in ("ds", "dsa"):
            assert b.kernel and b.out
            dw = self.conv(b, f"{path}.dw", x, x.c, b.kernel[0], b.stride, x.c, b.act)
            se = self.se(b, f"{path}.se", x.c, x.c, b.out, dw.out_hw)
            pw = self.conv(b, f"{path}.pw", _Tensor(x.c, dw.out_hw), b.out, 1, 1, 1, b.act if kind == "dsa" else None)
            y = _Tensor(b.out, pw.out_hw)
            res = False if kind == "dsa" else self.residual(b, x, y, b.stride)
            ds = DepthwiseSeparable.make(
                path=path,
                variant="dsa" if kind == "dsa" else "ds",
                dw=dw,
                se=se,
                pw=pw,
                residual=res,
                drop_path=b.drop_path,
            )
            return ds, y
        if kind == "uib":
            return self.uib(b, path, x)
        if kind == "fused_ib":
            assert b.kernel and b.out
            mid = self.mid_channels(b, x.c)
            expand = self.conv(b, f"{path}.expand", x, mid, b.kernel[0], b.stride, 1, b.act)
            se = self.se(b, f"{path}.se", x.c, mid, b.out, expand.out_hw)
            project = self.conv(b, f"{path}.project", _Tensor(mid, expand.out_hw), b.out, 1, 1, 1, None)
            y = _Tensor(b.out, project.out_hw)
            res = self.residual(b, x, y, b.stride)
            return FusedInvertedBottleneck.make(path=path, expand=expand, se=se, project=project, residual=res,
                                           drop_path=b.drop_path), y  # fmt: skip
        if kind == "mobileone":
            return self.mobileone(b, path, x)
        if kind == "mqa":
            return self.attention(b, path, x)
        if kind == "ghost":
            return self.ghost(b, path, x)
        if kind == "shuffle_v2":
            return self.shuffle(b, path, x)
        if kind == "shuffle_v1":
            return self.shuffle_v1(b, path, x)
        if kind == "pool":
            return self.pool(b, path, x)
        assert kind == "classifier"
        if x.hw != (1, 1):
            raise ArchError(f"the classifier needs a 1x1 input, got {x.hw[0]}x{x.hw[1]}", b.span,
                            "add 'pool avg' before it")  # fmt: skip
        return Classifier.make(path=path, cin=x.c, classes=self.spec.classes, dropout=b.dropout), _Tensor(
            self.spec.classes, (1, 1)
        )

    def uib(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.kernel and b.out
        ks, km, ke = b.kernel
        s = b.stride
        if s > 1 and not (ks or km or ke):
            raise ArchError(
                f"stride {s} needs a depthwise conv to apply it", b.at("s"), "an FFN block has none; use s1"
            )
        t = x
        dw_start = None
        if ks:
            dw_start = self.conv(b, f"{path}.dw_start", t, t.c, ks, 1 if km else s, t.c, None)
            t = _Tensor(t.c, dw_start.out_hw)
        mid = self.mid_channels(b, x.c)
        expand = self.conv(b, f"{path}.expand", t, mid, 1, 1, 1, b.act)
        t = _Tensor(mid, expand.out_hw)
        dw_mid = None
        if km:
            dw_mid = self.conv(b, f"{path}.dw_mid", t, mid, km, s, mid, b.act)
            t = _Tensor(mid, dw_mid.out_hw)
        se = self.se(b, f"{path}.se", x.c, mid, b.out, t.hw)
        project = self.conv(b, f"{path}.project", t, b.out, 1, 1, 1, None)
        t = _Tensor(b.out, project.out_hw)
        dw_end = None
        if ke:
            dw_end = self.conv(b, f"{path}.dw_end", t, t.c, ke, 1 if (ks or km) else s, t.c, None)
            t = _Tensor(t.c, dw_end.out_hw)
        variant = b.variant or _uib_variant(ks, km, ke)
        block = UniversalInvertedBottleneck.make(
            path=path, variant=variant, dw_start=dw_start, expand=expand, dw_mid=dw_mid, se=se, project=project,
            dw_end=dw_end, layer_scale=b.layer_scale, residual=self.residual(b, x, t, s), drop_path=b.drop_path,
        )  # fmt: skip
        return block, t

    def mobileone(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.kernel
        k, s = b.kernel[0], b.stride
        cout = b.out or x.c
        groups = x.c if b.groups == 0 else (b.groups or 1)
        branches = tuple(self.conv(b, f"{path}.conv_kxk.{i}", x, cout, k, s, groups, None) for i in range(b.branches))
        scale = self.conv(b, f"{path}.conv_scale", x, cout, 1, s, groups, None) if k > 1 else None
        y = _Tensor(cout, branches[0].out_hw)
        identity = b.norm if self.residual(b, x, y, s) and b.norm is not None else None
        se = self.se(b, f"{path}.se", x.c, cout, cout, y.hw)
        block = MobileOneBlock.make(path=path, branches=branches, scale=scale, identity=identity, se=se,
                                    act=b.act or "identity", span=b.span)  # fmt: skip
        return block, y

    def attention(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.heads and b.key_dim
        h, kd, qs, v = b.heads, b.key_dim, b.query_stride, b.kv_stride
        vd = b.value_dim or kd
        kv_heads = h if b.variant == "mhsa" else 1
        if x.hw[0] % qs or x.hw[1] % qs:
            raise ArchError(f"query stride {qs} does not divide the {x.hw[0]}x{x.hw[1]} input", b.at("query_stride"),
                            "the upsampled attention output must match the input for the residual")  # fmt: skip
        query_pool = query_norm = None
        q = x
        if qs > 1:
            q_hw = (x.hw[0] // qs, x.hw[1] // qs)
            query_pool = Pool.make(path=f"{path}.query_pool", mode="avg", is_global=False, kernel=qs, stride=qs,
                                   channels=x.c, in_hw=x.hw, out_hw=q_hw)  # fmt: skip
            query_norm = b.norm
            q = _Tensor(x.c, q_hw)
        query = self.conv(b, f"{path}.query", q, h * kd, 1, 1, 1, None, norm=False)
        if b.kernel and v == 1:
            raise ArchError("k is the kernel of the key/value downsampling, which needs v > 1", b.at("k"),
                            "add v2, or drop k")  # fmt: skip
        k = b.kernel[0] if b.kernel else 3
        kv = x
        key_down = value_down = None
        if v > 1:
            key_down = self.conv(b, f"{path}.key_down", x, x.c, k, v, x.c, None)
            value_down = self.conv(b, f"{path}.value_down", x, x.c, k, v, x.c, None)
            kv = _Tensor(x.c, key_down.out_hw)
        key = self.conv(b, f"{path}.key", kv, kv_heads * kd, 1, 1, 1, None, norm=False)
        value = self.conv(b, f"{path}.value", kv, kv_heads * vd, 1, 1, 1, None, norm=False)
        cout = b.out or x.c
        output = self.conv(b, f"{path}.output", _Tensor(h * vd, x.hw), cout, 1, 1, 1, None, norm=False)
        y = _Tensor(cout, x.hw)
        block = MobileAttention.make(
            path=path, variant=b.variant or "mqa", norm=b.norm, channels=x.c, hw=x.hw, heads=h, kv_heads=kv_heads,
            key_dim=kd, value_dim=vd, query_pool=query_pool, query_norm=query_norm, query=query, key_down=key_down,
            key=key, value_down=value_down, value=value, output=output, layer_scale=b.layer_scale,
            residual=self.residual(b, x, y, 1), drop_path=b.drop_path,
        )  # fmt: skip
        return block, y

    def ghost_module(self, b: BlockSpec, path: str, x: _Tensor, out: int, act: Act | None) -> GhostModule:
        init = -(-out // 2)
        primary = self.conv(b, f"{path}.primary", x, init, 1, 1, 1, act)
        cheap = self.conv(b, f"{path}.cheap", _Tensor(init, primary.out_hw), init, 3, 1, init, act)
        return GhostModule.make(path=path, primary=primary, cheap=cheap, out=out)

    def ghost(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.kernel and b.out
        k, s = b.kernel[0], b.stride
        if k % 2 == 0 and b.pad_mode == "symmetric":  # checked here too: a stride-1 block may not use k
            raise ArchError(f"kernel {k} is even: symmetric padding needs an odd kernel", b.at("k"), "use padding=same")
        mid = self.mid_channels(b, x.c)
        ghost1 = self.ghost_module(b, f"{path}.ghost1", x, mid, b.act)
        t = _Tensor(mid, x.hw)
        dw = None
        if s > 1:
            dw = self.conv(b, f"{path}.dw", t, mid, k, s, mid, None)
            t = _Tensor(mid, dw.out_hw)
        se = self.se(b, f"{path}.se", x.c, mid, b.out, t.hw)
        ghost2 = self.ghost_module(b, f"{path}.ghost2", t, b.out, None)
        shortcut_dw = shortcut_pw = None
        if s > 1 or x.c != b.out:  # a projection where the shapes differ
            shortcut_dw = self.conv(b, f"{path}.shortcut_dw", x, x.c, k, s, x.c, None)
            shortcut_pw = self.conv(b, f"{path}.shortcut_pw", _Tensor(x.c, shortcut_dw.out_hw), b.out, 1, 1, 1, None)
        block = GhostBottleneck.make(path=path, ghost1=ghost1, dw=dw, se=se, ghost2=ghost2, shortcut_dw=shortcut_dw,
                                     shortcut_pw=shortcut_pw, drop_path=b.drop_path)  # fmt: skip
        return block, _Tensor(b.out, t.hw)

    def shuffle(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.out
        s, half = b.stride, b.out // 2
        if b.out % 2:
            raise ArchError(f"a shuffle_v2 unit needs an even channel count, got {b.out}", b.at("c"))
        down_dw = down_pw = None
        if s == 1:
            if x.c != b.out:
                raise ArchError(f"a stride-1 shuffle_v2 unit keeps its {x.c} channels, not {b.out}", b.at("c"),
                                "change the width in a stride-2 unit")  # fmt: skip
            branch = _Tensor(half, x.hw)  # the second half of the input channels
        else:
            down_dw = self.conv(b, f"{path}.down_dw", x, x.c, 3, s, x.c, None)
            down_pw = self.conv(b, f"{path}.down_pw", _Tensor(x.c, down_dw.out_hw), half, 1, 1, 1, b.act)
            branch = x
        pw1 = self.conv(b, f"{path}.pw1", branch, half, 1, 1, 1, b.act)
        dw = self.conv(b, f"{path}.dw", _Tensor(half, pw1.out_hw), half, 3, s, half, None)
        pw2 = self.conv(b, f"{path}.pw2", _Tensor(half, dw.out_hw), half, 1, 1, 1, b.act)
        unit = ShuffleUnit.make(path=path, down_dw=down_dw, down_pw=down_pw, pw1=pw1, dw=dw, pw2=pw2)
        return unit, _Tensor(b.out, pw2.out_hw)

    def shuffle_v1(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
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
        reduce = self.conv(b, f"{path}.reduce", x, mid, 1, 1, b.reduce_groups or g, b.act,
                           groups_from=("reduce_groups", "g"))  # fmt: skip
        dw = self.conv(b, f"{path}.dw", _Tensor(mid, x.hw), mid, 3, s, mid, None)
        expand = self.conv(b, f"{path}.expand", _Tensor(mid, dw.out_hw), branch_out, 1, 1, g, None)
        shortcut = None
        if s > 1:
            pad = padding_for(3, s, x.hw, b.pad_mode)
            shortcut = Pool.make(path=f"{path}.shortcut", mode="avg", is_global=False, kernel=3, stride=s, padding=pad,
                                 include_pad=True, channels=x.c, in_hw=x.hw, out_hw=out_size(x.hw, 3, s, pad))  # fmt: skip
        unit = ShuffleV1Unit.make(path=path, reduce=reduce, groups=g, dw=dw, expand=expand, shortcut=shortcut,
                                  act=b.act or "identity")  # fmt: skip
        return unit, _Tensor(b.out, dw.out_hw)

    def pool(self, b: BlockSpec, path: str, x: _Tensor) -> tuple[Block, _Tensor]:
        assert b.mode
        if b.kernel is None:
            if b.option_spans and {"s", "padding", "count_pad"} & b.option_spans.keys():
                raise ArchError("a global pool takes no stride or padding", b.at("s", "padding", "count_pad"),
                                "give k<size> for a windowed pool")  # fmt: skip
            return Pool.make(path=path, mode=b.mode, is_global=True, channels=x.c, in_hw=x.hw, out_hw=(1, 1)), _Tensor(
                x.c, (1, 1)
            )
        k = b.kernel[0]
        if k % 2 == 0 and b.pad_mode == "symmetric":
            raise ArchError(f"kernel {k} is even: symmetric padding needs an odd kernel", b.at("k"), "use padding=same")
        if b.include_pad and b.mode == "max":
            raise ArchError(
                "count_pad is for average pooling", b.at("count_pad"), "drop it: max pooling pads with -inf"
            )
        pad = padding_for(k, b.stride, x.hw, b.pad_mode)
        out = out_size(x.hw, k, b.stride, pad)
        pool = Pool.make(path=path, mode=b.mode, is_global=False, kernel=k, stride=b.stride, padding=pad, channels=x.c,
                    include_pad=b.include_pad, in_hw=x.hw, out_hw=out)  # fmt: skip
        return pool, _Tensor(x.c, out)


def _uib_variant(ks: int, km: int, ke: int) -> str:
    if ke:
        return "uib"
    return {(True, True): "extra_dw", (False, True): "ib", (True, False): "convnext", (False, False): "ffn"}[
        (bool(ks), bool(km))
    ]


def build_blocks(spec: NetworkSpec, source: str = "") -> Network:
    builder = _Builder(spec)
    x = _Tensor(spec.in_channels, spec.input_hw)
    totals = Totals()

    def stage(s: StageSpec, path: str, prefix: str) -> Stage:
        nonlocal x
        blocks = []
        for j, b in enumerate(s.blocks):
            block, x = builder.block(b, f"{prefix}{j}", x)
            if block.span is None:  # where later stages (importers, folding) locate their errors
                block = block.model_copy(update={"span": b.span})
            totals.check(block, b)
            blocks.append(block)
        return Stage.make(name=s.name, path=path, blocks=tuple(blocks), span=s.span)

    stem = stage(spec.stem, "stem", "stem.")
    stages = tuple(stage(s, f"stages.{i}", f"stages.{i}.blocks.") for i, s in enumerate(spec.stages))
    head = stage(spec.head, "head", "head.")
    if not head.blocks or head.blocks[-1].kind != "classifier":
        raise ArchError("the head must end with a classifier", spec.head.span, "add 'classifier' as its last block")
    return Network.make(
        name=spec.name, source=source, source_hash=spec.source_hash,
        input_shape=(spec.in_channels, *spec.input_hw), classes=spec.classes, width=spec.width.multiplier,
        depth=spec.depth.multiplier, stem=stem, stages=stages, head=head,
    )  # fmt: skip
