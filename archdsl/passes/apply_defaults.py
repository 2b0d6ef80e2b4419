"""Give every block its activation, norm, SE rule, padding mode and layer scale, taking the
nearest setting: the block's own, then its stage's defaults, then the network's."""

from __future__ import annotations

from ..ir import BlockSpec, Defaults, NetworkSpec, Norm, SEConfig, StageSpec

NAME = "apply_defaults"
_FALLBACK = Defaults(act="relu", norm=Norm(), se=SEConfig(), padding="symmetric")
_TAKES_LAYER_SCALE = ("uib",)


def _merge(outer: Defaults, inner: Defaults) -> Defaults:
    fields = {k: v for k, v in inner.model_dump(exclude_none=True).items()}
    merged = outer.model_copy(update={k: getattr(inner, k) for k in fields})
    if inner.norm is not None:
        merged = merged.model_copy(update={"no_norm": inner.no_norm})
    return merged


def _apply(block: BlockSpec, d: Defaults) -> BlockSpec:
    update: dict = {
        "act": block.act or d.act,
        "norm": block.norm or d.norm,
        "no_norm": block.no_norm or bool(d.no_norm and block.norm is None),
        "se_config": block.se_config or d.se,
        "pad_mode": block.padding or d.padding,
    }
    if block.kind in _TAKES_LAYER_SCALE and block.layer_scale is None:
        update["layer_scale"] = d.layer_scale
    return block.model_copy(update=update)


def _stage(stage: StageSpec, network_defaults: Defaults) -> StageSpec:
    d = _merge(network_defaults, stage.defaults)
    return stage.model_copy(update={"blocks": tuple(_apply(b, d) for b in stage.blocks)})


def apply_defaults(spec: NetworkSpec) -> NetworkSpec:
    if NAME in spec.applied:
        return spec
    d = _merge(_FALLBACK, spec.defaults)
    return spec.model_copy(
        update={
            "stem": _stage(spec.stem, d),
            "stages": tuple(_stage(s, d) for s in spec.stages),
            "head": _stage(spec.head, d),
            "applied": (*spec.applied, NAME),
        }
    )
