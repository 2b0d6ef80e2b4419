"""The ONNX backend's lines for Mobile-Former's steps: the map `x` (NCHW) and the tokens `tokens`
(N, count, dim) go through the helpers of `backends/onnx/mobile_former.py.j2`, which read the
widths from the weights' shapes, as `conv_bn_act` does."""

from __future__ import annotations

from typing import Any, Callable

from ..blocks.bridge import DynamicReLU, Former, ToFormer, ToMobile
from .calls import Call, Line, quoted
from .steps import InitTokens, MergeTokens


def _helper(name: str, inputs: str, path: str, *keywords: tuple[str, str], target: str) -> Line:
    """`target = name(g, <inputs>, "<path>", **keywords)`."""
    args = [("", "g"), *(("", i) for i in inputs.split(", ")), ("", quoted(path)), *keywords]
    return Line(Call(name, tuple(args), trailing_comma=False), target)


def _merge(step: MergeTokens) -> list[Line]:
    eps = [("eps", repr(step.norm.eps))] if step.norm is not None else []  # none in the deploy form: folded
    return [_helper("merge_tokens", "x, tokens", step.path, *eps, target="x")]


# Mobile-Former's step types -> their lines.
EMIT: dict[type, Callable[[Any], list[Line]]] = {
    InitTokens: lambda step: [_helper("init_tokens", "x", step.path, target="tokens")],
    ToFormer: lambda step: [_helper("to_former", "x, tokens", step.path, ("heads", str(step.heads)), target="tokens")],
    Former: lambda step: [_helper("former", "tokens", step.path, ("heads", str(step.heads)), target="tokens")],
    ToMobile: lambda step: [
        _helper("to_mobile", "x, tokens", step.path, ("heads", str(step.heads)), ("hw", str(step.hw)), target="x")
    ],  # fmt: skip
    DynamicReLU: lambda step: [_helper("dynamic_relu", "x, tokens", step.path, target="x")],
    MergeTokens: _merge,
}
