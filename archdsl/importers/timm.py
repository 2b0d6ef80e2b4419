"""Import a timm checkpoint (timm's tensor names) as canonical archdsl weights.

Every canonical tensor is looked up under its timm name, which depends on the block kind; a
UIB block may come from timm's `uir` (MobileNetV4) or `ir` (MobileNetV2/V3, EfficientNet) code,
told apart by the names the checkpoint holds; a MobileOne network has timm's ByobNet layout. Shapes must match exactly; a tensor the network
needs but the checkpoint lacks, and one the checkpoint has but the network does not use, are
reported by name.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import ArchError
from ..ir import (
    Classifier,
    ConvBnAct,
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    GhostBottleneck,
    MobileAttention,
    MobileOneBlock,
    Network,
    Stage,
    UniversalInvertedBottleneck,
)
from ..layers import network_tensors

# A naming scheme: our sub-layer -> (timm conv module, timm norm module), relative to the block.
Scheme = dict[str, tuple[str, str]]
_UIR: Scheme = {"dw_start": ("dw_start.conv", "dw_start.bn"), "expand": ("pw_exp.conv", "pw_exp.bn"),
                "dw_mid": ("dw_mid.conv", "dw_mid.bn"), "project": ("pw_proj.conv", "pw_proj.bn"),
                "dw_end": ("dw_end.conv", "dw_end.bn")}  # fmt: skip
_IR: Scheme = {"expand": ("conv_pw", "bn1"), "dw_mid": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")}
_DS: Scheme = {"dw": ("conv_dw", "bn1"), "pw": ("conv_pw", "bn2")}
_ER: Scheme = {"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")}
_TENSORS = ("weight", "bias", "running_mean", "running_var", "gamma")  # same names in timm and here


def _modules(net: Network, state: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Our module path -> timm module path, for every conv, norm, SE and linear layer."""
    if isinstance(net.stem.blocks[0], MobileOneBlock):
        return _byobnet_modules(net)
    out: dict[str, str] = {}

    def conv(ours: str, timm_conv: str, timm_norm: str) -> None:
        out[f"{ours}.conv"], out[f"{ours}.bn"] = timm_conv, timm_norm

    conv(net.stem.blocks[0].path, "conv_stem", "bn1")
    for i, stage in enumerate(net.stages):
        for j, block in enumerate(stage.blocks):
            _block(block, f"blocks.{i}.{j}", state, out)
    _head(net.head, state, out)
    return out


