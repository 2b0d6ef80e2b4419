"""The ONNX backend: a Python module that builds the network's ONNX graph directly, node by node
with onnx's helper, from canonical weights. Not a trace of the PyTorch model: the generated code
is the ONNX definition. Padding is explicit, BatchNorm epsilons explicit, activations written as
the same formulas as the other backends, node and value names are IR paths, and each block ends
in an `Identity` named by its path, so its output can be compared."""

from __future__ import annotations

from typing import Any, Callable

from ..ir.layers import InputNorm
from ..ir.network import Network
from ..ir.nodes import ConvBnAct, Pool, SqueezeExcite
from .base import Backend, Header, environment
from .calls import Call, Line, quoted
from .endpoints import features
from .functional import attention_args, stage_contexts, uses
from .model_interface import dense_outputs
from .onnx_tokens import EMIT as TOKEN_EMIT
from .steps import (
    ActivationStep,
    AddShortcut,
    Assign,
    AttentionStep,
    BlockOutput,
    Branch,
    ConcatRows,
    ConcatStep,
    Dense,
    Flatten,
    GateStep,
    HeadOutput,
    KeepShortcut,
    LayerScaleStep,
    Resize,
    ShuffleStep,
    SplitStep,
    Step,
    SumBranches,
    TakeEndpoint,
    ToRows,
    Upsample2x,
)

OPSET = 18  # Resize takes `axes` from 18 on


def _call(name: str, *args: tuple[str, str], target: str = "x") -> Line:
    return Line(Call(name, tuple(args), trailing_comma=False), target)


def _op(op: str, inputs: str, path: str, *attributes: tuple[str, str], target: str = "x") -> Line:
    """`target = g.op("<op>", [inputs], "<path>", **attributes)`."""
    return _call("g.op", ("", quoted(op)), ("", f"[{inputs}]"), ("", quoted(path)), *attributes, target=target)


def conv_line(c: ConvBnAct, target: str = "x", source: str = "x") -> Line:
    args: list[tuple[str, str]] = [("", "g"), ("", source), ("", quoted(c.path))]
    if c.conv_stride != 1:
        args.append(("stride", str(c.conv_stride)))
    if any(c.padding):
        args.append(("padding", str(c.padding)))
    if c.groups != 1:
        args.append(("groups", str(c.groups)))
    if c.dilation != 1:
        args.append(("dilation", str(c.dilation)))
    if c.bias:
        args.append(("bias", "True"))
    if c.norm is not None:
        args.append(("eps", repr(c.norm.eps)))
    if c.act != "identity":
        args.append(("act", quoted(c.act)))
    if c.aa:
        args.append(("aa", "True"))
    return _call("conv_bn_act", *args, target=target)


def pool_line(p: Pool, source: str = "x", target: str = "x") -> Line:
    kind = "Average" if p.mode == "avg" else "Max"
    if p.is_global:
        return _op(f"Global{kind}Pool", source, f"{p.path}.pool", target=target)
    t, b, left, r = p.padding
    attributes = [("kernel_shape", f"[{p.kernel}, {p.kernel}]"), ("strides", f"[{p.stride}, {p.stride}]"),
                  ("pads", f"[{t}, {left}, {b}, {r}]")]  # fmt: skip
    if p.mode == "avg" and p.include_pad:
        attributes.append(("count_include_pad", "1"))
    return _op(f"{kind}Pool", source, f"{p.path}.pool", *attributes, target=target)


def _batch_norm(n: InputNorm, source: str, target: str) -> Line:
    return _call("batch_norm", ("", "g"), ("", source), ("", quoted(n.path)), ("", repr(n.norm.eps)), target=target)


# What a branch may hold: layer type -> its line, from `source` into `target`.
_BRANCHES: dict[type, Callable[[Any, str, str], Line]] = {
    ConvBnAct: lambda c, source, target: conv_line(c, target, source),
    Pool: lambda p, source, target: pool_line(p, source, target),
    InputNorm: _batch_norm,
}


def _channels(source: str, start: int, stop: int, name: str, target: str = "x") -> Line:
    """Channels start .. stop - 1 of `source`."""
    return _call("channels", ("", "g"), ("", source), ("", str(start)), ("", str(stop)), ("", quoted(name)),
                 target=target)  # fmt: skip


def _concat(step: ConcatStep) -> list[Line]:
    lines = [_op("Concat", ", ".join(step.sources), step.path, ("axis", "1"))]
    if step.cut:
        lines.append(_channels("x", 0, step.channels, f"{step.path}.cut"))
    return lines


