"""The CoreML backend: a Python module that builds the network directly as a MIL program with
coremltools' Builder, from canonical weights. Not a trace of the PyTorch model: the generated
code is the CoreML definition. Padding is explicit (`pad_type="custom"`), BN epsilon explicit,
activations written as the same formulas as the other backends, op names are IR paths, and
each block ends in an `identity` op named by its path, so its output can be compared."""

from __future__ import annotations

from typing import Any, Callable

from ..ir.layers import InputNorm
from ..ir.network import Network
from ..ir.nodes import ConvBnAct, Pool, SqueezeExcite
from .base import Backend, Header, environment
from .calls import Call, Line, quoted
from .coreml_mf import MF_EMIT
from .endpoints import features
from .functional import attention_args, stage_contexts, uses
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


def _call(name: str, *args: tuple[str, str], target: str = "x") -> Line:
    return Line(Call(name, tuple(args), trailing_comma=False), target)


def conv_line(c: ConvBnAct, target: str = "x", source: str = "x") -> Line:
    args: list[tuple[str, str]] = [("", source), ("", "w"), ("", quoted(c.path))]
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


def _batch_norm(n: InputNorm, source: str, target: str) -> Line:
    return _call("batch_norm", ("", source), ("", "w"), ("", quoted(n.path)), ("", repr(n.norm.eps)), target=target)


# What a branch may hold: layer type -> its line, from `source` into `target`.
_BRANCHES: dict[type, Callable[[Any, str, str], Line]] = {
    ConvBnAct: lambda c, source, target: conv_line(c, target, source),
    Pool: lambda p, source, target: pool_line(p, source, target),
    InputNorm: _batch_norm,
}


def _concat(step: ConcatStep) -> list[Line]:
    lines = [_call("mb.concat", ("values", f"[{', '.join(step.sources)}]"), ("axis", "1"), ("name", quoted(step.path)))]
    if step.cut:
        lines.append(_slice("x", 0, step.channels, f"{step.path}.cut"))
    return lines


def _split(step: SplitStep) -> list[Line]:
    kept = _slice("x", 0, step.half, f"{step.path}.kept", target="kept")
    return [kept, _slice("x", step.half, step.half, f"{step.path}.rest")]


def _se(step: SqueezeExcite) -> list[Line]:
    args = (("", "x"), ("", "w"), ("", quoted(step.path)), ("act", quoted(step.act)), ("gate", quoted(step.gate)))
    return [_call("squeeze_excite", *args)]


def _dense(step: Dense) -> list[Line]:  # dropout is inert at inference
    name = f"{step.path}.fc"
    weight, bias = f'w["{name}.weight"]', f'w["{name}.bias"]'
    return [_call("mb.linear", ("x", "x"), ("weight", weight), ("bias", bias), ("name", quoted(name)))]


def attention_line(a: AttentionStep) -> Line:
    args = [("", "x"), ("", "w"), ("", quoted(a.path)), *attention_args(a)]
    if a.kv_down is not None:
        args.append(("kv_padding", str(a.kv_down.padding)))
    return _call("mobile_attention", *args)


