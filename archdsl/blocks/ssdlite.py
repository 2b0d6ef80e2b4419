"""`ssdlite`: SSDLite's prediction layers (MobileNetV2 paper, section 6.2), a dense-prediction
head. On every feature endpoint, in order, two depthwise-separable predictions: k x k depthwise
conv + BN + act, then a biased 1x1 conv to anchors x 4 box offsets (`boxes`) and to anchors x
classes scores (`scores`). Each map's (anchors x columns, H, W) output is read as H x W x anchors
rows of its columns, and the maps' rows are concatenated: the model gives `bbox_regression`
(rows, 4) and `cls_logits` (rows, classes), torchvision's SSD head outputs. Anchors and box
decoding are not part of the network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import Concat, Layer
from ..ir.nodes import BlockNode, BlockSpec, ConvBnAct, Node
from .build import Builder
from .kind import BlockKind, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step

BOX_COLUMNS = 4  # box offsets per anchor (torchvision's BoxCoder: dx, dy, dw, dh)
OUTPUTS = ("bbox_regression", "cls_logits")


class Prediction(Node):
    """One map's prediction: k x k depthwise conv + BN + act, then a biased 1x1 conv to
    anchors x columns, read as (H x W x anchors) rows of `columns`."""

    source: str  # the endpoint it reads
    dw: ConvBnAct
    pw: ConvBnAct
    columns: int


class SSDLite(BlockNode):
    kind: Literal["ssdlite"] = "ssdlite"
    path: str
    anchors: int
    classes: int
    boxes: tuple[Prediction, ...]  # one per endpoint, in network order
    scores: tuple[Prediction, ...]

    @property
    def rows(self) -> int:
        """Anchors over all maps: the outputs' first dimension."""
        return sum(p.pw.out_hw[0] * p.pw.out_hw[1] for p in self.boxes) * self.anchors


OPTIONS = frozenset({"anchors", "k", "act", "norm", "eps"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[SSDLite, FeatureMap]:
    if b.anchors is None:
        raise ArchError("ssdlite needs the anchors per position", b.span, "give anchors=<n>, e.g. anchors=6")
    if not ctx.endpoints:
        raise ArchError("ssdlite predicts on the network's feature endpoints: it has none", b.span,
                        "mark the stages or blocks whose outputs it reads `out`")  # fmt: skip
    k, anchors = b.kernel[0] if b.kernel else 3, b.anchors

    def prediction(branch: str, i: int, columns: int) -> Prediction:
        e = ctx.endpoints[i]
        at = FeatureMap(e.channels, e.hw)
        dw = ctx.conv(b, f"{path}.{branch}.{i}.dw", at, e.channels, k, 1, e.channels, b.act)
        pw = ctx.conv(b, f"{path}.{branch}.{i}.pw", FeatureMap(e.channels, dw.out_hw), anchors * columns, 1, 1, 1,
                      None, bias=True, norm=False)  # fmt: skip
        return Prediction.make(source=e.name, dw=dw, pw=pw, columns=columns)

    n = len(ctx.endpoints)
    block = SSDLite.make(path=path, anchors=anchors, classes=ctx.classes,
                         boxes=tuple(prediction("boxes", i, BOX_COLUMNS) for i in range(n)),
                         scores=tuple(prediction("scores", i, ctx.classes) for i in range(n)))  # fmt: skip
    return block, FeatureMap(ctx.classes, (1, 1))


def predictions(block: SSDLite) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return (OUTPUTS[0], (block.rows, BOX_COLUMNS)), (OUTPUTS[1], (block.rows, block.classes))


def _branches(block: SSDLite) -> tuple[tuple[str, str, tuple[Prediction, ...], int], ...]:
    """(output name, module name, its predictions, their columns) of both branches."""
    return (OUTPUTS[0], "boxes", block.boxes, BOX_COLUMNS), (OUTPUTS[1], "scores", block.scores, block.classes)


def layers(block: SSDLite) -> Iterator[Layer]:
    for _, branch, preds, columns in _branches(block):
        for p in preds:
            yield p.dw
            yield p.pw
        yield Concat(f"{block.path}.{branch}", columns, (block.rows, 1))  # the maps' rows, one after another


def steps(block: SSDLite) -> list[Step]:
    from ..codegen.steps import Branch, ConcatRows, HeadOutput, TakeEndpoint, ToRows

    out: list[Step] = []
    for output, branch, preds, _ in _branches(block):
        parts = tuple(f"{branch}{i}" for i in range(len(preds)))
        for p, part in zip(preds, parts, strict=True):
            out += [TakeEndpoint(p.source, part), Branch(p.dw, part, part), Branch(p.pw, part, part),
                    ToRows(f"{p.pw.path}.rows", part, p.columns)]  # fmt: skip
        out += [ConcatRows(f"{block.path}.{branch}", parts), HeadOutput(output)]
    return out


def torch_call(block: SSDLite, t: Any) -> Any:
    def branch_call(branch: tuple[Prediction, ...]) -> Any:
        calls = [t.call("Prediction", ("", t.conv(p.dw)), ("", t.conv(p.pw)), ("columns", str(p.columns)),
                        comment=f"{p.pw.path.rsplit('.', 1)[0]}: on {p.source}, {t.cost_note([p.dw, p.pw])}")
                 for p in branch]  # fmt: skip
        return t.call("", *(("", c) for c in calls))

    return t.call("SSDLiteHead", ("boxes", branch_call(block.boxes)), ("scores", branch_call(block.scores)))


KIND = BlockKind(
    name="ssdlite",
    node=SSDLite,
    words={
        "ssdlite": Word(
            OPTIONS, "SSDLite's depthwise-separable box and class predictions on every endpoint", kernels="one"
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.boxes[0].dw.cin, b.boxes[0].dw.in_hw),
    output=lambda b: (b.classes, (1, 1)),
    steps=steps,
    torch=TorchPiece("ssdlite.py.j2", ("SSDLiteHead", "Prediction"), torch_call),
    predictions=predictions,
    class_layers=lambda b: tuple(p.pw.path for p in b.scores),
)
