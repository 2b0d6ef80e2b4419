"""What every importer shares: the network's canonical tensors taken from a checkpoint under
the names its layout gives them, each checked (present, the same shape, finite floats, running
variances not negative), and every tensor of the checkpoint that nothing took reported."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...analysis.layers import Tensor
from ...errors import ArchError
from ...ir.network import Network


def take(net: Network, tensors: list[Tensor], names: Mapping[str, str], state: Mapping[str, np.ndarray],
         dtypes: Mapping[str, str] | None, name: str, layout: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Canonical weights: `names` maps each of `tensors`' keys to its name in `state` (the
    checkpoint, in `layout`'s names); raises `ArchError` naming every problem at once."""
    weights: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for t in tensors:
        source = names[t.key]
        value = state.get(source)
        if value is None:
            problems.append(f"missing: {t.key} {t.shape} ({layout} name {source})")
        elif tuple(value.shape) != t.shape:
            problems.append(f"shape: {t.key} needs {t.shape}, {layout} {source} has {tuple(value.shape)}")
        elif not np.issubdtype(value.dtype, np.floating):
            problems.append(
                f"dtype: {t.key} needs floats, {layout} {source} is {(dtypes or {}).get(source, value.dtype)}"
            )
        elif not np.isfinite(value).all():
            problems.append(f"non-finite: {layout} {source} holds NaN or Inf")
        elif t.role == "bn_var" and (value < 0).any():
            problems.append(f"negative: {layout} {source}, a running variance, has values below 0")
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