# Every step type -> its lines.
EMIT: dict[type, Callable[[Any], list[Line]]] = {
    KeepShortcut: lambda step: [Line("x", "shortcut")],
    ConvBnAct: lambda step: [conv_line(step)],
    SqueezeExcite: _se,
    AttentionStep: lambda step: [attention_line(step)],
    LayerScaleStep: lambda step: [_call("layer_scale", ("", "x"), ("", "w"), ("", quoted(step.path)))],
    AddShortcut: lambda step: [
        _call("mb.add", ("x", step.shortcut), ("y", step.source), ("name", quoted(step.path)), target=step.source)
    ],  # fmt: skip
    Assign: lambda step: [Line(step.source, step.target)],
    Upsample2x: lambda step: [
        _call(
            "mb.upsample_nearest_neighbor",
            ("x", step.on),
            ("scale_factor_height", "2"),
            ("scale_factor_width", "2"),
            ("name", quoted(step.path)),
            target=step.on,
        )
    ],  # fmt: skip
    Branch: lambda step: [_BRANCHES[type(step.layer)](step.layer, step.source, step.target)],
    SumBranches: lambda step: [
        _call("sum_branches", ("", f"[{', '.join(step.sources)}]"), ("", quoted(step.path)), target=step.target)
    ],  # fmt: skip
    ActivationStep: lambda step: [
        _call("activation", ("", step.on), ("", quoted(step.act)), ("", quoted(step.path)), target=step.on)
    ],  # fmt: skip
    ConcatStep: _concat,
    SplitStep: _split,
    ShuffleStep: lambda step: [_call("channel_shuffle", ("", "x"), ("", str(step.groups)), ("", quoted(step.path)))],
    Pool: lambda step: [pool_line(step)],
    Flatten: lambda step: [
        _call("mb.reshape", ("x", "x"), ("shape", "[1, -1]"), ("name", quoted(f"{step.path}.flatten")))
    ],  # fmt: skip
    Dense: _dense,
    BlockOutput: lambda step: [
        _call("mb.identity", ("x", step.source), ("name", quoted(step.path)), target=step.source)
    ],
    TakeEndpoint: lambda step: [Line(f'features["{step.name}"]', step.target)],
    ToRows: lambda step: [
        _call("to_rows", ("", step.source), ("", str(step.columns)), ("", quoted(step.path)), target=step.source)
    ],  # fmt: skip
    ConcatRows: lambda step: [
        _call("mb.concat", ("values", f"[{', '.join(step.sources)}]"), ("axis", "1"), ("name", quoted(step.path)))
    ],  # fmt: skip
    GateStep: lambda step: [_call("mb.mul", ("x", "x"), ("y", step.factor), ("name", quoted(step.path)))],
    Resize: lambda step: [
        _call(
            "mb.resize_bilinear",
            ("x", "x"),
            ("target_size_height", str(step.hw[0])),
            ("target_size_width", str(step.hw[1])),
            ("sampling_mode", '"UNALIGN_CORNERS"'),
            ("name", quoted(step.path)),
        )
    ],  # half-pixel centres, as PyTorch's align_corners=False  # fmt: skip
    HeadOutput: lambda step: [
        _call("mb.identity", ("x", "x"), ("name", quoted(step.name)), target=f'outputs["{step.name}"]')
    ],  # fmt: skip
    **MF_EMIT,
}


def step_lines(step: Step) -> list[Line]:
    emit = EMIT.get(type(step))
    if emit is None:  # a new step type, not yet taught to this backend
        raise TypeError(f"the coreml backend has no emitter for {type(step).__name__} steps")
    return emit(step)


def _slice(source: str, start: int, size: int, name: str, target: str = "x") -> Line:
    """`size` channels from `start`."""
    args = (("x", source), ("begin", f"[0, {start}, 0, 0]"), ("size", f"[-1, {size}, -1, -1]"), ("name", quoted(name)))
    return _call("mb.slice_by_size", *args, target=target)


def pool_line(p: Pool, source: str = "x", target: str = "x") -> Line:
    name = ("name", quoted(f"{p.path}.pool"))
    op = "mb.reduce_mean" if p.mode == "avg" else "mb.reduce_max"
    if p.is_global:
        return _call(op, ("x", source), ("axes", "[2, 3]"), ("keep_dims", "True"), name, target=target)
    args = [("x", source), ("kernel_sizes", f"[{p.kernel}, {p.kernel}]"), ("strides", f"[{p.stride}, {p.stride}]"),
            ("pad_type", '"custom"'), ("pad", f"[{', '.join(map(str, p.padding))}]")]  # fmt: skip
    if p.mode == "avg":
        args.append(("exclude_padding_from_average", str(not p.include_pad)))
    return _call("mb.avg_pool" if p.mode == "avg" else "mb.max_pool", *args, name, target=target)


class CoreMLBackend(Backend):
    name = "coreml"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)

        return (
            environment(self.name)
            .get_template("module.py.j2")
            .render(
                header=header,
                stages=stage_contexts(net, header, step_lines),
                uses=uses(net),
                outputs=", ".join(f"`{name}`" for name, _ in net.outputs()),
                dense=net.dense_head is not None,
                input_shape=f"(1, {', '.join(map(str, net.input_shape))})",
                features=features(net),
                mean=repr(tuple(net.preprocess.mean)),
                std=repr(tuple(net.preprocess.std)),
            )
        )
