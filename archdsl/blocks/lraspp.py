"""`lraspp`: Lite R-ASPP (MobileNetV3 paper, section 6.4), a segmentation head on two feature
endpoints, the network's first (low, finer: 1/8 in the paper) and second (high, 1/16). On the
high features a 1x1 conv + BN + act, gated per channel by their global average through a 1x1
conv and a sigmoid, upsampled to the low map's size; a biased 1x1 classifier on each of the
two, summed, and upsampled to the input size (bilinear, half-pixel centres as PyTorch's
align_corners=False): per-pixel class scores `out`, torchvision's `lraspp_mobilenet_v3_large`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import BranchSum, Gate, Layer, Upsample
from ..ir.nodes import HW, BlockNode, BlockSpec, ConvBnAct, Pool
from .build import Builder
from .kind import BlockKind, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step

OUTPUT = "out"


class LRASPP(BlockNode):
    kind: Literal["lraspp"] = "lraspp"
    path: str
    low: str  # the endpoints it reads
    high: str
    cbr: ConvBnAct  # high -> inter, BN, act
    pool: Pool  # the global average of high
    scale: ConvBnAct  # pooled high -> inter, sigmoid
    low_classifier: ConvBnAct
    high_classifier: ConvBnAct
    out_hw: HW  # the input's size

    @property
    def classes(self) -> int:
        return self.low_classifier.cout


OPTIONS = frozenset({"c", "act", "norm", "eps", "fixed"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[LRASPP, FeatureMap]:
    if len(ctx.endpoints) != 2:
        raise ArchError(f"lraspp reads two feature endpoints, low and high: the network has {len(ctx.endpoints)}",
                        b.span, "mark `out` the block at 1/8 and the last stage")  # fmt: skip
    low, high = ctx.endpoints  # in network order: low is at least as fine
    assert b.out  # `c` is required (the inner width: 128 in the paper)
    inter, hi, lo = b.out, FeatureMap(high.channels, high.hw), FeatureMap(low.channels, low.hw)
    cbr = ctx.conv(b, f"{path}.cbr", hi, inter, 1, 1, 1, b.act)
    pool = Pool.make(path=f"{path}.average", mode="avg", is_global=True, channels=high.channels, in_hw=high.hw,
                     out_hw=(1, 1))  # fmt: skip
    scale = ctx.conv(b, f"{path}.scale", FeatureMap(high.channels, (1, 1)), inter, 1, 1, 1, "sigmoid", norm=False)
    classes = ctx.classes
    low_classifier = ctx.conv(b, f"{path}.low_classifier", lo, classes, 1, 1, 1, None, bias=True, norm=False)
    high_classifier = ctx.conv(b, f"{path}.high_classifier", FeatureMap(inter, low.hw), classes, 1, 1, 1, None,
                               bias=True, norm=False)  # fmt: skip
    block = LRASPP.make(path=path, low=low.name, high=high.name, cbr=cbr, pool=pool, scale=scale,
                        low_classifier=low_classifier, high_classifier=high_classifier, out_hw=ctx.input_hw)  # fmt: skip
    return block, FeatureMap(classes, ctx.input_hw)


def predictions(block: LRASPP) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return ((OUTPUT, (block.classes, *block.out_hw)),)


def layers(block: LRASPP) -> Iterator[Layer]:
    p, inter, high_hw, low_hw = block.path, block.cbr.cout, block.cbr.out_hw, block.low_classifier.out_hw
    yield from (block.cbr, block.pool, block.scale)
    yield Gate(f"{p}.gate", inter, high_hw)
    yield Upsample(f"{p}.upsample", inter, high_hw, low_hw)
    yield from (block.low_classifier, block.high_classifier)
    yield BranchSum(p, 2, block.classes, low_hw)
    yield Upsample(f"{p}.output", block.classes, low_hw, block.out_hw)


def steps(block: LRASPP) -> list[Step]:
    from ..codegen.steps import Branch, GateStep, HeadOutput, Resize, SumBranches, TakeEndpoint

    p, low_hw = block.path, block.low_classifier.out_hw
    return [
        TakeEndpoint(block.high, "high"),
        TakeEndpoint(block.low, "low"),
        Branch(block.cbr, "x", "high"),
        Branch(block.pool, "s", "high"),
        Branch(block.scale, "s", "s"),
        GateStep(f"{p}.gate", "s"),
        Resize(f"{p}.upsample", low_hw),
        Branch(block.low_classifier, "low", "low"),
        Branch(block.high_classifier, "x", "x"),
        SumBranches(f"{p}.sum", ("low", "x")),
        Resize(f"{p}.output", block.out_hw),
        HeadOutput(OUTPUT),
    ]


def torch_call(block: LRASPP, t: Any) -> Any:
    return t.call("LRASPPHead", ("cbr", t.conv(block.cbr)), ("scale", t.conv(block.scale)),
                  ("low_classifier", t.conv(block.low_classifier)), ("high_classifier", t.conv(block.high_classifier)))  # fmt: skip


KIND = BlockKind(
    name="lraspp",
    node=LRASPP,
    words={
        "lraspp": Word(OPTIONS, "Lite R-ASPP segmentation head on two endpoints (low, high)", ("out",), kernels="none")
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.cbr.cin, b.cbr.in_hw),
    output=lambda b: (b.classes, b.out_hw),
    steps=steps,
    torch=TorchPiece("lraspp.py.j2", ("LRASPPHead",), torch_call),
    predictions=predictions,
    class_layers=lambda b: (b.low_classifier.path, b.high_classifier.path),
)
