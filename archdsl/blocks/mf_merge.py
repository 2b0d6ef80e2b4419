"""`mf_merge e<E> c<C>`: Mobile-Former's head before the classifier (the authors'
MergeClassifier without its last linear layer): the last Mobile->Former bridge, [a channel
shuffle], a 1x1 conv to E x channels (BatchNorm, act), global average pooling and hard-swish; the
first token appended; a linear layer to C (BatchNorm, hard-swish). A `classifier` follows it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..ir.geometry import FeatureMap
from ..ir.layers import Activation, Concat, InputNorm, Layer, TokenLinear
from ..ir.nodes import HW, BlockNode, BlockSpec, ConvBnAct, Norm, Pool
from . import bridge
from .bridge import Shuffle, ToFormer
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word
from .mobile_former import BRIDGE_HEADS, TOKENS, _divides, _mid

if TYPE_CHECKING:
    import numpy as np

    from ..codegen.steps import Step


class MobileFormerMerge(BlockNode):
    kind: Literal["mf_merge"] = "mf_merge"
    path: str
    cin: int
    hw: HW
    tokens: tuple[int, int]
    to_former: ToFormer
    shuffle: Shuffle | None
    conv: ConvBnAct
    out: int
    norm: Norm | None  # the BatchNorm after the linear layer (folded into it in the deploy form)


OPTIONS = frozenset({"e", "c", "g", "h", "act", "norm", "eps", "fixed"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[MobileFormerMerge, FeatureMap]:
    assert x.tokens is not None and b.expand is not None and b.out is not None
    count, dim = x.tokens
    heads, g = b.heads or BRIDGE_HEADS, b.groups or 1
    _divides(b, heads, x.c, "h", "input channels (the bridge's heads split them)")
    to_former = ToFormer.make(path=f"{path}.to_former", channels=x.c, hw=x.hw, count=count, dim=dim, heads=heads)
    shuffle = Shuffle.make(path=f"{path}.shuffle", groups=g, channels=x.c, hw=x.hw) if g > 1 else None
    conv = ctx.conv(b, f"{path}.conv", x, _mid(b, x.c, b.expand, "e", depthwise=False), 1, 1, g, b.act,
                    groups_from=("g",))  # fmt: skip
    block = MobileFormerMerge.make(path=path, cin=x.c, hw=x.hw, tokens=x.tokens, to_former=to_former, shuffle=shuffle,
                                   conv=conv, out=b.out, norm=b.norm)  # fmt: skip
    return block, FeatureMap(b.out, (1, 1))


def _pool(block: MobileFormerMerge) -> Pool:
    return Pool.make(path=f"{block.path}.pool", mode="avg", is_global=True, channels=block.conv.cout,
                     in_hw=block.conv.out_hw, out_hw=(1, 1))  # fmt: skip


def layers(block: MobileFormerMerge) -> Iterator[Layer]:
    p, c, dim = block.path, block.conv.cout, block.tokens[1]
    yield from bridge.layers(block.to_former)
    if block.shuffle is not None:
        yield from bridge.layers(block.shuffle)
    yield block.conv
    yield _pool(block)
    yield Activation(f"{p}.pool", "hard_swish", c, (1, 1))
    yield Concat(f"{p}.concat", c + dim, (1, 1))
    yield TokenLinear(f"{p}.fc", c + dim, block.out, 1)
    if block.norm is not None:
        yield InputNorm(f"{p}.fc_norm", block.out, (1, 1), block.norm)
    yield Activation(f"{p}.fc", "hard_swish", block.out, (1, 1))


def steps(block: MobileFormerMerge) -> list[Step]:
    from ..codegen.steps import ActivationStep, BlockOutput, MergeTokens, ShuffleStep

    s = block.shuffle
    return [
        block.to_former,
        *([ShuffleStep(s.path, s.groups, s.channels, s.hw)] if s is not None else []),
        block.conv,
        _pool(block),
        ActivationStep(f"{block.path}.pool.act", "hard_swish"),
        MergeTokens(block.path, block.conv.cout, block.tokens[1], block.out, block.norm),
        BlockOutput(block.path),
    ]


def torch_call(block: MobileFormerMerge, t: Any) -> Any:
    norm = f"nn.BatchNorm1d({block.out}, eps={block.norm.eps!r})" if block.norm is not None else None
    return t.call(
        "MobileFormerMerge", ("", str(block.conv.cout + block.tokens[1])), ("", str(block.out)),
        ("to_former", bridge.torch_call(block.to_former, t)), ("conv", t.conv(block.conv)),
        ("shuffle", f"ChannelShuffle({block.shuffle.groups})" if block.shuffle else None), ("fc_norm", norm),
    )  # fmt: skip


def authors_names(block: MobileFormerMerge, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """The authors' network-level `local_global` and their MergeClassifier's `conv.1` (its
    `conv.0` a shuffle or empty), `fc.0` and `fc.1`."""
    p = block.path
    bridge.authors_names(block.to_former, "local_global", out)
    out.update({f"{p}.conv.conv": "classifier.conv.1", f"{p}.conv.bn": "classifier.conv.2", f"{p}.fc": "classifier.fc.0",
                f"{p}.fc_norm": "classifier.fc.1"})  # fmt: skip


def deploy(block: MobileFormerMerge) -> MobileFormerMerge:
    """Both BatchNorms folded: the conv's (as every conv's) and the linear layer's."""
    conv = block.conv.model_copy(update={"norm": None, "bias": True}) if block.conv.norm else block.conv
    return block.model_copy(update={"conv": conv, "norm": None})


def deploy_weights(block: MobileFormerMerge, out: dict[str, np.ndarray]) -> None:
    """The linear layer's BatchNorm folded into it: W' = W g (per output), b' = b g + shift."""
    from ..ir.deploy_form import norm_affine

    if block.norm is None:
        return
    g, shift = norm_affine(out, f"{block.path}.fc_norm", block.norm.eps)
    out[f"{block.path}.fc.weight"] = out[f"{block.path}.fc.weight"] * g[:, None]
    out[f"{block.path}.fc.bias"] = out[f"{block.path}.fc.bias"] * g + shift


KIND = BlockKind(
    name="mf_merge",
    node=MobileFormerMerge,
    words={
        "mf_merge": Word(
            OPTIONS,
            "Mobile-Former's head: last bridge, 1x1 conv, pool, the first token appended, linear + BN + hard-swish",
            ("out", "expansion"),
            kernels="none",
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.cin, b.hw),
    output=lambda b: (b.out, (1, 1)),
    steps=steps,
    torch=TorchPiece("mobile_former.py.j2", ("MobileFormerMerge",), torch_call, shuffle=True),
    timm={"mobile_former": authors_names},
    takes=lambda b: TOKENS,
    pair_maps=lambda b: (FeatureMap(b.cin, b.hw, tokens=b.tokens), FeatureMap(b.out, (1, 1))),
    deploy=deploy,
    deploy_weights=deploy_weights,
)
