"""`pool`: average or max pooling, global (to 1x1) unless a window `k` is given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..errors import ArchError
from ..ir.geometry import FeatureMap, half, out_size, padding_for
from ..ir.layers import Concat, Layer
from ..ir.nodes import BlockSpec, Pool
from .build import Builder, check_odd
from .kind import ONE, BlockKind, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[Pool, FeatureMap]:
    assert b.mode
    if b.kernel is None:
        if b.option_spans and {"s", "padding", "count_pad"} & b.option_spans.keys():
            raise ArchError("a global pool takes no stride or padding", b.at("s", "padding", "count_pad"),
                            "give k<size> for a windowed pool")  # fmt: skip
        pool = Pool.make(path=path, mode=b.mode, is_global=True, channels=x.c, low=x.low, in_hw=x.hw, out_hw=(1, 1))
        return pool, FeatureMap(x.c + x.low, (1, 1))
    k = b.kernel[0]
    check_odd(b, k)
    if b.include_pad and b.mode == "max":
        raise ArchError("count_pad is for average pooling", b.at("count_pad"), "drop it: max pooling pads with -inf")
    pad = padding_for(k, b.stride, x.hw, b.pad_mode)
    out = out_size(x.hw, k, b.stride, pad)
    pool = Pool.make(path=path, mode=b.mode, is_global=False, kernel=k, stride=b.stride, padding=pad, channels=x.c,
                     include_pad=b.include_pad, in_hw=x.hw, out_hw=out)  # fmt: skip
    return pool, FeatureMap(x.c, out)


def layers(pool: Pool) -> Iterator[Layer]:
    if not pool.low:
        yield pool
        return
    # an octave pair: each part pooled, then the two concatenated (high first)
    yield pool.model_copy(update={"low": 0})
    yield pool.model_copy(
        update={"path": f"{pool.path}.low", "channels": pool.low, "low": 0, "in_hw": half(pool.in_hw)}
    )
    yield Concat(f"{pool.path}.concat", pool.channels + pool.low, (1, 1))


def steps(pool: Pool) -> list[Step]:
    from ..codegen.steps import Branch, ConcatStep, residual_steps

    if not pool.low:
        return residual_steps([pool], pool.path, False)
    high, low, concat = layers(pool)
    assert isinstance(high, Pool) and isinstance(low, Pool) and isinstance(concat, Concat)
    return residual_steps([Branch(high, "x", "x"), Branch(low, "x_low", "x_low"),
                           ConcatStep(concat.path, ("x", "x_low"), concat.channels, cut=False)], pool.path, False)  # fmt: skip


KIND = BlockKind(
    name="pool",
    node=Pool,
    words={
        "pool": Word(
            frozenset({"avg", "max", "k", "s", "padding", "count_pad"}), "pooling: global unless k is given", ("mode",)
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda p: (p.channels + p.low, p.in_hw),
    output=lambda p: (p.channels + p.low, p.out_hw),
    steps=steps,
    torch=TorchPiece("pool.py.j2", ("GlobalPool", "Pool"), lambda p, t: t.pool(p)),
    takes=lambda b: frozenset({None, "octave"}) if b.kernel is None else ONE,  # a global pool takes an octave pair
    pair_maps=lambda p: (
        (FeatureMap(p.channels, p.in_hw, p.low), FeatureMap(p.channels + p.low, p.out_hw)) if p.low else None
    ),
)
