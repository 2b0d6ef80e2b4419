"""The resolved network: stages of blocks, whose kinds are the block registry's
(`archdsl/blocks/`); what cost models and backends read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field

from ..blocks import KINDS
from .nodes import BlockNode, Metadata, Node, Preprocess

if TYPE_CHECKING:
    Block = BlockNode
else:  # validated and dumped as the node class its `kind` names
    Block = Annotated[Union[tuple(kind.node for kind in KINDS.values())], Field(discriminator="kind")]


class Stage(Node):
    name: str
    path: str
    blocks: tuple[Block, ...]


class Endpoint(Node):
    """A feature endpoint (`out` on a block or a stage): a block whose output the network also
    gives, as a backbone for detection or segmentation heads; named by its stage (the stage's
    last block) or `<stage>_<index>`, with its reduction: the product of the strides so far."""

    name: str
    path: str  # the block's
    channels: int
    hw: tuple[int, int]
    reduction: int


class Network(Node):
    """A fully resolved network."""

    name: str
    source: str  # the spec file, as given on the command line
    source_hash: str
    input_shape: tuple[int, int, int]  # C, H, W
    classes: int
    width: float
    depth: float
    stem: Stage
    stages: tuple[Stage, ...]
    head: Stage
    form: Literal["train", "deploy"] = "train"  # deploy: BatchNorm folded, branches merged (`deploy_form`)
    endpoints: tuple[Endpoint, ...] = ()  # in network order
    preprocess: Preprocess = Preprocess.model_construct()
    metadata: Metadata = Metadata.model_construct()  # each field None where the spec gives none

    def all_stages(self) -> tuple[Stage, ...]:
        return (self.stem, *self.stages, self.head)

    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for s in self.all_stages() for b in s.blocks)

    @property
    def dense_head(self) -> Block | None:
        """The head, where it is a dense-prediction one (it reads the endpoints); None for a
        classifier head."""
        last = self.head.blocks[-1]
        return last if is_dense(last) else None

    def outputs(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The model's named outputs and their shapes (batch left out, PyTorch layout)."""
        head = self.dense_head
        if head is None:
            return (("logits", (self.classes,)),)
        predictions = KINDS[head.kind].predictions
        assert predictions is not None
        return predictions(head)


def is_dense(block: BlockNode) -> bool:
    return KINDS[block.kind].predictions is not None
