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

from ...analysis.layers import Tensor, network_tensors
from ...errors import ArchError
from ...ir.nodes import (
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
from ..weight_files import read_safetensors

# A naming scheme: our sub-layer -> (timm conv module, timm norm module), relative to the block.
Scheme = dict[str, tuple[str, str]]
_UIR: Scheme = {"dw_start": ("dw_start.conv", "dw_start.bn"), "expand": ("pw_exp.conv", "pw_exp.bn"),
                "dw_mid": ("dw_mid.conv", "dw_mid.bn"), "project": ("pw_proj.conv", "pw_proj.bn"),
                "dw_end": ("dw_end.conv", "dw_end.bn")}  # fmt: skip
_IR: Scheme = {"expand": ("conv_pw", "bn1"), "dw_mid": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")}
_DS: Scheme = {"dw": ("conv_dw", "bn1"), "pw": ("conv_pw", "bn2")}
_ER: Scheme = {"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")}
_TENSORS = ("weight", "bias", "running_mean", "running_var", "gamma")  # same names in timm and here
_WIDENED = ("F16", "BF16", "F64")  # float checkpoints converted to float32 on reading


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """A timm state dict from a safetensors file: its tensors (float16, bfloat16 and float64 ones
    converted to float32), each tensor's dtype as stored, and how many were converted."""
    file = read_safetensors(path, "checkpoint", "save one with: safetensors.torch.save_file(model.state_dict(), PATH)")
    state = file.arrays()
    dtypes = {name: e.dtype for name, e in file.entries.items()}
    widened = [name for name, dtype in dtypes.items() if dtype in _WIDENED]
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: reported as non-finite
        state.update({name: state[name].astype(np.float32) for name in widened})
    return state, dtypes, len(widened)


def _modules(net: Network, state: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Our module path -> timm module path, for every conv, norm, SE and linear layer timm's
    layouts have (a layer left out has no place in them: see `_unmapped`)."""
    if not net.stem.blocks:
        raise ArchError(f"cannot import timm weights into {net.name}: its stem is empty, and timm's networks begin "
                        "with a stem conv (conv_stem and bn1, or MobileOne's stem)", net.stem.span)  # fmt: skip
    if isinstance(net.stem.blocks[0], MobileOneBlock):
        return _byobnet_modules(net)
    out: dict[str, str] = {}
    stem = net.stem.blocks[0]
    if isinstance(stem, ConvBnAct):  # timm's stem is this one conv; any other stem block is unmapped
        out[f"{stem.path}.conv"], out[f"{stem.path}.bn"] = "conv_stem", "bn1"
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
    elif isinstance(block, UniversalInvertedBottleneck):
        scheme = _UIR if f"{prefix}.pw_exp.conv.weight" in state else _IR
        if block.layer_scale is not None:
            out[f"{block.path}.layer_scale"] = f"{prefix}.layer_scale"
    else:
        return  # a kind timm's efficientnet layout has not: its layers stay unmapped
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
    """timm's head holds one conv and one classifier: a second one of either stays unmapped."""
    conv = next((b for b in head.blocks if isinstance(b, ConvBnAct)), None)
    if conv is not None:  # MobileNetV3 class: norm_head; EfficientNet class: bn2
        out[f"{conv.path}.conv"] = "conv_head"
        out[f"{conv.path}.bn"] = "norm_head" if "norm_head.weight" in state else "bn2"
    fc = next((b for b in head.blocks if isinstance(b, Classifier)), None)
    if fc is not None:
        out[f"{fc.path}.fc"] = "classifier"


def _byobnet_modules(net: Network) -> dict[str, str]:
    """timm's ByobNet layout (MobileOne): `stem`, `stages.<i>.<j>`, `head.fc`. Inside a block the
    names are ours, but for the SE (`attn`, timm's SEModule)."""
    out: dict[str, str] = {}
    prefixes = [(net.stem.blocks[0], "stem")]  # timm's stem is one block: any other stays unmapped
    prefixes += [(b, f"stages.{i}.{j}") for i, stage in enumerate(net.stages) for j, b in enumerate(stage.blocks)]
    for block, prefix in prefixes:
        if not isinstance(block, MobileOneBlock):
            continue  # no place in timm's ByobNet layout: its layers stay unmapped
        for branch in (*block.branches, block.scale):
            if branch is not None:
                name = branch.path.removeprefix(block.path)
                out[f"{branch.path}.conv"], out[f"{branch.path}.bn"] = f"{prefix}{name}.conv", f"{prefix}{name}.bn"
        out[f"{block.path}.identity"] = f"{prefix}.identity"
        out[f"{block.path}.se.reduce"], out[f"{block.path}.se.expand"] = f"{prefix}.attn.fc1", f"{prefix}.attn.fc2"
    fc = next((b for b in net.head.blocks if isinstance(b, Classifier)), None)
    if fc is not None:
        out[f"{fc.path}.fc"] = "head.fc"
    return out


def timm_key(key: str, modules: Mapping[str, str]) -> str | None:
    module, _, tensor = key.rpartition(".")
    return f"{modules[module]}.{tensor}" if module in modules and tensor in _TENSORS else None


def import_timm(net: Network, state: Mapping[str, np.ndarray], dtypes: Mapping[str, str] | None = None,
                name: str = "the checkpoint") -> dict[str, np.ndarray]:  # fmt: skip
    """Canonical weights for `net` from a timm state dict; raises `ArchError` naming every problem.
    `dtypes` (from `read_checkpoint`) names a tensor's dtype as stored, where numpy has none;
    `name` names the checkpoint in the error."""
    modules = _modules(net, state)
    tensors = network_tensors(net)
    names = _timm_names(net, tensors, modules)
    weights: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for t in tensors:
        source = names[t.key]
        value = state.get(source)
        if value is None:
            problems.append(f"missing: {t.key} {t.shape} (timm name {source})")
        elif tuple(value.shape) != t.shape:
            problems.append(f"shape: {t.key} needs {t.shape}, timm {source} has {tuple(value.shape)}")
        elif not np.issubdtype(value.dtype, np.floating):
            problems.append(f"dtype: {t.key} needs floats, timm {source} is {(dtypes or {}).get(source, value.dtype)}")
        elif not np.isfinite(value).all():
            problems.append(f"non-finite: timm {source} holds NaN or Inf")
        elif t.role == "bn_var" and (value < 0).any():
            problems.append(f"negative: timm {source}, a running variance, has values below 0")
        else:
            weights[t.key] = np.ascontiguousarray(value, dtype=np.float32)
    used = set(names.values())
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    problems += [f"unused: {k} {tuple(state[k].shape)}" for k in unused]
    if problems:  # on one line: a message's line breaks are shown escaped
        shown = "; ".join(problems[:10]) + (f"; ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ArchError(f"{name} does not fit {net.name} ({count}): {shown}")
    return weights


def _timm_names(net: Network, tensors: list[Tensor], modules: Mapping[str, str]) -> dict[str, str]:
    """Our tensor key -> its timm name; the first tensor that has none is an error naming its block."""
    names = {t.key: timm_key(t.key, modules) for t in tensors}
    t = next((t for t in tensors if names[t.key] is None), None)
    if t is None:
        return {k: v for k, v in names.items() if v is not None}
    stage, block = next((s, b) for s in net.all_stages() for b in s.blocks if t.key.startswith(f"{b.path}."))
    raise ArchError(f"cannot import timm weights into {net.name}: timm's layout has no place for {block.path} "
                    f"(a {block.kind} block): its tensor {t.key} has no timm name", block.span or stage.span,
                    "timm's layouts have one stem conv; stages of conv, ds, ib/uib, fused_ib, ghost and mqa blocks; "
                    "a head of at most one conv and one classifier (MobileOne: mobileone blocks, then a classifier)")  # fmt: skip
