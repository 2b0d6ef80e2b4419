"""What the step-based backends (Keras, CoreML) read of a block: its steps (each kind says them,
`steps` in `archdsl/blocks/`), the convs, SEs and activations among them, and the arguments of
the attention helper every such backend defines."""

from __future__ import annotations

from typing import Any, Callable

from ..blocks import kind_of
from ..ir.network import Block, Network, Stage
from ..ir.nodes import ConvBnAct, SqueezeExcite
from .base import Header, block_comment, stage_comment
from .calls import Line
from .endpoints import features, marks
from .steps import (
    ActivationStep,
    AttentionStep,
    Branch,
    ConcatStep,
    InitTokens,
    Resize,
    ShuffleStep,
    SplitStep,
    Step,
    SumBranches,
    ToRows,
    Upsample2x,
)


def steps(block: Block) -> list[Step]:
    return kind_of(block).steps(block)


def convs(block: Block) -> list[ConvBnAct]:
    found = (s.layer if isinstance(s, Branch) else s for s in steps(block))
    return [s for s in found if isinstance(s, ConvBnAct)]


def ses(block: Block) -> list[SqueezeExcite]:
    return [s for s in steps(block) if isinstance(s, SqueezeExcite)]


def activations(block: Block) -> set[str]:
    """Every activation a block applies: in its convs, its SE, or on its own."""
    acts = {c.act for c in convs(block)} | {a for se in ses(block) for a in (se.act, se.gate)}
    return acts | {s.act for s in steps(block) if isinstance(s, ActivationStep)}


def attention_args(a: AttentionStep) -> list[tuple[str, str]]:
    """The keyword arguments every backend's attention helper takes, as generated text."""
    args = [("heads", str(a.heads)), ("key_dim", str(a.key_dim)), ("value_dim", str(a.value_dim))]
    if a.kv_heads != 1:
        args.append(("kv_heads", str(a.kv_heads)))
    if a.norm is not None:
        args.append(("eps", repr(a.norm.eps)))
    if a.kv_down is not None:
        args.append(("kv_stride", str(a.kv_down.stride)))
        if a.kv_down.bias:  # the deploy form: its BatchNorm folded into the conv
            args.append(("kv_bias", "True"))
    if a.query_stride is not None:
        args.append(("query_stride", str(a.query_stride)))
    return args


def uses(net: Network) -> dict[str, bool]:
    """Which of the helpers a graph-building backend (CoreML, ONNX) defines the network needs."""
    all_steps = [s for b in net.blocks() for s in steps(b)]
    return {
        "branches": any(isinstance(s, SumBranches) for s in all_steps),
        "attention": any(isinstance(s, AttentionStep) for s in all_steps),
        "shuffle": any(isinstance(s, ShuffleStep) for s in all_steps),
        "slice": any(isinstance(s, SplitStep) or (isinstance(s, ConcatStep) and s.cut) for s in all_steps),
        "rows": any(isinstance(s, ToRows) for s in all_steps),
        "resize": any(isinstance(s, Resize) for s in all_steps),
        "upsample": any(isinstance(s, Upsample2x) for s in all_steps),
        "blur": any(c.aa for b in net.blocks() for c in convs(b)),
        "dilation": any(c.dilation != 1 for b in net.blocks() for c in convs(b)),
        "tokens": any(isinstance(s, InitTokens) for s in all_steps),  # Mobile-Former's helpers
    }


def stage_contexts(net: Network, header: Header, step_lines: Callable[[Step], list[Line]],
                   more: Callable[[Block], dict[str, Any]] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """What a step-based backend's template lays out: each stage's comment, and each block's
    comment, lines (its steps', through `step_lines`), endpoint marks and what `more` adds."""
    found = features(net)

    def stage_ctx(stage: Stage) -> dict[str, Any]:
        blocks = [{"comment": block_comment(b, header.block_costs[b.path]),
                   "lines": [line for s in steps(b) for line in step_lines(s)], **marks(found, b.path),
                   **(more(b) if more else {})}
                  for b in stage.blocks]  # fmt: skip
        return {"comment": stage_comment(stage, header.stage_costs[stage.path]), "blocks": blocks}

    return [stage_ctx(s) for s in net.all_stages()]
