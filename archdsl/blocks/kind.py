"""What a block kind declares, in one place: how it is written (its words and their options),
what it means (its resolved node, its elaboration into layers), and what each later stage
needs of it (functional steps, the PyTorch class, the deploy form, timm's weight names).

Adding a kind is one module in this folder, filling a `BlockKind`, plus one template piece per
backend (`backends/torch/<kind>.py.j2`; the step-based backends need one only for a new step).

A kind's module imports the step types inside its `steps` function: a compile for the PyTorch
backend, or `cost`, never creates them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from ..errors import ArchError

if TYPE_CHECKING:
    import numpy as np

    from ..codegen.calls import Call
    from ..codegen.steps import Step
    from ..ir.geometry import FeatureMap
    from ..ir.layers import Layer
    from ..ir.nodes import BlockNode, BlockSpec
    from .build import Builder

# What a statement must give, checked in this order (the message is in language/lower_statement.py).
NEEDS = ("out", "kernel", "kernels", "expansion", "heads", "mode")
ONE: frozenset[str | None] = frozenset({None})  # a block that takes one tensor


@dataclass(frozen=True)
class Word:
    """A block kind as written: the options it takes and what it means."""

    options: frozenset[str]
    summary: str
    needs: tuple[str, ...] = ()  # of NEEDS; `out` is waived for a depthwise (`dw`) block
    variant: str | None = None  # kept as the BlockSpec's variant (ib, extra_dw, mhsa, dsa, ...)
    # How `k` maps to kernels: "one" (k3); "uib" (k<start>/<mid>[/<end>], 0 = absent); "mid",
    # "start_mid", "start" (the UIB instantiations' compact forms); "none" (no kernel at all).
    kernels: str = "one"


Shape = tuple[int, tuple[int, int]]  # channels, (H, W)


@dataclass(frozen=True)
class TorchPiece:
    """The block's class in a generated PyTorch file and the call that builds it."""

    template: str  # in backends/torch/
    classes: tuple[str, ...]  # class names the template defines (a network's class avoids them)
    call: Callable[[Any, Any], Call]  # (block, the torch emitter) -> the constructor call
    helpers: tuple[str, ...] = ()  # helper pieces its class refers to, used or not (layer_scale)
    drop_path: bool = False  # its class calls `drop_path` on the residual branch
    shuffle: bool = False  # its class calls `channel_shuffle`


@dataclass(frozen=True)
class TimmPlace:
    """Where a block sits in a timm model: its module prefix and part (stem, stage or head)."""

    prefix: str
    part: str


@dataclass(frozen=True)
class BlockKind:
    """Everything the compiler knows of one block kind; `archdsl.blocks.KINDS` holds them all."""

    name: str  # the IR kind: the `kind` of its node and of its BlockSpecs
    node: type[BlockNode]
    words: Mapping[str, Word]
    build: Callable[[Builder, BlockSpec, str, FeatureMap], tuple[Any, FeatureMap]]
    layers: Callable[[Any], Iterator[Layer]]  # primitive layers, in execution and registration order
    input: Callable[[Any], Shape]
    output: Callable[[Any], Shape]
    steps: Callable[[Any], list[Step]]
    torch: TorchPiece
    # The deploy form beyond folding each conv's BatchNorm (which every kind gets): MobileOne
    # merges its branches into one conv (node and canonical weights, float64).
    deploy: Callable[[Any], Any] | None = None
    deploy_weights: Callable[[Any, dict[str, np.ndarray]], None] | None = None
    init_weights: Callable[[Any, dict[str, Any]], None] | None = None  # adjust random weights
    # Its layers' timm module names, per timm layout it has a place in ("efficientnet": timm's
    # efficientnet.py family; "byobnet": MobileOne): (block, place, checkpoint, out) adds our
    # module path -> timm's to `out`.
    timm: Mapping[str, Callable[[Any, TimmPlace, Mapping[str, Any], dict[str, str]], None]] = field(
        default_factory=dict
    )
    layer_scale_default: bool = False  # takes a stage's or network's `layer_scale` setting
    # Words of other kinds whose option builds this kind's nodes (an octave block: conv, ds, dsa
    # or ib with alpha), for a kind without words of its own.
    built_by: tuple[tuple[str, str], ...] = ()  # (word, option)
    # What the block takes as written: one tensor (None) and/or a pair of tensors, "octave" (a
    # map's high and low parts, archdsl/blocks/octave.py) or "tokens" (a map and its tokens,
    # archdsl/blocks/mobile_former.py).
    takes: Callable[[BlockSpec], frozenset[str | None]] = lambda b: ONE
    # Its input and output where either is a pair (shown as both parts), else None.
    pair_maps: Callable[[Any], tuple[FeatureMap, FeatureMap] | None] = lambda b: None
    flat_output: bool = False  # its output is a vector (shown as its length)
    # A dense-prediction head (SSDLite, LR-ASPP): it reads the network's feature endpoints, not
    # the block before it, and is the head's only block. Its named outputs and their shapes
    # (batch left out, PyTorch's layout), in the order the model returns them.
    predictions: Callable[[Any], tuple[tuple[str, tuple[int, ...]], ...]] | None = None
    class_layers: Callable[[Any], tuple[str, ...]] | None = None  # a dense head's layers sized by the classes


class CannotMerge(ArchError):
    """A block whose branches cannot merge into one conv: the network has no deploy form
    (`cost` reports that; `--deploy` fails with this error)."""
