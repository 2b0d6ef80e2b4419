"""Import a timm checkpoint (timm's tensor names) as canonical archdsl weights.

Every canonical tensor is looked up under its timm name, which depends on the block kind; a
UIB block may come from timm's `uir` (MobileNetV4) or `ir` (MobileNetV2/V3, EfficientNet) code,
told apart by the names the checkpoint holds; a MobileOne network has timm's ByobNet layout.
Shapes must match exactly; a tensor the network needs but the checkpoint lacks, and one the
checkpoint has but the network does not use, are reported by name.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...analysis.layers import Tensor, network_tensors
from ...blocks import KINDS, kind_of
from ...blocks.kind import TimmPlace
from ...errors import ArchError
from ...ir.network import Network
from ..weight_files import read_safetensors
from .checked import take

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
    layouts have; each block kind names its own layers (`timm` in `archdsl/blocks/`). The layout
    is the one the stem's first block belongs to: timm's efficientnet family (a stem conv) or
    its ByobNet (MobileOne). A layer left out has no place in it: see `_timm_names`."""
    if not net.stem.blocks:
        raise ArchError(f"cannot import timm weights into {net.name}: its stem is empty, and timm's networks begin "
                        "with a stem conv (conv_stem and bn1, or MobileOne's stem)", net.stem.span)  # fmt: skip
    layout = next(iter(kind_of(net.stem.blocks[0]).timm), "efficientnet")
    byobnet = layout == "byobnet"
    places = [(net.stem.blocks[0], TimmPlace("stem", "stem"))]  # timm's stem is one block: others stay unmapped
    for i, stage in enumerate(net.stages):
        places += [(b, TimmPlace(f"stages.{i}.{j}" if byobnet else f"blocks.{i}.{j}", "stage"))
                   for j, b in enumerate(stage.blocks)]  # fmt: skip
    # timm's head holds at most one block of each kind (a conv, a classifier): a second stays unmapped
    firsts = {b.kind: b for b in reversed(net.head.blocks)}
    places += [(b, TimmPlace("head", "head")) for b in net.head.blocks if firsts[b.kind] is b]
    out: dict[str, str] = {}
    for block, place in places:
        names = kind_of(block).timm.get(layout)
        if names is not None:
            names(block, place, state, out)
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
    return take(net, tensors, names, state, dtypes, name, "timm")


def _timm_names(net: Network, tensors: list[Tensor], modules: Mapping[str, str]) -> dict[str, str]:
    """Our tensor key -> its timm name; the first tensor that has none is an error naming its block."""
    names = {t.key: timm_key(t.key, modules) for t in tensors}
    t = next((t for t in tensors if names[t.key] is None), None)
    if t is None:
        return {k: v for k, v in names.items() if v is not None}
    stage, block = next((s, b) for s in net.all_stages() for b in s.blocks if t.key.startswith(f"{b.path}."))
    raise ArchError(f"cannot import timm weights into {net.name}: timm's layout has no place for {block.path} "
                    f"(a {block.kind} block): its tensor {t.key} has no timm name", block.span or stage.span,
                    _LAYOUTS_HINT)  # fmt: skip


def _kinds_in(layout: str) -> str:
    """The kinds a timm layout has a place for in its stages (a classifier is its head's)."""
    return ", ".join(sorted(name for name, kind in KINDS.items() if layout in kind.timm and not kind.flat_output))


_LAYOUTS_HINT = (f"timm's efficientnet layout has one stem conv, stages of {_kinds_in('efficientnet')} blocks, and a "
                 "head of at most one conv and one classifier; its ByobNet layout (MobileOne) has "
                 f"{_kinds_in('byobnet')} blocks, then a classifier")  # fmt: skip
