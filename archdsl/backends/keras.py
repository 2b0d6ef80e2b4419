"""The Keras 3 backend: a functional model, channels-last, written out layer by layer.

Every numerical convention is stated in the generated code, never left to a Keras default:
explicit `ZeroPadding2D` + `valid` convolutions (TF `same` pads differently at stride 2), the
BatchNorm epsilon and momentum, the activation formulas, depthwise convs as `DepthwiseConv2D`
(TF has no grouped conv on CPU). Layer names are IR paths, so weights load by name; each
block ends in an `Identity` named by the block's path, so its output can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cost import Cost
from ..ir import (
    Block,
    Classifier,
    ConvBnAct,
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    Network,
    Pool,
    SqueezeExcite,
    Stage,
    UniversalInvertedBottleneck,
)
from .base import Backend, Call, Header, UnsupportedError, environment
from .torch import block_comment, stage_comment

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


@dataclass(frozen=True)
class Line:
    """One statement of `build_model`: `target = value`."""

    value: Call | str
    target: str = "x"


def _q(text: str) -> str:
    return f'"{text}"'


def _layer(cls: str, name: str, *args: str, inputs: str = "x") -> Line:
    """`x = <cls>(*args, name="<name>")(inputs)`."""
    return Line(Call(cls, (*(("", a) for a in args), ("name", _q(name))), trailing_comma=False, applied_to=inputs))


def conv_line(c: ConvBnAct) -> Line:
    depthwise = c.groups == c.cin == c.cout and c.groups > 1
    args: list[tuple[str, str | Call]] = [("", "x"), ("", _q(c.path)), ("", str(c.cout)), ("", str(c.kernel))]
    if c.stride != 1:
        args.append(("stride", str(c.stride)))
    if any(c.padding):
        args.append(("padding", str(c.padding[0]) if len(set(c.padding)) == 1 else str(c.padding)))
    if depthwise:
        args.append(("depthwise", "True"))
    if c.bias:
        args.append(("bias", "True"))
    if c.norm is not None:
        args.append(("eps", repr(c.norm.eps)))
        if c.norm.momentum != 0.1:
            args.append(("momentum", repr(c.norm.momentum)))
    if c.act != "identity":
        args.append(("act", ACT[c.act]))
    return Line(Call("conv_bn_act", tuple(args), trailing_comma=False))


def se_line(se: SqueezeExcite) -> Line:
    args = (("", "x"), ("", _q(se.path)), ("", str(se.reduced)), ("act", ACT[se.act]), ("gate", ACT[se.gate]))
    return Line(Call("squeeze_excite", args, trailing_comma=False))


def _grouped(c: ConvBnAct) -> bool:
    return c.groups != 1 and not (c.groups == c.cin == c.cout)


def block_lines(block: Block, problems: list[str]) -> list[Line]:
    lines: list[Line] = []
    residual = getattr(block, "residual", False)
    if residual:
        lines.append(Line("x", "shortcut"))
    if isinstance(block, ConvBnAct):
        lines.append(conv_line(block))
    elif isinstance(block, (DepthwiseSeparable, UniversalInvertedBottleneck, FusedInvertedBottleneck)):
        lines += [se_line(p) if isinstance(p, SqueezeExcite) else conv_line(p) for p in _parts(block)]
        if isinstance(block, UniversalInvertedBottleneck) and block.layer_scale is not None:
            lines.append(_layer("LayerScale", f"{block.path}.layer_scale", repr(block.layer_scale)))
    elif isinstance(block, Pool):
        lines += _pool_lines(block, problems)
    else:
        assert isinstance(block, Classifier)
        lines.append(_layer("layers.Flatten", f"{block.path}.flatten"))
        if block.dropout:
            lines.append(_layer("layers.Dropout", f"{block.path}.dropout", repr(block.dropout)))
        lines.append(_layer("layers.Dense", f"{block.path}.fc", str(block.classes)))
    for conv in [block] + (_parts(block) if not isinstance(block, (Pool, Classifier, ConvBnAct)) else []):
        if isinstance(conv, ConvBnAct) and _grouped(conv):
            problems.append(f"{conv.path}: grouped convolution (groups={conv.groups}); TensorFlow has none on CPU")
    if residual:
        lines.append(_layer("layers.Add", f"{block.path}.add", inputs="[shortcut, x]"))
    lines.append(_layer("layers.Identity", block.path))
    return lines


def _parts(block: DepthwiseSeparable | UniversalInvertedBottleneck | FusedInvertedBottleneck) -> list:
    if isinstance(block, DepthwiseSeparable):
        parts: list = [block.dw, block.se, block.pw]
    elif isinstance(block, FusedInvertedBottleneck):
        parts = [block.expand, block.se, block.project]
    else:
        parts = [block.dw_start, block.expand, block.dw_mid, block.se, block.project, block.dw_end]
    return [p for p in parts if p is not None]


def _pool_lines(block: Pool, problems: list[str]) -> list[Line]:
    kind = "Average" if block.mode == "avg" else "Max"
    if block.is_global:
        return [_layer(f"layers.Global{kind}Pooling2D", f"{block.path}.pool", "keepdims=True")]
    lines = []
    if any(block.padding):
        if block.mode == "avg":
            problems.append(f"{block.path}: padded average pooling that excludes the padding")
        t, b, left, r = block.padding
        lines.append(_layer("PadConstant", f"{block.path}.pad", f"(({t}, {b}), ({left}, {r}))", 'value=float("-inf")'))
    return [*lines, _layer(f"layers.{kind}Pooling2D", f"{block.path}.pool", str(block.kernel), str(block.stride))]


def _uses(net: Network) -> dict[str, bool]:
    acts: set[str] = set()
    se = layer_scale = pad = False
    for b in net.blocks():
        for part in [b] + (
            _parts(b)
            if isinstance(b, (DepthwiseSeparable, UniversalInvertedBottleneck, FusedInvertedBottleneck))
            else []
        ):
            if isinstance(part, ConvBnAct):
                acts.add(part.act)
            if isinstance(part, SqueezeExcite):
                acts |= {part.act, part.gate}
                se = True
        layer_scale |= isinstance(b, UniversalInvertedBottleneck) and b.layer_scale is not None
        pad |= isinstance(b, Pool) and any(b.padding)
    return {"acts": sorted(a for a in acts if a in _DEFINED), "se": se, "layer_scale": layer_scale, "pad": pad}  # type: ignore[dict-item]


class KerasBackend(Backend):
    name = "keras"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)
        problems: list[str] = []

        def stage_ctx(stage: Stage) -> dict:
            blocks = [
                {"comment": block_comment(b, header.block_costs[b.path]), "lines": block_lines(b, problems)}
                for b in stage.blocks
            ]
            return {"comment": stage_comment(stage, header.stage_costs.get(stage.path, Cost())), "blocks": blocks}

        stages = [stage_ctx(s) for s in net.all_stages()]
        if problems:
            raise UnsupportedError(self.name, problems)
        c, h, w = net.input_shape
        return (
            environment(self.name)
            .get_template("module.py.j2")
            .render(header=header, uses=_uses(net), stages=stages, input_shape=f"({h}, {w}, {c})")
        )
