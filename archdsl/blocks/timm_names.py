"""timm's module names for the blocks of its EfficientNet-family layout (`efficientnet.py`'s
DepthwiseSeparableConv, InvertedResidual, EdgeResidual and UniversalInvertedResidual): each
block kind picks its scheme here; the importer (`runtimes/importers/timm.py`) walks the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .kind import TimmPlace

# A naming scheme: our sub-layer -> (timm conv module, timm norm module), relative to the block.
Scheme = dict[str, tuple[str, str]]
UIR: Scheme = {"dw_start": ("dw_start.conv", "dw_start.bn"), "expand": ("pw_exp.conv", "pw_exp.bn"),
               "dw_mid": ("dw_mid.conv", "dw_mid.bn"), "project": ("pw_proj.conv", "pw_proj.bn"),
               "dw_end": ("dw_end.conv", "dw_end.bn")}  # fmt: skip
IR: Scheme = {"expand": ("conv_pw", "bn1"), "dw_mid": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")}


def add_scheme(path: str, prefix: str, scheme: Scheme, out: dict[str, str]) -> None:
    """A block's convs and norms under `scheme`, and its SE (timm's SqueezeExcite)."""
    for ours, (timm_conv, timm_norm) in scheme.items():
        out[f"{path}.{ours}.conv"], out[f"{path}.{ours}.bn"] = f"{prefix}.{timm_conv}", f"{prefix}.{timm_norm}"
    out[f"{path}.se.reduce"], out[f"{path}.se.expand"] = f"{prefix}.se.conv_reduce", f"{prefix}.se.conv_expand"


@dataclass(frozen=True)
class StageNames:
    """The timm names of a stage block kind with one fixed scheme (a class, not a closure made at
    import: what it does runs at each call)."""

    scheme: Scheme

    def __call__(self, block: Any, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
        if place.part == "stage":
            add_scheme(block.path, place.prefix, self.scheme, out)