def _split(step: SplitStep) -> list[Line]:
    kept = _channels("x", 0, step.half, f"{step.path}.kept", target="kept")
    return [kept, _channels("x", step.half, 2 * step.half, f"{step.path}.rest")]


def _dense(step: Dense) -> list[Line]:  # dropout is inert at inference
    name = f"{step.path}.fc"
    inputs = f'x, g.weight("{name}.weight"), g.weight("{name}.bias")'
    return [_op("Gemm", inputs, name, ("transB", "1"))]


def attention_line(a: AttentionStep) -> Line:
    args = [("", "g"), ("", "x"), ("", quoted(a.path)), *attention_args(a), ("query_hw", str(a.query_hw))]
    if a.kv_down is not None:
        args.append(("kv_padding", str(a.kv_down.padding)))
    return _call("mobile_attention", *args)


def _se(step: SqueezeExcite) -> list[Line]:
    return [_call("squeeze_excite", ("", "g"), ("", "x"), ("", quoted(step.path)), ("act", quoted(step.act)),
                  ("gate", quoted(step.gate)))]  # fmt: skip


def _resize(step: Resize) -> list[Line]:
    return [_call("resize", ("", "g"), ("", "x"), ("", str(step.hw)), ("", quoted(step.path)))]


# Every step type -> its lines.
EMIT: dict[type, Callable[[Any], list[Line]]] = {
    KeepShortcut: lambda step: [Line("x", "shortcut")],
    ConvBnAct: lambda step: [conv_line(step)],
    SqueezeExcite: _se,
    AttentionStep: lambda step: [attention_line(step)],
    LayerScaleStep: lambda step: [_op("Mul", f'x, g.weight("{step.path}.gamma", per_channel=True)', step.path)],
    AddShortcut: lambda step: [_op("Add", f"{step.shortcut}, {step.source}", step.path, target=step.source)],
    Assign: lambda step: [Line(step.source, step.target)],
    Upsample2x: lambda step: [_call("upsample2x", ("", "g"), ("", step.on), ("", quoted(step.path)), target=step.on)],
    Branch: lambda step: [_BRANCHES[type(step.layer)](step.layer, step.source, step.target)],
    SumBranches: lambda step: [
        _call(
            "sum_branches", ("", "g"), ("", f"[{', '.join(step.sources)}]"), ("", quoted(step.path)), target=step.target
        )
    ],  # fmt: skip
    ActivationStep: lambda step: [
        _call("activation", ("", "g"), ("", step.on), ("", quoted(step.act)), ("", quoted(step.path)), target=step.on)
    ],  # fmt: skip
    ConcatStep: _concat,
    SplitStep: _split,
    ShuffleStep: lambda step: [
        _call(
            "channel_shuffle",
            ("", "g"),
            ("", "x"),
            ("", str(step.groups)),
            ("", str((step.channels, *step.hw))),
            ("", quoted(step.path)),
        )
    ],  # fmt: skip
    Pool: lambda step: [pool_line(step)],
    Flatten: lambda step: [_op("Flatten", "x", f"{step.path}.flatten", ("axis", "1"))],
    Dense: _dense,
    BlockOutput: lambda step: [_op("Identity", step.source, step.path, target=step.source)],
    TakeEndpoint: lambda step: [Line(f'features["{step.name}"]', step.target)],
    ToRows: lambda step: [
        _call(
            "to_rows",
            ("", "g"),
            ("", step.source),
            ("", str(step.columns)),
            ("", quoted(step.path)),
            target=step.source,
        )
    ],  # fmt: skip
    ConcatRows: lambda step: [_op("Concat", ", ".join(step.sources), step.path, ("axis", "1"))],
    GateStep: lambda step: [_op("Mul", f"x, {step.factor}", step.path)],
    Resize: _resize,
    HeadOutput: lambda step: [_op("Identity", "x", step.name, target=f'outputs["{step.name}"]')],
    **TOKEN_EMIT,
}


def step_lines(step: Step) -> list[Line]:
    emit = EMIT.get(type(step))
    if emit is None:  # a new step type, not yet taught to this backend
        raise TypeError(f"the onnx backend has no emitter for {type(step).__name__} steps")
    return emit(step)


class OnnxBackend(Backend):
    name = "onnx"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)
        return (
            environment(self.name)
            .get_template("module.py.j2")
            .render(
                header=header,
                stages=stage_contexts(net, header, step_lines),
                opset=OPSET,
                uses=uses(net),
                input_shape=f"(1, {', '.join(map(str, net.input_shape))})",
                outputs=[(name, [1, *shape]) for name, shape in net.outputs()],
                dense=dense_outputs(net),
                features=features(net),
            )
        )
