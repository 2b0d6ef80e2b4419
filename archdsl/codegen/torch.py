"""The PyTorch backend: a readable `nn.Module` tree mirroring stem, stages and head.

Python here decides every value (arguments, comments, which block classes are needed); the
templates in `backends/torch/` lay the text out. Generated code imports only torch.
"""

from __future__ import annotations

from typing import Sequence

from ..analysis.cost import Cost, layer_cost
from ..analysis.layers import ghost_module_layers, layers_of
from ..ir.nodes import (
    Block,
    Classifier,
    ConvBnAct,
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    GhostBottleneck,
    GhostModule,
    MobileAttention,
    MobileOneBlock,
    Network,
    Norm,
    Pool,
    ShuffleUnit,
    ShuffleV1Unit,
    SqueezeExcite,
    Stage,
    UniversalInvertedBottleneck,
)  # fmt: skip
from .base import Backend, Call, Header, block_comment, class_name, cost_note, environment, stage_comment

ACT = {
    "relu": "nn.ReLU(inplace=True)",
    "relu6": "nn.ReLU6(inplace=True)",
    "hard_swish": "nn.Hardswish(inplace=True)",
    "hard_sigmoid": "nn.Hardsigmoid()",
    "swish": "nn.SiLU(inplace=True)",
    "gelu": 'nn.GELU(approximate="none")',
    "gelu_tanh": 'nn.GELU(approximate="tanh")',
    "sigmoid": "nn.Sigmoid()",
    "identity": "nn.Identity()",
}

# Block classes in the order they are defined in a generated file, with their template.
_CLASS_TEMPLATES = {
    "conv": "conv_bn_act.py.j2",
    "se": "squeeze_excite.py.j2",
    "layer_scale": "layer_scale.py.j2",
    "ds": "depthwise_separable.py.j2",
    "uib": "uib.py.j2",
    "fused_ib": "fused_ib.py.j2",
    "mobileone": "mobileone.py.j2",
    "mqa": "mobile_attention.py.j2",
    "ghost": "ghost.py.j2",
    "shuffle_v2": "shuffle.py.j2",
    "shuffle_v1": "shuffle_v1.py.j2",
    "pool": "pool.py.j2",
    "classifier": "classifier.py.j2",
}


def conv_call(c: ConvBnAct) -> Call:
    args: list[tuple[str, str | Call]] = [("", str(c.cin)), ("", str(c.cout)), ("kernel", str(c.kernel))]
    if c.stride != 1:
        args.append(("stride", str(c.stride)))
    pad = c.padding
    if any(pad):
        args.append(("padding", str(pad[0]) if len(set(pad)) == 1 else str(pad)))
    if c.groups != 1:
        args.append(("groups", str(c.groups)))
    if c.bias:
        args.append(("bias", "True"))
    if c.norm is None:
        args.append(("norm", "False"))
    else:
        args.append(("eps", repr(c.norm.eps)))
        if c.norm.momentum != 0.1:
            args.append(("momentum", repr(c.norm.momentum)))
    if c.act != "identity":
        args.append(("act", ACT[c.act]))
    if c.residual:
        args.append(("residual", "True"))
    cost = layer_cost(c)
    return Call("ConvBnAct", tuple(args), cost_note(cost.params, cost.macs))


def se_call(se: SqueezeExcite) -> Call:
    args = (("", str(se.channels)), ("", str(se.reduced)), ("act", ACT[se.act]), ("gate", ACT[se.gate]))
    cost = layer_cost(se)
    return Call("SqueezeExcite", args, cost_note(cost.params, cost.macs))


Arg = tuple[str, "str | Call"]


def ghost_call(g: GhostModule) -> Call:
    cost = sum((layer_cost(layer) for layer in ghost_module_layers(g)), Cost())
    args: tuple[Arg, ...] = (("primary", conv_call(g.primary)), ("cheap", conv_call(g.cheap)), ("out", str(g.out)))
    return Call("GhostModule", args, cost_note(cost.params, cost.macs))


Part = tuple[str, ConvBnAct | SqueezeExcite | GhostModule | None]


