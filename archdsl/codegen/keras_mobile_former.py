"""The Keras backend's Mobile-Former steps: the learned tokens, the two-way bridge, the Former,
the dynamic ReLU and the merge before the classifier, each one call of a helper the generated
module defines (`backends/keras/mobile_former.py.j2`). The map is `x` (NHWC), the tokens
`tokens` (batch, count, dim); channel counts and sizes come from the tensors' shapes."""

from __future__ import annotations

from typing import Any, Callable

from ..blocks.bridge import DynamicReLU, Former, ToFormer, ToMobile
from .calls import Call, Line, quoted
from .steps import InitTokens, MergeTokens

Emitter = Callable[[Any, list[str]], list[Line]]
HELPER_ACTS = ("gelu", "hard_sigmoid", "hard_swish")  # what the helpers apply, so the module defines them


def emitters(layer_name: Callable[[str], str]) -> dict[type, Emitter]:
    """Step type -> its lines; `layer_name`: the backend's layer name of an IR path."""

    def helper(function: str, path: str, inputs: tuple[str, ...], target: str, *more: tuple[str, str]) -> list[Line]:
        args = (*(("", i) for i in inputs), ("", quoted(layer_name(path))), *more)
        return [Line(Call(function, args, trailing_comma=False), target)]

    def tokens(step: InitTokens, problems: list[str]) -> list[Line]:
        name = ("name", quoted(layer_name(f"{step.path}.init")))  # the block's own name is its map's
        call = Call("Tokens", (("", str(step.count)), ("", str(step.dim)), name), trailing_comma=False, applied_to="x")
        return [Line(call, "tokens")]

    def merge(step: MergeTokens, problems: list[str]) -> list[Line]:
        norm: list[tuple[str, str]] = []
        if step.norm is not None:
            norm.append(("eps", repr(step.norm.eps)))
            if step.norm.momentum != 0.1:
                norm.append(("momentum", repr(step.norm.momentum)))
        return helper("merge_tokens", step.path, ("x", "tokens"), "x", ("", str(step.out)), *norm)

    def heads(function: str, target: str, *inputs: str) -> Emitter:
        return lambda s, problems: helper(function, s.path, inputs, target, ("heads", str(s.heads)))

    def dynamic_relu(step: DynamicReLU, problems: list[str]) -> list[Line]:
        return helper("dynamic_relu", step.path, ("x", "tokens"), "x", ("reduced", str(step.reduced)))

    return {
        InitTokens: tokens,
        ToFormer: heads("to_former", "tokens", "x", "tokens"),
        Former: heads("former", "tokens", "tokens"),
        ToMobile: heads("to_mobile", "x", "x", "tokens"),
        DynamicReLU: dynamic_relu,
        MergeTokens: merge,
    }
