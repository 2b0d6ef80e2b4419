"""Canonical weights: one safetensors file per network, keyed by IR path + tensor name, in
PyTorch layout (conv OIHW, depthwise O1HW, linear out x in), readable by every backend.

`init_weights` draws deterministic random values from a seed with NumPy's PCG64, so the file
is the same on every machine. BatchNorm statistics are randomised too: a fresh BN (mean 0,
var 1) would hide epsilon and folding mistakes in equivalence tests. Weights are drawn with
variance 1 / fan_in, which keeps activations of order 1 through deep random networks (with
2 / fan_in they grow at every linear projection and residual add, until float32 rounding alone
approaches the equivalence tolerance).
"""

from __future__ import annotations

import math
from pathlib import Path

from .atomic import write_atomic
from .errors import ArchError
from .ir import MobileOneBlock, Network
from .layers import Tensor, network_tensors


def _draw(t: Tensor, rng):  # type: ignore[no-untyped-def]
    import numpy as np

    if t.role == "weight":
        fan_in = math.prod(t.shape[1:])
        return rng.normal(0.0, math.sqrt(1.0 / fan_in), t.shape).astype(np.float32)
    if t.role in ("bias", "bn_bias", "bn_mean"):
        return rng.normal(0.0, 0.1, t.shape).astype(np.float32)
    if t.role in ("bn_weight", "bn_var"):
        return rng.uniform(0.5, 1.5, t.shape).astype(np.float32)
    assert t.role == "layer_scale"
    # Large enough that a misplaced layer scale shows, small enough that the residual stream of a
    # deep hybrid stays of order 1: with scales of 0.5-1 it grew some 30-fold over MNv4-Hybrid-M's
    # attention blocks, their scores (quadratic in it) saturated, and float32 rounding differences
    # between backends grew 3- to 8-fold at each of them.
    return rng.uniform(0.2, 0.4, t.shape).astype(np.float32)


def init_weights(net: Network, seed: int) -> dict:
    """Random canonical weights for `net`: {key: float32 array}, in registration order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = {t.key: _draw(t, rng) for t in network_tensors(net)}
    for block in net.blocks():
        if isinstance(block, MobileOneBlock):
            _balance_branches(block, weights)
    return weights


def _balance_branches(block: MobileOneBlock, weights: dict) -> None:
    """Scale the BN gammas of a sum of n branches by 1 / sqrt(n): unscaled, the sum's variance
    grows n-fold per block, and deep random MobileOnes reach values where float32 rounding
    alone nears the equivalence tolerance."""
    convs = [c for c in (*block.branches, block.scale) if c is not None and c.norm is not None]
    gammas = [f"{c.path}.bn.weight" for c in convs]
    if block.identity is not None:
        gammas.append(f"{block.path}.identity.weight")
    for key in gammas:
        weights[key] = weights[key] / math.sqrt(len(gammas))


def save_weights(weights: dict, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically: a reader never sees a half-written file.

    safetensors orders several metadata keys differently from run to run, so the metadata is
    stored as one key, `archdsl`, holding sorted JSON: the file is byte-identical every time."""
    import json

    from safetensors.numpy import save

    meta = {"archdsl": json.dumps(metadata, sort_keys=True)} if metadata else None
    write_atomic(Path(path), save(weights, metadata=meta))


def load_checked(path: str | Path, net: Network) -> dict:
    """Canonical weights from a file, checked against the network's tensors (names and shapes)."""
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(path))
    except (OSError, ValueError) as exc:
        raise ArchError(f"cannot read weights {str(path)!r}: {exc}") from None
    expected = {t.key: t.shape for t in network_tensors(net)}
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [f"{k}: {tuple(v.shape)} instead of {expected[k]}" for k, v in weights.items()
                 if k in expected and tuple(v.shape) != expected[k]]  # fmt: skip
    if problems:
        raise ArchError(f"weights {str(path)!r} do not fit {net.name}: " + "; ".join(problems[:5]),
                        hint=f"{len(problems)} problem(s); make them with: archdsl init-weights or import-weights")  # fmt: skip
    return weights
