"""Give every block its activation, norm, SE rule, padding mode and layer scale, taking the
nearest setting field by field: the block's own, then its stage's defaults, then the network's,
then the built-in ones (ReLU, BatchNorm eps 1e-5 momentum 0.1, symmetric padding)."""

from __future__ import annotations

from ..blocks import kind_of
from .nodes import BlockSpec, Defaults, NetworkSpec, Node, Norm, SEConfig, SEDefaults, StageSpec
from .stages import map_stages

NAME = "apply_defaults"
_FALLBACK = Defaults.make(
    act="relu",
    use_norm=True,
    eps=1e-5,
    momentum=0.1,
    padding="symmetric",
    se=SEDefaults.make(**SEConfig.make().settings()),
)


def merge(outer: Node, inner: Node) -> Node:
    """`inner`'s fields where set, `outer`'s elsewhere; nested settings merge the same way."""
    update = {}
    for name in type(inner).model_fields:
        value = getattr(inner, name)
        if isinstance(value, Node) and name != "span":
            update[name] = merge(getattr(outer, name), value)
        elif value is not None and name != "span":
            update[name] = value
    return outer.model_copy(update=update)


def _apply(block: BlockSpec, d: Defaults) -> BlockSpec:
    use_norm = d.use_norm if block.use_norm is None else block.use_norm
    assert d.eps is not None and d.momentum is not None
    update: dict = {
        "act": block.act or d.act,
        "norm": Norm.make(eps=block.eps or d.eps, momentum=d.momentum) if use_norm else None,
        "se_config": SEConfig.make(**d.se.settings()),
        "pad_mode": block.padding or d.padding,
    }
    if kind_of(block).layer_scale_default and block.layer_scale is None:
        update["layer_scale"] = d.layer_scale
    return block.model_copy(update=update)


def _stage(stage: StageSpec, network_defaults: Defaults) -> StageSpec:
    d = merge(network_defaults, stage.defaults)
    assert isinstance(d, Defaults)
    return stage.model_copy(update={"blocks": tuple(_apply(b, d) for b in stage.blocks)})


def apply_defaults(spec: NetworkSpec) -> NetworkSpec:
    d = merge(_FALLBACK, spec.defaults)
    assert isinstance(d, Defaults)
    return map_stages(spec, NAME, lambda stage, _: _stage(stage, d))
