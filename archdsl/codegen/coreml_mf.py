"""The CoreML backend's Mobile-Former steps: the map `x` (NCHW) and the tokens `tokens`
(1, count, dim) are two variables of the program; the bridge, the Former, the dynamic ReLU and
the merge are calls of helpers in `backends/coreml/mobile_former.py.j2`, which read widths
from their inputs' shapes and weights by the step's path."""

from __future__ import annotations

from typing import Any, Callable

from ..blocks.bridge import DynamicReLU, Former, ToFormer, ToMobile
from .calls import Call, Line, quoted
from .steps import InitTokens, MergeTokens


def _call(name: str, *args: tuple[str, str], target: str) -> Line:
    return Line(Call(name, tuple(args), trailing_comma=False), target)


def _init_tokens(step: InitTokens) -> list[Line]:
    # the learned (count, dim) tensor as the program's constant, with the batch of one image
    value = f'w["{step.path}.tokens"].reshape(1, {step.count}, {step.dim})'
    return [_call("mb.const", ("val", value), ("name", quoted(f"{step.path}.tokens.init")), target="tokens")]


def _bridge(step: ToFormer | ToMobile, helper: str, target: str) -> list[Line]:
    args = (("", "x"), ("", "tokens"), ("", "w"), ("", quoted(step.path)), ("heads", str(step.heads)))
    return [_call(helper, *args, target=target)]


def _merge(step: MergeTokens) -> list[Line]:
    args = [("", "x"), ("", "tokens"), ("", "w"), ("", quoted(step.path))]
    if step.norm is not None:  # absent in the deploy form: folded into the linear layer
        args.append(("eps", repr(step.norm.eps)))
    return [_call("merge_tokens", *args, target="x")]


# Mobile-Former's step types -> their lines (merged into coreml.EMIT).
MF_EMIT: dict[type, Callable[[Any], list[Line]]] = {
    InitTokens: _init_tokens,
    ToFormer: lambda step: _bridge(step, "to_former", "tokens"),
    Former: lambda step: [
        _call("former", ("", "tokens"), ("", "w"), ("", quoted(step.path)), ("heads", str(step.heads)), target="tokens")
    ],  # fmt: skip
    ToMobile: lambda step: _bridge(step, "to_mobile", "x"),
    DynamicReLU: lambda step: [
        _call("dynamic_relu", ("", "x"), ("", "tokens"), ("", "w"), ("", quoted(step.path)), target="x")
    ],  # fmt: skip
    MergeTokens: _merge,
}