def _parts(parts: Sequence[Part], tail: Sequence[Arg]) -> tuple[Arg, ...]:
    """Constructor arguments: the present sub-layers as nested calls, then plain `tail` values."""
    out: list[Arg] = []
    for key, part in parts:
        if isinstance(part, ConvBnAct):
            out.append((key, conv_call(part)))
        elif isinstance(part, SqueezeExcite):
            out.append((key, se_call(part)))
        elif isinstance(part, GhostModule):
            out.append((key, ghost_call(part)))
    return (*out, *tail)


def _residual_args(
    block: DepthwiseSeparable | UniversalInvertedBottleneck | FusedInvertedBottleneck | MobileAttention,
) -> list[Arg]:
    tail: list[Arg] = []
    if block.residual:
        tail.append(("residual", "True"))
        if block.drop_path:
            tail.append(("drop_path", repr(block.drop_path)))
    return tail


def block_call(block: Block) -> Call:
    if isinstance(block, ConvBnAct):
        return conv_call(block)
    if isinstance(block, DepthwiseSeparable):
        args = _parts([("dw", block.dw), ("se", block.se), ("pw", block.pw)], _residual_args(block))
        return Call("DepthwiseSeparable", args)
    if isinstance(block, UniversalInvertedBottleneck):
        scale: list[Arg] = [("layer_scale", repr(block.layer_scale))] if block.layer_scale is not None else []
        tail = scale + _residual_args(block)
        parts: list[Part] = [("dw_start", block.dw_start), ("expand", block.expand), ("dw_mid", block.dw_mid),
                             ("se", block.se), ("project", block.project), ("dw_end", block.dw_end)]  # fmt: skip
        return Call("UniversalInvertedBottleneck", _parts(parts, tail))
    if isinstance(block, FusedInvertedBottleneck):
        args = _parts([("expand", block.expand), ("se", block.se), ("project", block.project)], _residual_args(block))
        return Call("FusedInvertedBottleneck", args)
    if isinstance(block, MobileOneBlock):
        return _mobileone_call(block)
    if isinstance(block, MobileAttention):
        return _attention_call(block)
    if isinstance(block, GhostBottleneck):
        parts = [("ghost1", block.ghost1), ("ghost2", block.ghost2), ("dw", block.dw), ("se", block.se),
                 ("shortcut_dw", block.shortcut_dw), ("shortcut_pw", block.shortcut_pw)]  # fmt: skip
        drop: tuple[Arg, ...] = (("drop_path", repr(block.drop_path)),) if block.drop_path else ()
        return Call("GhostBottleneck", _parts(parts, drop))
    if isinstance(block, ShuffleV1Unit):
        args = _parts([("reduce", block.reduce), ("dw", block.dw), ("expand", block.expand)], ())
        args += (("groups", str(block.groups)),)
        if block.shortcut is not None:
            args += (("shortcut", pool_call(block.shortcut)),)
        if block.act != "identity":
            args += (("act", ACT[block.act]),)
        return Call("ShuffleV1Unit", args)
    if isinstance(block, ShuffleUnit):
        parts = [("pw1", block.pw1), ("dw", block.dw), ("pw2", block.pw2), ("down_dw", block.down_dw),
                 ("down_pw", block.down_pw)]  # fmt: skip
        return Call("ShuffleUnit", _parts(parts, ()))
    if isinstance(block, Pool):
        return pool_call(block)
    assert isinstance(block, Classifier)
    dropout: tuple[Arg, ...] = (("dropout", repr(block.dropout)),) if block.dropout else ()
    cost = layer_cost(block)
    return Call(
        "Classifier", (("", str(block.cin)), ("", str(block.classes)), *dropout), cost_note(cost.params, cost.macs)
    )


def _batch_norm(channels: int, norm: Norm) -> str:
    momentum = f", momentum={norm.momentum!r}" if norm.momentum != 0.1 else ""
    return f"nn.BatchNorm2d({channels}, eps={norm.eps!r}{momentum})"


