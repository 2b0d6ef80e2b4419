"""`mobileone`: MobileOne's block (Vasu et al., 2023), train form and deploy form. Its deploy
form merges every branch into one conv at the block's own path (node here, weights in float64),
a plain conv (+ SE) (+ act) in every backend; `archdsl/ir/deploy_form.py` folds every other
BatchNorm."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..ir.geometry import FeatureMap
from ..ir.layers import Activation, BranchSum, InputNorm, Layer
from ..ir.nodes import Act, BlockNode, BlockSpec, ConvBnAct, Norm, SqueezeExcite
from .build import Builder, groups_of
from .kind import BlockKind, CannotMerge, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    import numpy as np

    from ..codegen.steps import Step


class MobileOneBlock(BlockNode):
    """MobileOne (Vasu et al., 2023): the sum of `branches` k x k conv+BN, a 1x1 conv+BN `scale`
    branch (when k > 1) and a BN of the input, `identity` (when shapes allow), then [SE] -> act.
    The deploy form merges them all into one k x k conv with a bias, the only branch left."""

    kind: Literal["mobileone"] = "mobileone"
    path: str
    branches: tuple[ConvBnAct, ...]  # `<path>.conv_kxk.<i>`; the deploy form's one is at `<path>`
    scale: ConvBnAct | None  # `<path>.conv_scale`
    identity: Norm | None  # BatchNorm of the input, `<path>.identity`
    se: SqueezeExcite | None
    act: Act  # after the sum and SE (the deploy form without SE moves it into its conv)

    @property
    def first(self) -> ConvBnAct:
        return self.branches[0]

    @property
    def merged(self) -> bool:
        """The deploy form: one conv with a bias at the block's own path, no other branch (a
        train-form block may have one branch too, at `<path>.conv_kxk.0`)."""
        return self.first.path == self.path


OPTIONS = frozenset({"k", "s", "c", "g", "dw", "x", "branches", "se", "act", "norm", "eps", "noskip", "fixed"})


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[MobileOneBlock, FeatureMap]:
    assert b.kernel
    k, s = b.kernel[0], b.stride
    cout = b.out or x.c
    groups = groups_of(b, x)
    branches = tuple(ctx.conv(b, f"{path}.conv_kxk.{i}", x, cout, k, s, groups, None) for i in range(b.branches))
    scale = ctx.conv(b, f"{path}.conv_scale", x, cout, 1, s, groups, None) if k > 1 else None
    y = FeatureMap(cout, branches[0].out_hw)
    identity = b.norm if ctx.residual(b, x, y, s) and b.norm is not None else None
    se = ctx.se(b, f"{path}.se", x.c, cout, cout, y.hw)
    block = MobileOneBlock.make(path=path, branches=branches, scale=scale, identity=identity, se=se,
                                act=b.act or "identity", span=b.span)  # fmt: skip
    return block, y


def layers(block: MobileOneBlock) -> Iterator[Layer]:
    first = block.first
    yield from block.branches
    if block.scale is not None:
        yield block.scale
    if block.identity is not None:
        yield InputNorm(f"{block.path}.identity", first.cin, first.in_hw, block.identity)
    terms = len(block.branches) + (block.scale is not None) + (block.identity is not None)
    if terms > 1:
        yield BranchSum(block.path, terms, first.cout, first.out_hw)
    if block.se is not None:
        yield block.se
    if block.act != "identity":
        yield Activation(block.path, block.act, first.cout, first.out_hw)


def _branches(block: MobileOneBlock) -> list[ConvBnAct | InputNorm]:
    first = block.first
    identity = [InputNorm(f"{block.path}.identity", first.cin, first.in_hw, block.identity)] if block.identity else []
    return [*block.branches, *([block.scale] if block.scale else []), *identity]


def steps(block: MobileOneBlock) -> list[Step]:
    from ..codegen.steps import ActivationStep, BlockOutput, Branch, SumBranches

    branches = _branches(block)
    out: list[Step] = []
    if len(branches) == 1:  # the deploy form: one conv
        assert isinstance(branches[0], ConvBnAct)
        out.append(branches[0])
    else:
        names = tuple(f"branch{i}" for i in range(len(branches)))
        out += [Branch(layer, name) for layer, name in zip(branches, names, strict=True)]
        out.append(SumBranches(f"{block.path}.sum", names))
    if block.se is not None:
        out.append(block.se)
    if block.act != "identity":
        out.append(ActivationStep(f"{block.path}.act", block.act))
    return [*out, BlockOutput(block.path)]


def torch_call(block: MobileOneBlock, t: Any) -> Any:
    act = t.act(block.act) if block.act != "identity" else None
    if block.merged:  # a plain conv: the deploy form's ConvAct, the SE and act its own
        conv = t.conv(block.first)
        return conv if block.se is None else replace(conv, args=(*conv.args, ("se", t.se(block.se)), ("act", act)))
    identity = t.batch_norm(block.first.cin, block.identity) if block.identity is not None else None
    return t.call("MobileOneBlock", *(("", t.conv(c)) for c in block.branches), ("conv_scale", t.conv(block.scale)),
                  ("identity", identity), ("se", t.se(block.se)), ("act", act))  # fmt: skip


def _check_mergeable(block: MobileOneBlock) -> None:
    """The merged kernel adds the 1x1 branch at the k x k kernel's centre tap: right only where
    the k x k conv pads k // 2 on top and on the left (TF 'same' at stride 2 may not)."""
    first, k = block.first, block.first.kernel
    top, left = first.padding[0], first.padding[2]
    if (top, left) != (k // 2, k // 2) or (block.scale is not None and any(block.scale.padding)):
        raise CannotMerge(f"the branches of {block.path} cannot merge: its {k}x{k} conv pads {top} on top and {left} "
                          f"on the left, off-centre from its 1x1 branch", block.span, "use padding symmetric")  # fmt: skip


def deploy(block: MobileOneBlock) -> MobileOneBlock:
    """One k x k conv with a bias, at the block's own path."""
    _check_mergeable(block)
    act_inside = block.se is None  # without an SE between the sum and the act, the conv applies it
    merged = block.first.model_copy(update={"path": block.path, "norm": None, "bias": True,
                                            "act": block.act if act_inside else "identity"})  # fmt: skip
    return block.model_copy(update={"branches": (merged,), "scale": None, "identity": None,
                                    "act": "identity" if act_inside else block.act})  # fmt: skip


def deploy_weights(block: MobileOneBlock, out: dict[str, np.ndarray]) -> None:
    """Sum the BN-folded branches into the first branch's conv: the 1x1 branch as the centre tap
    of a k x k kernel, the identity BN as a kernel with a one at each channel's own centre tap."""
    import numpy as np

    from ..ir.deploy_form import norm_affine

    first = block.first
    k, c = first.kernel, first.path
    weight, bias = out.pop(f"{c}.conv.weight"), out.pop(f"{c}.conv.bias", np.zeros(first.cout))  # no bias: no BN
    for branch in block.branches[1:]:
        weight = weight + out.pop(f"{branch.path}.conv.weight")
        bias = bias + out.pop(f"{branch.path}.conv.bias", 0.0)
    if block.scale is not None:
        s = block.scale.path
        weight = weight + np.pad(out.pop(f"{s}.conv.weight"), ((0, 0), (0, 0), (k // 2,) * 2, (k // 2,) * 2))
        bias = bias + out.pop(f"{s}.conv.bias", 0.0)
    if block.identity is not None:
        g, shift = norm_affine(out, f"{block.path}.identity", block.identity.eps)
        per_group = first.cin // first.groups
        channels = np.arange(first.cout)
        identity = np.zeros_like(weight)
        identity[channels, channels % per_group, k // 2, k // 2] = g
        weight, bias = weight + identity, bias + shift
    out[f"{block.path}.conv.weight"], out[f"{block.path}.conv.bias"] = weight, bias


def init_weights(block: MobileOneBlock, weights: dict[str, Any]) -> None:
    """Scale the BN gammas of a sum of n branches by 1 / sqrt(n): unscaled, the sum's variance
    grows n-fold per block, and deep random MobileOnes reach values where float32 rounding
    alone nears the equivalence tolerance."""
    convs = [c for c in (*block.branches, block.scale) if c is not None and c.norm is not None]
    gammas = [f"{c.path}.bn.weight" for c in convs]
    if block.identity is not None:
        gammas.append(f"{block.path}.identity.weight")
    for key in gammas:
        weights[key] = weights[key] / math.sqrt(len(gammas))


def byobnet_names(block: MobileOneBlock, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """timm's ByobNet layout (`stem`, `stages.<i>.<j>`): inside a block the names are ours, but
    for the SE (`attn`, timm's SEModule)."""
    if place.part == "head":
        return
    prefix = place.prefix
    for branch in (*block.branches, block.scale):
        if branch is not None:
            name = branch.path.removeprefix(block.path)
            out[f"{branch.path}.conv"], out[f"{branch.path}.bn"] = f"{prefix}{name}.conv", f"{prefix}{name}.bn"
    out[f"{block.path}.identity"] = f"{prefix}.identity"
    out[f"{block.path}.se.reduce"], out[f"{block.path}.se.expand"] = f"{prefix}.attn.fc1", f"{prefix}.attn.fc2"


KIND = BlockKind(
    name="mobileone",
    node=MobileOneBlock,
    words={
        "mobileone": Word(
            OPTIONS,
            "MobileOne: k x k conv+BN branches, 1x1 scale branch, identity BN; summed -> [SE] -> act",
            ("out", "kernel"),
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.first.cin, b.first.in_hw),
    output=lambda b: (b.first.cout, b.first.out_hw),
    steps=steps,
    torch=TorchPiece("mobileone.py.j2", ("MobileOneBlock",), torch_call),
    deploy=deploy,
    deploy_weights=deploy_weights,
    init_weights=init_weights,
    timm={"byobnet": byobnet_names},
)
