"""`classifier`: flatten -> [dropout] -> linear to the network's classes; a head's last block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, Linear
from ..ir.nodes import BlockNode, BlockSpec
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class Classifier(BlockNode):
    """flatten -> [dropout, inert in eval] -> Linear(cin, classes) with bias."""

    kind: Literal["classifier"] = "classifier"
    path: str
    cin: int
    classes: int
    dropout: float = 0.0


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[Classifier, FeatureMap]:
    if x.hw != (1, 1):
        raise ArchError(
            f"the classifier needs a 1x1 input, got {x.hw[0]}x{x.hw[1]}", b.span, "add 'pool avg' before it"
        )
    return Classifier.make(path=path, cin=x.c, classes=ctx.classes, dropout=b.dropout), FeatureMap(ctx.classes, (1, 1))


def layers(block: Classifier) -> Iterator[Layer]:
    yield Linear(block.path, block.cin, block.classes)


def steps(block: Classifier) -> list[Step]:
    from ..codegen.steps import BlockOutput, Dense, Flatten

    return [Flatten(block.path), Dense(block.path, block.classes, block.dropout), BlockOutput(block.path)]


def torch_call(block: Classifier, t: Any) -> Any:
    return t.call("Classifier", ("", str(block.cin)), ("", str(block.classes)),
                  ("dropout", repr(block.dropout) if block.dropout else None), comment=t.cost_note(layers(block)))  # fmt: skip


@dataclass(frozen=True)
class _HeadName:
    """timm's name for the classifier's linear layer (a class, not a closure made at import)."""

    name: str

    def __call__(self, block: Classifier, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
        if place.part == "head":
            out[f"{block.path}.fc"] = self.name


KIND = BlockKind(
    name="classifier",
    node=Classifier,
    words={"classifier": Word(frozenset({"dropout"}), "flatten -> dropout -> linear to the classes")},
    build=build,
    layers=layers,
    input=lambda b: (b.cin, (1, 1)),
    output=lambda b: (b.classes, (1, 1)),
    steps=steps,
    torch=TorchPiece("classifier.py.j2", ("Classifier",), torch_call),
    timm={
        "efficientnet": _HeadName("classifier"),
        "byobnet": _HeadName("head.fc"),
        "mobile_former": _HeadName("classifier.classifier.1"),
    },
    flat_output=True,
)