def _attention_call(block: MobileAttention) -> Call:
    args: list[Arg] = [("norm", _batch_norm(block.channels, block.norm) if block.norm else "nn.Identity()")]
    args += _parts([("query", block.query), ("key", block.key), ("value", block.value), ("output", block.output)], ())
    args += [("heads", str(block.heads)), ("key_dim", str(block.key_dim)), ("value_dim", str(block.value_dim))]
    if block.kv_heads != 1:
        args.append(("kv_heads", str(block.kv_heads)))
    if block.query_pool is not None:
        args.append(("query_pool", f"nn.AvgPool2d({block.query_pool.kernel})"))
    if block.query_norm is not None:
        args.append(("query_norm", _batch_norm(block.channels, block.query_norm)))
    args += _parts([("key_down", block.key_down), ("value_down", block.value_down)], ())
    if block.layer_scale is not None:
        args.append(("layer_scale", repr(block.layer_scale)))
    return Call("MobileAttention", (*args, *_residual_args(block)))


def _mobileone_call(block: MobileOneBlock) -> Call:
    args: list[Arg] = [("", conv_call(c)) for c in block.branches]
    args += _parts([("conv_scale", block.scale)], ())
    if block.identity is not None:
        args.append(("identity", _batch_norm(block.first.cin, block.identity)))
    args += _parts([("se", block.se)], ())
    if block.act != "identity":
        args.append(("act", ACT[block.act]))
    return Call("MobileOneBlock", tuple(args))


# Blocks whose classes call `drop_path` on their residual branch.
_DROP_PATH_USERS = (DepthwiseSeparable, UniversalInvertedBottleneck, FusedInvertedBottleneck, MobileAttention,
                    GhostBottleneck)  # fmt: skip


def pool_call(block: Pool) -> Call:
    if block.is_global:
        return Call("GlobalPool", (("mode", f'"{block.mode}"'),))
    pad = block.padding
    args: tuple[Arg, ...] = (("mode", f'"{block.mode}"'), ("kernel", str(block.kernel)), ("stride", str(block.stride)),
                             ("padding", str(pad[0]) if len(set(pad)) == 1 else str(pad)))  # fmt: skip
    return Call("Pool", args + ((("include_pad", "True"),) if block.include_pad else ()))


def _classes_used(net: Network) -> list[str]:
    kinds: set[str] = set()
    layer_kinds: dict[type, str] = {ConvBnAct: "conv", SqueezeExcite: "se", Pool: "pool"}  # with classes of their own
    for b in net.blocks():
        kinds.add(b.kind)
        kinds |= {layer_kinds[type(layer)] for layer in layers_of(b) if type(layer) in layer_kinds}
        if isinstance(b, (UniversalInvertedBottleneck, MobileAttention)):  # their classes refer to it, used or not
            kinds.add("layer_scale")
    return [tpl for kind, tpl in _CLASS_TEMPLATES.items() if kind in kinds]


# The generated file's own class names, which the network's class must not take.
_RESERVED = frozenset(
    {"ConvBnAct", "SqueezeExcite", "DepthwiseSeparable", "UniversalInvertedBottleneck", "FusedInvertedBottleneck",
     "MobileOneBlock", "MobileAttention", "LayerScale", "GhostModule", "GhostBottleneck", "ShuffleUnit",
     "ShuffleV1Unit", "GlobalPool", "Pool", "Classifier", "Stage", "Any"}
)  # fmt: skip


class TorchBackend(Backend):
    name = "torch"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)

        def stage_ctx(stage: Stage) -> dict:
            blocks = [
                {"comment": block_comment(b, header.block_costs[b.path]), "call": block_call(b)} for b in stage.blocks
            ]
            return {"comment": stage_comment(stage, header.stage_costs[stage.path]), "blocks": blocks}

        template = environment(self.name).get_template("module.py.j2")
        return template.render(
            header=header,
            net_class=class_name(net.name, _RESERVED),
            class_templates=_classes_used(net),
            uses_drop_path=any(isinstance(b, _DROP_PATH_USERS) for b in net.blocks()),
            uses_shuffle=any(isinstance(b, (ShuffleUnit, ShuffleV1Unit)) for b in net.blocks()),
            stem=stage_ctx(net.stem),
            stages=[stage_ctx(s) for s in net.stages],
            head=stage_ctx(net.head),
        )