def _block(block, prefix: str, state: Mapping[str, np.ndarray], out: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    if isinstance(block, ConvBnAct):
        out[f"{block.path}.conv"], out[f"{block.path}.bn"] = f"{prefix}.conv", f"{prefix}.bn1"
        return
    if isinstance(block, MobileAttention):
        _attention(block, prefix, out)
        return
    if isinstance(block, GhostBottleneck):
        _ghost(block, prefix, out)
        return
    if isinstance(block, DepthwiseSeparable):
        scheme = _DS
    elif isinstance(block, FusedInvertedBottleneck):
        scheme = _ER
    else:
        assert isinstance(block, UniversalInvertedBottleneck)
        scheme = _UIR if f"{prefix}.pw_exp.conv.weight" in state else _IR
        if block.layer_scale is not None:
            out[f"{block.path}.layer_scale"] = f"{prefix}.layer_scale"
    for ours, (timm_conv, timm_norm) in scheme.items():
        out[f"{block.path}.{ours}.conv"], out[f"{block.path}.{ours}.bn"] = (
            f"{prefix}.{timm_conv}",
            f"{prefix}.{timm_norm}",
        )
    out[f"{block.path}.se.reduce"], out[f"{block.path}.se.expand"] = (
        f"{prefix}.se.conv_reduce",
        f"{prefix}.se.conv_expand",
    )


def _attention(block: MobileAttention, prefix: str, out: dict[str, str]) -> None:
    """timm's MobileAttention: `norm`, `attn.{query,key,value}.{down_pool,down_conv,norm,proj}`,
    `attn.output.proj`, `layer_scale.gamma`."""
    p, a = block.path, f"{prefix}.attn"
    out[f"{p}.norm"], out[f"{p}.query_norm"], out[f"{p}.layer_scale"] = (
        f"{prefix}.norm",
        f"{a}.query.norm",
        f"{prefix}.layer_scale",
    )
    for part in ("query", "key", "value", "output"):
        out[f"{p}.{part}.conv"] = f"{a}.{part}.proj"
    for part in ("key", "value"):
        out[f"{p}.{part}_down.conv"], out[f"{p}.{part}_down.bn"] = f"{a}.{part}.down_conv", f"{a}.{part}.norm"


def _ghost(block: GhostBottleneck, prefix: str, out: dict[str, str]) -> None:
    """timm's GhostBottleneck: `ghostN.primary_conv.{0,1}`, `ghostN.cheap_operation.{0,1}`,
    `conv_dw`/`bn_dw`, `se.conv_reduce`/`se.conv_expand`, `shortcut.{0,1,2,3}`."""
    p = block.path
    for g in ("ghost1", "ghost2"):
        for ours, theirs in (("primary", "primary_conv"), ("cheap", "cheap_operation")):
            out[f"{p}.{g}.{ours}.conv"], out[f"{p}.{g}.{ours}.bn"] = (
                f"{prefix}.{g}.{theirs}.0",
                f"{prefix}.{g}.{theirs}.1",
            )
    out[f"{p}.dw.conv"], out[f"{p}.dw.bn"] = f"{prefix}.conv_dw", f"{prefix}.bn_dw"
    out[f"{p}.se.reduce"], out[f"{p}.se.expand"] = f"{prefix}.se.conv_reduce", f"{prefix}.se.conv_expand"
    out[f"{p}.shortcut_dw.conv"], out[f"{p}.shortcut_dw.bn"] = f"{prefix}.shortcut.0", f"{prefix}.shortcut.1"
    out[f"{p}.shortcut_pw.conv"], out[f"{p}.shortcut_pw.bn"] = f"{prefix}.shortcut.2", f"{prefix}.shortcut.3"


def _head(head: Stage, state: Mapping[str, np.ndarray], out: dict[str, str]) -> None:
    for block in head.blocks:
        if isinstance(block, ConvBnAct):  # MobileNetV3 class: norm_head; EfficientNet class: bn2
            out[f"{block.path}.conv"] = "conv_head"
            out[f"{block.path}.bn"] = "norm_head" if "norm_head.weight" in state else "bn2"
        elif isinstance(block, Classifier):
            out[f"{block.path}.fc"] = "classifier"


def _byobnet_modules(net: Network) -> dict[str, str]:
    """timm's ByobNet layout (MobileOne): `stem`, `stages.<i>.<j>`, `head.fc`. Inside a block the
    names are ours, but for the SE (`attn`, timm's SEModule)."""
    out: dict[str, str] = {}
    prefixes = [(b, "stem") for b in net.stem.blocks]
    prefixes += [(b, f"stages.{i}.{j}") for i, stage in enumerate(net.stages) for j, b in enumerate(stage.blocks)]
    for block, prefix in prefixes:
        if not isinstance(block, MobileOneBlock):
            raise ArchError(f"{block.path}: a {block.kind} block has no place in timm's MobileOne layout")
        for branch in (*block.branches, block.scale):
            if branch is not None:
                name = branch.path.removeprefix(block.path)
                out[f"{branch.path}.conv"], out[f"{branch.path}.bn"] = f"{prefix}{name}.conv", f"{prefix}{name}.bn"
        out[f"{block.path}.identity"] = f"{prefix}.identity"
        out[f"{block.path}.se.reduce"], out[f"{block.path}.se.expand"] = f"{prefix}.attn.fc1", f"{prefix}.attn.fc2"
    for block in net.head.blocks:
        if isinstance(block, Classifier):
            out[f"{block.path}.fc"] = "head.fc"
    return out


def timm_key(key: str, modules: Mapping[str, str]) -> str | None:
    module, _, tensor = key.rpartition(".")
    return f"{modules[module]}.{tensor}" if module in modules and tensor in _TENSORS else None


def import_timm(net: Network, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical weights for `net` from a timm state dict; raises `ArchError` naming every problem."""
    modules = _modules(net, state)
    weights: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for t in network_tensors(net):
        source = timm_key(t.key, modules)
        if source is None or source not in state:
            problems.append(f"missing: {t.key} {t.shape} (timm name {source or 'unknown'})")
        elif tuple(state[source].shape) != t.shape:
            problems.append(f"shape: {t.key} needs {t.shape}, timm {source} has {tuple(state[source].shape)}")
        else:
            weights[t.key] = np.ascontiguousarray(state[source], dtype=np.float32)
    used = {timm_key(t.key, modules) for t in network_tensors(net)}
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    problems += [f"unused: {k} {tuple(state[k].shape)}" for k in unused]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ArchError(f"the checkpoint does not fit {net.name} ({len(problems)} problems):\n  {shown}")
    return weights
