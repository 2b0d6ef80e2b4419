"""What the step-based backends (Keras, CoreML) read of a block: its steps (each kind says them,
`steps` in `archdsl/blocks/`), the convs, SEs and activations among them, and the arguments of
the attention helper every such backend defines."""

from __future__ import annotations

from ..blocks import kind_of
from ..ir.network import Block
from ..ir.nodes import ConvBnAct, SqueezeExcite
from .steps import ActivationStep, AttentionStep, Branch, Step


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
