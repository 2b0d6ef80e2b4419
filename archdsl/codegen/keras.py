"""The Keras 3 backend: a functional model, channels-last, written out layer by layer.

Every numerical convention is stated in the generated code, never left to a Keras default:
explicit `ZeroPadding2D` + `valid` convolutions (TF `same` pads differently at stride 2), the
BatchNorm epsilon and momentum, the activation formulas, depthwise convs as `DepthwiseConv2D`
and other grouped convs as `Conv2D(groups=g)`. Layer names are IR paths (`-` for `.`: `layer_name`),
so weights load by name; each block ends in an `Identity` named by the block's path, so its
output can be compared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..ir.layers import InputNorm
from ..ir.network import Network
from ..ir.nodes import ConvBnAct, Pool, SqueezeExcite
from .base import Backend, Header, UnsupportedError, environment
from .calls import Call, Line, literal_tuple, quoted
from .endpoints import features
from .functional import activations, attention_args, convs, ses, stage_contexts, steps
from .keras_mobile_former import HELPER_ACTS, emitters
from .model_interface import dense_outputs, head_split
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
    InitTokens,
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

# Activation name -> the function the generated module defines or takes from keras.ops.
ACT = {
    "relu": "ops.relu",
    "relu6": "ops.relu6",
    "hard_swish": "hard_swish",
    "hard_sigmoid": "hard_sigmoid",
    "swish": "ops.silu",
    "gelu": "gelu",
    "gelu_tanh": "gelu_tanh",
    "sigmoid": "ops.sigmoid",
    "identity": "keras.activations.linear",
}
_DEFINED = ("hard_swish", "hard_sigmoid", "gelu", "gelu_tanh")


def layer_name(path: str) -> str:
    """A Keras layer's name: its IR path with `-` for `.` (Keras' torch backend registers each
    variable as a torch parameter named by its layer, and torch takes no dots in those)."""
    return path.replace(".", "-")


def _layer(cls: str, path: str, *args: str, inputs: str = "x", target: str = "x") -> Line:
    """`target = <cls>(*args, name="<the layer name of path>")(inputs)`."""
    name = ("name", quoted(layer_name(path)))
    return Line(Call(cls, (*(("", a) for a in args), name), trailing_comma=False, applied_to=inputs), target)


def conv_line(c: ConvBnAct, target: str = "x", source: str = "x") -> Line:
    depthwise = c.groups == c.cin == c.cout and c.groups > 1
    name = quoted(layer_name(c.path))
    args: list[tuple[str, str | Call]] = [("", source), ("", name), ("", str(c.cout)), ("", str(c.kernel))]
    if c.conv_stride != 1:
        args.append(("stride", str(c.conv_stride)))
    if any(c.padding):
        args.append(("padding", str(c.padding[0]) if len(set(c.padding)) == 1 else str(c.padding)))
    if depthwise:
        args.append(("depthwise", "True"))
    elif c.groups != 1:
        args.append(("groups", str(c.groups)))
    if c.dilation != 1:
        args.append(("dilation", str(c.dilation)))
    if c.bias:
        args.append(("bias", "True"))
    if c.norm is not None:
        args.append(("eps", repr(c.norm.eps)))
        if c.norm.momentum != 0.1:
            args.append(("momentum", repr(c.norm.momentum)))
    if c.act != "identity":
        args.append(("act", ACT[c.act]))
    if c.aa:
        args.append(("aa", "True"))
    return Line(Call("conv_bn_act", tuple(args), trailing_comma=False), target)


def se_line(se: SqueezeExcite) -> Line:
    name = quoted(layer_name(se.path))
    args = (("", "x"), ("", name), ("", str(se.reduced)), ("act", ACT[se.act]), ("gate", ACT[se.gate]))
    return Line(Call("squeeze_excite", args, trailing_comma=False))


def attention_line(a: AttentionStep) -> Line:
    args: list[tuple[str, str | Call]] = [("", "x"), ("", quoted(layer_name(a.path))), ("out", str(a.out))]
    args += attention_args(a)
    if a.norm is not None and a.norm.momentum != 0.1:
        args.append(("momentum", repr(a.norm.momentum)))
    if a.kv_down is not None:
        pad = a.kv_down.padding
        args += [("kv_kernel", str(a.kv_down.kernel)), ("kv_padding", str(pad[0]) if len(set(pad)) == 1 else str(pad))]
    return Line(Call("mobile_attention", tuple(args), trailing_comma=False))


def _batch_norm(n: InputNorm, source: str, target: str) -> list[Line]:
    bn = _layer("BatchNorm", n.path, f"epsilon={n.norm.eps!r}", f"momentum={1 - n.norm.momentum!r}",
                inputs=source)  # fmt: skip
    return [replace(bn, target=target)]


# What a branch may hold: layer type -> its lines, from `source` into `target`.
_BRANCHES: dict[type, Callable[[Any, str, str, list[str]], list[Line]]] = {
    ConvBnAct: lambda c, source, target, problems: [conv_line(c, target, source)],
    Pool: lambda p, source, target, problems: _pool_lines(p, problems, source, target),
    InputNorm: lambda n, source, target, problems: _batch_norm(n, source, target),
}


def _branch(step: Branch, problems: list[str]) -> list[Line]:
    return _BRANCHES[type(step.layer)](step.layer, step.source, step.target, problems)


def _concat(step: ConcatStep, problems: list[str]) -> list[Line]:
    lines = [_layer("layers.Concatenate", step.path, inputs=f"[{', '.join(step.sources)}]")]
    if step.cut:
        lines.append(_layer("ChannelSlice", f"{step.path}.cut", "0", str(step.channels)))
    return lines


def _split(step: SplitStep, problems: list[str]) -> list[Line]:
    h = str(step.half)
    kept = replace(_layer("ChannelSlice", f"{step.path}.kept", "0", h), target="kept")
    return [kept, _layer("ChannelSlice", f"{step.path}.rest", h, str(2 * step.half))]


def _dense(step: Dense, problems: list[str]) -> list[Line]:
    drop = [_layer("layers.Dropout", f"{step.path}.dropout", repr(step.dropout))] if step.dropout else []
    return [*drop, _layer("layers.Dense", f"{step.path}.fc", str(step.classes))]


def _add_shortcut(step: AddShortcut) -> list[Line]:
    """input + branch; with stochastic depth, the branch through a DropPath layer first."""
    name = step.path.removesuffix(".add") + ".drop_path"
    drop = [_layer("DropPath", name, repr(step.drop_path), inputs=step.source, target=step.source)]
    add = _layer("layers.Add", step.path, inputs=f"[{step.shortcut}, {step.source}]", target=step.source)
    return [*(drop if step.drop_path else []), add]


# Every step type -> its lines (`problems` collects what Keras cannot express).
EMIT: dict[type, Callable[[Any, list[str]], list[Line]]] = {
    KeepShortcut: lambda step, problems: [Line("x", "shortcut")],
    ConvBnAct: lambda step, problems: [conv_line(step)],
    SqueezeExcite: lambda step, problems: [se_line(step)],
    AttentionStep: lambda step, problems: [attention_line(step)],
    LayerScaleStep: lambda step, problems: [_layer("LayerScale", step.path, repr(step.init))],
    AddShortcut: lambda step, problems: _add_shortcut(step),
    Branch: _branch,
    SumBranches: lambda step, problems: [
        _layer("layers.Add", step.path, inputs=f"[{', '.join(step.sources)}]", target=step.target)
    ],  # fmt: skip
    ActivationStep: lambda step, problems: [
        _layer("layers.Activation", step.path, ACT[step.act], inputs=step.on, target=step.on)
    ],  # fmt: skip
    Assign: lambda step, problems: [Line(step.source, step.target)],
    Upsample2x: lambda step, problems: [
        _layer("layers.UpSampling2D", step.path, "2", 'interpolation="nearest"', inputs=step.on, target=step.on)
    ],  # fmt: skip
    ConcatStep: _concat,
    SplitStep: _split,
    ShuffleStep: lambda step, problems: [_layer("ChannelShuffle", step.path, str(step.groups))],
    Pool: lambda step, problems: _pool_lines(step, problems),
    Flatten: lambda step, problems: [_layer("layers.Flatten", f"{step.path}.flatten")],
    Dense: _dense,
    BlockOutput: lambda step, problems: [_layer("layers.Identity", step.path, inputs=step.source, target=step.source)],
    TakeEndpoint: lambda step, problems: [Line(f'features["{step.name}"]', step.target)],
    ToRows: lambda step, problems: [
        replace(_layer("layers.Reshape", step.path, f"(-1, {step.columns})", inputs=step.source), target=step.source)
    ],  # NHWC already holds each position's anchors x columns in (H, W, anchor, column) order
    ConcatRows: lambda step, problems: [
        _layer("layers.Concatenate", step.path, "axis=1", inputs=f"[{', '.join(step.sources)}]")
    ],  # fmt: skip
    GateStep: lambda step, problems: [_layer("layers.Multiply", step.path, inputs=f"[x, {step.factor}]")],
    Resize: lambda step, problems: [
        _layer("layers.Resizing", step.path, *map(str, step.hw), 'interpolation="bilinear"')
    ],  # half-pixel centres, as PyTorch's align_corners=False  # fmt: skip
    HeadOutput: lambda step, problems: [
        Line(
            Call("layers.Identity", (("name", quoted(step.name)),), trailing_comma=False, applied_to="x"),
            f'outputs["{step.name}"]',
        )
    ],  # fmt: skip
    **emitters(layer_name),  # Mobile-Former's tokens and bridge
}


def step_lines(step: Step, problems: list[str]) -> list[Line]:
    emit = EMIT.get(type(step))
    if emit is None:  # a new step type, not yet taught to this backend
        raise TypeError(f"the keras backend has no emitter for {type(step).__name__} steps")
    return emit(step, problems)


def _pool_lines(block: Pool, problems: list[str], source: str = "x", target: str = "x") -> list[Line]:
    kind = "Average" if block.mode == "avg" else "Max"
    if block.is_global:
        pool = _layer(f"layers.Global{kind}Pooling2D", f"{block.path}.pool", "keepdims=True", inputs=source)
        return [replace(pool, target=target)]
    lines = []
    if any(block.padding):
        if block.mode == "avg" and not block.include_pad:
            problems.append(f"{block.path}: padded average pooling that excludes the padding")
        t, b, left, r = block.padding
        fill = "0.0" if block.mode == "avg" else 'float("-inf")'
        lines.append(_layer("PadConstant", f"{block.path}.pad", f"(({t}, {b}), ({left}, {r}))", f"value={fill}",
                            inputs=source))  # fmt: skip
        source = target
    pool = _layer(f"layers.{kind}Pooling2D", f"{block.path}.pool", str(block.kernel), str(block.stride), inputs=source)
    return [replace(line, target=target) for line in (*lines, pool)]


def _uses(net: Network) -> dict:
    all_steps = [s for b in net.blocks() for s in steps(b)]
    acts: set[str] = set()
    for b in net.blocks():
        acts |= activations(b)
    tokens = any(isinstance(s, InitTokens) for s in all_steps)
    acts |= set(HELPER_ACTS) if tokens else set()
    return {
        "acts": sorted(a for a in acts if a in _DEFINED),
        "se": any(ses(b) for b in net.blocks()),
        "blur": any(c.aa for b in net.blocks() for c in convs(b)),
        "dilation": any(c.dilation != 1 for b in net.blocks() for c in convs(b)),
        "layer_scale": any(getattr(b, "layer_scale", None) is not None for b in net.blocks()),
        "pad": any(isinstance(p, Pool) and any(p.padding) for p in (getattr(s, "layer", s) for s in all_steps)),
        "attention": any(isinstance(s, AttentionStep) for s in all_steps),
        "slice": any(isinstance(s, SplitStep) or (isinstance(s, ConcatStep) and s.cut) for s in all_steps),
        "shuffle": any(isinstance(s, ShuffleStep) for s in all_steps),
        "drop_path": any(isinstance(s, AddShortcut) and s.drop_path for s in all_steps),
        "tokens": tokens,
    }


class KerasBackend(Backend):
    name = "keras"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)
        problems: list[str] = []

        found = features(net)
        dense = dense_outputs(net)
        top_blocks = () if dense else net.head.blocks[head_split(net).pool :]  # include_top=False returns before them

        stages = stage_contexts(net, header, lambda s: step_lines(s, problems),
                                lambda b: {"top": bool(top_blocks) and b is top_blocks[0]})  # fmt: skip
        if problems:
            raise UnsupportedError(self.name, problems)
        c, h, w = net.input_shape
        return (
            environment(self.name)
            .get_template("module.py.j2")
            .render(
                header=header,
                uses=_uses(net),
                stages=stages,
                input_shape=f"({h}, {w}, {c})",
                features=found,
                dense={"returns": dense} if dense else None,
                top_pruned=literal_tuple("TOP_PRUNED", [f"{b.path}." for b in top_blocks]),
            )  # fmt: skip
        )
