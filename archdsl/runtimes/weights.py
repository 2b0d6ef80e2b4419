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

from ..analysis.layers import Tensor, network_tensors
from ..atomic import write_atomic
from ..blocks import kind_of
from ..errors import ArchError
from ..ir.deploy_form import CannotMerge, deploy_form, deploy_weights
from ..ir.network import Network
from .weight_files import WeightFile, read_safetensors


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
        adjust = kind_of(block).init_weights
        if adjust is not None:
            adjust(block, weights)
    return weights


def save_weights(weights: dict, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically: a reader never sees a half-written file.

    safetensors orders several metadata keys differently from run to run, so the metadata is
    stored as one key, `archdsl`, holding sorted JSON: the file is byte-identical every time."""
    import json

    from safetensors.numpy import save

    meta = {"archdsl": json.dumps(metadata, sort_keys=True)} if metadata else None
    write_atomic(Path(path), save(weights, metadata=meta))


def load_canonical(path: str | Path, net: Network, deploy: bool = False, spec: str | None = None) -> tuple[dict, str]:
    """Canonical weights for `net` from a file, and the form the file held ("train" or "deploy").

    Every tensor must be float32 and finite, and the names and shapes those of `net` (the train
    form) or of `deploy_form(net)` (the deploy form). With `deploy`, train-form weights are
    folded; without it, deploy-form weights are an error (the train-form network cannot load
    them). The file's metadata (`save_weights`) breaks the tie where both forms have the same
    tensors, and is quoted when neither fits."""
    name, spec, flag = str(path), spec or "SPEC", " --deploy" if deploy else ""
    make = (
        f"archdsl init-weights {spec}{flag} -o W.safetensors (or: archdsl import-weights {spec}{flag} --from timm ...)"
    )
    file = read_safetensors(name, "weights", f"make weights with: {make}")
    wrong = next((e for e in file.entries.values() if e.dtype != "F32"), None)
    if wrong is not None:
        raise ArchError(f"cannot use weights {name!r}: tensor {wrong.name!r} is {wrong.dtype}, not F32 (float32)",
                        hint=f"canonical weights are float32; make them with: {make}")  # fmt: skip
    folded_net = _deploy_form(net)
    holds = _form_held(file, net, folded_net, deploy, make)
    if holds == "deploy" and not deploy:
        raise ArchError(f"weights {name!r} hold the deploy form of {net.name} (BatchNorm folded, branches merged)",
                        hint=f"add --deploy to use them, or make train-form weights: archdsl init-weights {spec} -o W.safetensors")  # fmt: skip
    tensors = network_tensors(folded_net if holds == "deploy" and folded_net is not None else net)
    weights = {t.key: file.array(t.key) for t in tensors}
    _check_values(weights, tensors, f"weights {name!r}")
    return (fold_checked(net, weights, f"weights {name!r}") if deploy and holds == "train" else weights), holds


def _form_held(file: WeightFile, net: Network, folded_net: Network | None, deploy: bool, make: str) -> str:
    """ "train" or "deploy": the form whose tensor names and shapes the file holds."""
    claim, network = _claimed(file.metadata)
    train, folded = _problems(file, net), _problems(file, folded_net) if folded_net is not None else None
    if not train:  # where both forms have the same tensors (no norm to fold), the metadata decides
        return "deploy" if folded == [] and deploy and claim == "deploy" else "train"
    if folded == []:
        return "deploy"
    shown = folded if folded is not None and (claim or ("deploy" if deploy else "train")) == "deploy" else train
    said = f"its metadata says: the {claim} form of {network!r}" if claim else "it carries no archdsl metadata"
    raise ArchError(f"weights {file.path!r} fit neither form of {net.name} ({said}): " + "; ".join(shown[:5]),
                    hint=f"{len(shown)} problem(s); make weights for this spec with: {make}")  # fmt: skip


def fold_checked(net: Network, weights: dict, source: str) -> dict:
    """`deploy_weights`, refusing a result that is not finite (a variance + eps <= 0, an overflow)."""
    import numpy as np

    with np.errstate(all="ignore"):  # the check below names the tensor; numpy's warning would not
        folded = deploy_weights(net, weights)
    bad = next((k for k, v in folded.items() if not np.isfinite(v).all()), None)
    if bad is not None:
        raise ArchError(f"folding {source} into the deploy form of {net.name} gives NaN or Inf in {bad!r}",
                        hint="the folded values must fit float32")  # fmt: skip
    return folded


def _deploy_form(net: Network) -> Network | None:
    try:
        return deploy_form(net)
    except CannotMerge:  # there is no deploy form
        return None


def _claimed(metadata: dict[str, str]) -> tuple[str | None, str | None]:
    """The form ("train", "deploy") and network that `save_weights` metadata names, if any."""
    import json

    try:
        meta = json.loads(metadata.get("archdsl", ""))
    except ValueError:
        return None, None
    if not isinstance(meta, dict):
        return None, None
    return {"True": "deploy", "False": "train"}.get(str(meta.get("deploy"))), str(meta.get("network", "?"))


def _problems(file: WeightFile, net: Network) -> list[str]:
    expected = {t.key: t.shape for t in network_tensors(net)}
    problems = [f"missing {k}" for k in expected if k not in file.entries]
    problems += [f"unexpected {k}" for k in file.entries if k not in expected]
    problems += [f"{k}: {e.shape} instead of {expected[k]}" for k, e in file.entries.items()
                 if k in expected and e.shape != expected[k]]  # fmt: skip
    return problems


def _check_values(weights: dict, tensors: list[Tensor], source: str) -> None:
    import numpy as np

    for t in tensors:
        a = weights[t.key]
        if not np.isfinite(a).all():
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            raise ArchError(f"cannot use {source}: tensor {t.key!r} holds {nan} NaN and {inf} Inf value(s)",
                            hint="canonical weights must be finite")  # fmt: skip
        if t.role == "bn_var" and (a < 0).any():
            raise ArchError(f"cannot use {source}: tensor {t.key!r}, a BatchNorm running variance, is negative")
