"""The PyTorch backend: a readable `nn.Module` tree mirroring stem, stages and head.

Python here decides every value (arguments, comments, which block classes are needed); the
templates in `backends/torch/` lay the text out. Each block kind builds its own constructor call
(`TorchPiece.call` in `archdsl/blocks/`) from the pieces `TorchEmitter` offers: convs, SEs,
pools, activations and norms are spelled here once. Generated code imports only torch.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..analysis.cost import Cost, layer_cost
from ..blocks import KINDS, kind_of
from ..ir.layers import Layer
from ..ir.network import Block, Network, Stage
from ..ir.nodes import Act, ConvBnAct, Norm, Pool, SqueezeExcite
from .base import Backend, Header, block_comment, class_name, cost_note, environment, stage_comment
from .calls import Arg, Call
from .endpoints import features
from .model_interface import dense_outputs, head_split, pretrained_cfg, sequence_call

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

_OWN_CLASSES = ("LayerScale", "Stage", "Any")  # besides the pieces' classes


def _padding(pad: tuple[int, int, int, int]) -> str:
    return str(pad[0]) if len(set(pad)) == 1 else str(pad)


class TorchEmitter:
    """The constructor calls of PyTorch layers, for block kinds to compose."""

    def __init__(self, deploy: bool = False) -> None:
        self.deploy = deploy  # the deploy form's convs are ConvAct: no BatchNorm left to test for

    def conv(self, c: ConvBnAct | None) -> Call | None:
        if c is None:
            return None
        args: list[Arg] = [("", str(c.cin)), ("", str(c.cout)), ("kernel", str(c.kernel))]
        if c.conv_stride != 1:
            args.append(("stride", str(c.conv_stride)))
        if any(c.padding):
            args.append(("padding", _padding(c.padding)))
        if c.groups != 1:
            args.append(("groups", str(c.groups)))
        if c.dilation != 1:
            args.append(("dilation", str(c.dilation)))
        if self.deploy:
            assert c.norm is None, f"{c.path}: the deploy form folds every BatchNorm"
            if not c.bias:
                args.append(("bias", "False"))
        else:
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
        if c.aa:
            args.append(("aa", "True"))
        if c.residual:
            args.append(("residual", "True"))
        return Call("ConvAct" if self.deploy else "ConvBnAct", tuple(args), self.cost_note([c]))

    def se(self, se: SqueezeExcite | None) -> Call | None:
        if se is None:
            return None
        args = (("", str(se.channels)), ("", str(se.reduced)), ("act", ACT[se.act]), ("gate", ACT[se.gate]))
        return Call("SqueezeExcite", args, self.cost_note([se]))

    def pool(self, p: Pool) -> Call:
        if p.is_global:  # of one tensor, or of an octave pair (both parts, concatenated)
            return Call("OctavePool" if p.low else "GlobalPool", (("mode", f'"{p.mode}"'),))
        args: tuple[Arg, ...] = (("mode", f'"{p.mode}"'), ("kernel", str(p.kernel)), ("stride", str(p.stride)),
                                 ("padding", _padding(p.padding)))  # fmt: skip
        return Call("Pool", args + ((("include_pad", "True"),) if p.include_pad else ()))

    def act(self, act: Act) -> str:
        return ACT[act]

    def batch_norm(self, channels: int, norm: Norm) -> str:
        momentum = f", momentum={norm.momentum!r}" if norm.momentum != 0.1 else ""
        return f"nn.BatchNorm2d({channels}, eps={norm.eps!r}{momentum})"

    def residual(self, block: Block) -> list[tuple[str, str | None]]:
        """`residual` and `drop_path` of a block with a residual branch."""
        if not getattr(block, "residual", False):
            return []
        drop = getattr(block, "drop_path", 0.0)
        return [("residual", "True"), ("drop_path", repr(drop) if drop else None)]

    def cost_note(self, layers: Iterable[Layer]) -> str:
        cost = sum((layer_cost(layer) for layer in layers), Cost())
        return cost_note(cost.params, cost.macs)

    def call(self, name: str, *args: tuple[str, str | Call | None], comment: str = "") -> Call:
        """A constructor call with the given arguments, those that are None left out."""
        return Call(name, tuple((k, v) for k, v in args if v is not None), comment)


def block_call(block: Block, deploy: bool = False) -> Call:
    return kind_of(block).torch.call(block, TorchEmitter(deploy))


def _nested(call: Call) -> Iterator[Call]:
    """A constructor call and those nested in it."""
    yield call
    for _, value in call.args:
        if isinstance(value, Call):
            yield from _nested(value)


# The class pieces: class name -> its template (conv and pool are kinds too, their layers too).
_PIECES: dict[str, str] = {"ConvBnAct": "conv_bn_act.py.j2", "ConvAct": "conv_act.py.j2",
                           "SqueezeExcite": "squeeze_excite.py.j2", "BlurPool": "blur_pool.py.j2",
                           **{c: k.torch.template for k in KINDS.values() for c in k.torch.classes}}  # fmt: skip
_HELPERS = {"layer_scale": "layer_scale.py.j2"}
# Defined first, as the classes most blocks are built of; then each kind's, in the registry's order.
_FIRST = ("blur_pool.py.j2", "conv_bn_act.py.j2", "conv_act.py.j2", "squeeze_excite.py.j2", "layer_scale.py.j2")


def _conv_features(calls: Iterable[Call], name: str) -> dict[str, bool]:
    """What the class `name` (ConvAct, ConvBnAct) must do for this network's convs: no more."""
    keywords = [dict(c.args) for call in calls for c in _nested(call) if c.name == name]
    return {
        "pad": any(str(k.get("padding", "")).startswith("(") for k in keywords),
        "se": any("se" in k for k in keywords),
        "optional_act": any("act" not in k for k in keywords),
        "residual": any("residual" in k for k in keywords),
        "aa": any("aa" in k for k in keywords),
        "dilation": any("dilation" in k for k in keywords),
    }


