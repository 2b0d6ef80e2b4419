"""`mqa` / `mhsa`: MobileNetV4's Mobile MQA attention block, or plain multi-head self-attention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import AttentionCore, InputNorm, Layer, Upsample, residual_tail
from ..ir.nodes import HW, BlockNode, BlockSpec, ConvBnAct, Norm, Pool
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class MobileAttention(BlockNode):
    """MobileNetV4 Mobile MQA: pre-BN -> attention -> [layer scale] -> [+ input]. Multi-query
    (`kv_heads` 1: one key and value head shared by every query head) or plain multi-head
    (`kv_heads = heads`). Keys and values may be downsampled (depthwise conv + BN each), queries
    too (avg pool + BN, then a bilinear upsample before the output projection). Channels split
    into heads head-major (channel = head * dim + j); no projection has a bias."""

    kind: Literal["mqa"] = "mqa"
    path: str
    variant: Literal["mqa", "mhsa"]
    norm: Norm | None  # the pre-norm, `<path>.norm`
    channels: int
    hw: HW
    heads: int
    kv_heads: int
    key_dim: int
    value_dim: int
    query_pool: Pool | None  # `<path>.query_pool`, with `query_norm` after it
    query_norm: Norm | None
    query: ConvBnAct  # 1x1 projections: `<path>.query`, `.key`, `.value`, `.output`
    key_down: ConvBnAct | None
    key: ConvBnAct
    value_down: ConvBnAct | None
    value: ConvBnAct
    output: ConvBnAct
    layer_scale: float | None
    residual: bool
    drop_path: float = 0.0


OPTIONS = frozenset({
    "h", "d", "v", "k", "c", "x", "value_dim", "query_stride", "norm", "eps", "skip", "noskip", "fixed",
    "layer_scale", "drop_path",
})  # fmt: skip


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[MobileAttention, FeatureMap]:
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
        q = FeatureMap(x.c, q_hw)
    query = ctx.conv(b, f"{path}.query", q, h * kd, 1, 1, 1, None, norm=False)
    if b.kernel and v == 1:
        raise ArchError("k is the kernel of the key/value downsampling, which needs v > 1", b.at("k"),
                        "add v2, or drop k")  # fmt: skip
    k = b.kernel[0] if b.kernel else 3
    kv = x
    key_down = value_down = None
    if v > 1:
        key_down = ctx.conv(b, f"{path}.key_down", x, x.c, k, v, x.c, None)
        value_down = ctx.conv(b, f"{path}.value_down", x, x.c, k, v, x.c, None)
        kv = FeatureMap(x.c, key_down.out_hw)
    key = ctx.conv(b, f"{path}.key", kv, kv_heads * kd, 1, 1, 1, None, norm=False)
    value = ctx.conv(b, f"{path}.value", kv, kv_heads * vd, 1, 1, 1, None, norm=False)
    cout = b.out or x.c
    output = ctx.conv(b, f"{path}.output", FeatureMap(h * vd, x.hw), cout, 1, 1, 1, None, norm=False)
    y = FeatureMap(cout, x.hw)
    block = MobileAttention.make(
        path=path, variant=b.variant or "mqa", norm=b.norm, channels=x.c, hw=x.hw, heads=h, kv_heads=kv_heads,
        key_dim=kd, value_dim=vd, query_pool=query_pool, query_norm=query_norm, query=query, key_down=key_down,
        key=key, value_down=value_down, value=value, output=output, layer_scale=b.layer_scale,
        residual=ctx.residual(b, x, y, 1), drop_path=b.drop_path,
    )  # fmt: skip
    return block, y


def layers(block: MobileAttention) -> Iterator[Layer]:
    c, hw = block.channels, block.hw
    if block.norm is not None:
        yield InputNorm(f"{block.path}.norm", c, hw, block.norm)
    if block.query_pool is not None:
        yield block.query_pool
        if block.query_norm is not None:
            yield InputNorm(f"{block.path}.query_norm", c, block.query_pool.out_hw, block.query_norm)
    yield from (p for p in (block.query, block.key_down, block.key, block.value_down, block.value) if p is not None)
    q_hw, kv_hw = block.query.out_hw, block.key.out_hw
    yield AttentionCore(block.path, block.heads, block.kv_heads, block.key_dim, block.value_dim,
                        q_hw[0] * q_hw[1], kv_hw[0] * kv_hw[1])  # fmt: skip
    if q_hw != hw:
        yield Upsample(f"{block.path}.upsample", block.heads * block.value_dim, q_hw, hw)
    yield block.output
    yield from residual_tail(block.path, block.output.cout, hw, block.residual, block.layer_scale)


def steps(block: MobileAttention) -> list[Step]:
    """One attention step: each backend has an attention helper."""
    from ..codegen.steps import AttentionStep, residual_steps

    attention = AttentionStep(
        block.path, block.output.cout, block.heads, block.kv_heads, block.key_dim, block.value_dim, block.norm,
        block.key_down, block.query_pool.stride if block.query_pool is not None else None, block.query.out_hw,
    )  # fmt: skip
    return residual_steps([attention], block.path, block.residual, block.layer_scale, block.drop_path)


def torch_call(block: MobileAttention, t: Any) -> Any:
    def norm(n: Norm | None) -> str | None:
        return t.batch_norm(block.channels, n) if n is not None else None

    query_pool = f"nn.AvgPool2d({block.query_pool.kernel})" if block.query_pool is not None else None
    return t.call(
        "MobileAttention", ("norm", norm(block.norm) or "nn.Identity()"), ("query", t.conv(block.query)),
        ("key", t.conv(block.key)), ("value", t.conv(block.value)), ("output", t.conv(block.output)),
        ("heads", str(block.heads)), ("key_dim", str(block.key_dim)), ("value_dim", str(block.value_dim)),
        ("kv_heads", str(block.kv_heads) if block.kv_heads != 1 else None), ("query_pool", query_pool),
        ("query_norm", norm(block.query_norm)), ("key_down", t.conv(block.key_down)),
        ("value_down", t.conv(block.value_down)),
        ("layer_scale", repr(block.layer_scale) if block.layer_scale is not None else None), *t.residual(block),
    )  # fmt: skip


def timm(block: MobileAttention, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """timm's MobileAttention: `norm`, `attn.{query,key,value}.{down_pool,down_conv,norm,proj}`,
    `attn.output.proj`, `layer_scale.gamma`."""
    if place.part != "stage":
        return
    p, prefix = block.path, place.prefix
    a = f"{prefix}.attn"
    out[f"{p}.norm"], out[f"{p}.query_norm"], out[f"{p}.layer_scale"] = (
        f"{prefix}.norm",
        f"{a}.query.norm",
        f"{prefix}.layer_scale",
    )
    for part in ("query", "key", "value", "output"):
        out[f"{p}.{part}.conv"] = f"{a}.{part}.proj"
    for part in ("key", "value"):
        out[f"{p}.{part}_down.conv"], out[f"{p}.{part}_down.bn"] = f"{a}.{part}.down_conv", f"{a}.{part}.norm"


def _in(block: MobileAttention) -> tuple[int, HW]:
    return block.channels, block.hw


KIND = BlockKind(
    name="mqa",
    node=MobileAttention,
    words={
        "mqa": Word(
            OPTIONS,
            "Mobile MQA: pre-BN, multi-query attention (one shared key/value head), layer scale, residual",
            ("heads",),
            variant="mqa",
        ),
        "mhsa": Word(
            OPTIONS,
            "multi-head self-attention: as mqa with a key/value head per query head",
            ("heads",),
            variant="mhsa",
        ),
    },  # fmt: skip
    build=build,
    layers=layers,
    input=_in,
    output=lambda b: (b.output.cout, b.output.out_hw),
    steps=steps,
    torch=TorchPiece(
        "mobile_attention.py.j2", ("MobileAttention",), torch_call, helpers=("layer_scale",), drop_path=True
    ),  # fmt: skip
    timm={"efficientnet": timm},
    layer_scale_default=True,
)