def _class_templates(calls: Iterable[Call], net: Network) -> list[str]:
    """The class pieces a file needs, each once: those its calls build and their helpers."""
    calls = list(calls)
    used = {_PIECES[name] for call in calls for name in (c.name for c in _nested(call)) if name in _PIECES}
    if any(_conv_features(calls, name)["aa"] for name in ("ConvAct", "ConvBnAct")):
        used.add(_PIECES["BlurPool"])  # built inside the conv classes
    for b in net.blocks():
        piece = kind_of(b).torch
        if piece.template in used:
            used |= {_HELPERS[h] for h in piece.helpers}
    order = [*_FIRST, *(k.torch.template for k in KINDS.values())]
    return [tpl for tpl in dict.fromkeys(order) if tpl in used]


def _dense(net: Network) -> dict[str, str] | None:
    """What a dense-prediction network's `forward` returns (one output: the tensor itself)."""
    returns = dense_outputs(net)
    if returns is None:
        return None
    if len(net.outputs()) == 1:
        return {"type": "torch.Tensor", "returns": f"its {returns}"}
    return {"type": "dict[str, torch.Tensor]", "returns": f"a dict of {returns}"}


# The generated file's own class names, which the network's class must not take.
_RESERVED = frozenset({*_OWN_CLASSES, *_PIECES})


class TorchBackend(Backend):
    name = "torch"
    file_suffix = ".py"

    def emit(self, net: Network) -> str:
        header = Header.of(net)

        calls = {b.path: block_call(b, deploy=net.form == "deploy") for b in net.blocks()}

        def stage_ctx(stage: Stage) -> dict:
            blocks = [{"comment": block_comment(b, header.block_costs[b.path]), "call": calls[b.path]}
                      for b in stage.blocks]  # fmt: skip
            return {"comment": stage_comment(stage, header.stage_costs[stage.path]), "blocks": blocks}

        pieces = [kind_of(b).torch for b in net.blocks()]
        split, head_length = head_split(net), len(net.head.blocks)
        template = environment(self.name).get_template("module.py.j2")
        return template.render(
            header=header,
            net_class=class_name(net.name, _RESERVED),
            class_templates=_class_templates(calls.values(), net),
            conv_act=_conv_features(calls.values(), "ConvAct"),
            conv_bn_act=_conv_features(calls.values(), "ConvBnAct"),
            conv_class="ConvAct" if net.form == "deploy" else "ConvBnAct",
            features=features(net),
            dense=_dense(net),
            split=split,
            pretrained_cfg=pretrained_cfg(net),
            head_features=sequence_call("self.head", 0, split.pool, head_length),
            head_pool=sequence_call("self.head", split.pool, min(split.pool + 1, head_length - 1), head_length),
            head_pooled=sequence_call("self.head", split.pool + 1, head_length - 1, head_length),
            uses_drop_path=any(p.drop_path for p in pieces),
            uses_shuffle=any(p.shuffle for p in pieces),
            stem=stage_ctx(net.stem),
            stages=[stage_ctx(s) for s in net.stages],
            head=stage_ctx(net.head),
        )
