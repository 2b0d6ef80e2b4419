"""Predicted latency: every layer's time looked up in a profile measured on the real runtime
(`archdsl calibrate`), as NetAdapt, FBNet and nn-Meter do, and summed.

A layer runs as one *unit*, the kernel(s) the runtime executes for it, with the fusion the
TFLite converter applies inside it: a conv's BatchNorm folds into its weights and bias, ReLU and
ReLU6 fuse into the conv op (hard-swish and the other activations run as an op of their own, timed
with the conv), an SE's hard-sigmoid gate folds into its expand conv. Across layers the converter
folds constant scales: a layer scale into the conv before it, a lone BatchNorm's scale forward
(it runs as an ADD); nothing else fuses (a residual add stays an ADD), so a network's time is the interpreter's fixed cost per call plus
the sum of its units' times. A unit measured in the profile is looked up; any other is fitted:
time = a + b x MACs + c x bytes (non-negative, relative least squares) over the measured units
of its family (same op, kernel, stride, activation), widening the family when it has too few."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import ArchError, Span
from ..input_files import open_regular
from ..ir.layers import (
    Activation,
    AttentionCore,
    BranchSum,
    ChannelShuffle,
    Concat,
    InputNorm,
    Layer,
    LayerScale,
    Linear,
    ResidualAdd,
    Upsample,
)
from ..ir.network import Network
from ..ir.nodes import ConvBnAct, Pool, SqueezeExcite
from .cost import layer_cost
from .layers import layers_of
from .report import layer_path

FORMAT = "archdsl-latency-profile/1"
MAX_PROFILE_BYTES = 64 * 1024 * 1024
Unit = dict[str, Any]


def _conv(c: ConvBnAct) -> Unit:
    return {"op": "conv", "cin": c.cin, "cout": c.cout, "k": c.kernel, "s": c.stride, "groups": c.groups,
            "pad": list(c.padding), "hw": list(c.in_hw), "act": c.act}  # fmt: skip


def _pool(p: Pool) -> Unit:
    return {"op": "pool", "mode": p.mode, "global": p.is_global, "k": p.kernel, "s": p.stride, "pad": list(p.padding),
            "c": p.channels, "hw": list(p.in_hw)}  # fmt: skip


# Every layer type -> the unit it runs as: what decides its kernel's time, and nothing else; None
# for a layer the converter folds into another.
UNITS: dict[type, Callable[[Any], Unit | None]] = {
    ConvBnAct: _conv,
    SqueezeExcite: lambda s: {
        "op": "se",
        "c": s.channels,
        "reduced": s.reduced,
        "hw": list(s.hw),
        "act": s.act,
        "gate": s.gate,
    },  # fmt: skip
    ResidualAdd: lambda a: {"op": "add", "terms": 2, "c": a.channels, "hw": list(a.hw)},
    BranchSum: lambda a: {"op": "add", "terms": a.terms, "c": a.channels, "hw": list(a.hw)},
    LayerScale: lambda s: None,  # the converter folds a constant per-channel scale into the conv before it
    InputNorm: lambda n: {"op": "norm", "c": n.channels, "hw": list(n.hw)},  # an ADD: its scale folds forward
    Activation: lambda a: {"op": "act", "act": a.act, "c": a.channels, "hw": list(a.hw)},
    Concat: lambda c: {"op": "concat", "c": c.channels, "hw": list(c.hw)},
    ChannelShuffle: lambda s: {"op": "shuffle", "groups": s.groups, "c": s.channels, "hw": list(s.hw)},
    Upsample: lambda u: {"op": "upsample", "c": u.channels, "hw": list(u.in_hw), "out_hw": list(u.out_hw)},
    AttentionCore: lambda a: {
        "op": "attention",
        "heads": a.heads,
        "kv_heads": a.kv_heads,
        "key_dim": a.key_dim,
        "value_dim": a.value_dim,
        "queries": a.queries,
        "keys": a.keys,
    },  # fmt: skip
    Pool: _pool,
    Linear: lambda f: {"op": "fc", "cin": f.cin, "classes": f.classes},
}


def unit_of(layer: Layer) -> Unit | None:
    return UNITS[type(layer)](layer)


def key_of(unit: Unit) -> str:
    return json.dumps(unit, sort_keys=True, separators=(",", ":"))


def family_of(unit: Unit) -> tuple[str, ...]:
    """What a fit pools over, most specific first (prefixes widen it): the op, then what changes
    the kernel's efficiency rather than its size."""
    op = unit["op"]
    if op == "conv":
        shape = "depthwise" if unit["groups"] == unit["cin"] == unit["cout"] > 1 else (
            "grouped" if unit["groups"] > 1 else ("pointwise" if unit["k"] == 1 else "full"))  # fmt: skip
        return (op, shape, f"k{unit['k']}s{unit['s']}", unit["act"])
    if op == "pool":
        return (op, unit["mode"], "global" if unit["global"] else f"k{unit['k']}s{unit['s']}")
    if op in ("act", "se"):
        return (op, unit["act"])
    return (op,)


@dataclass(frozen=True)
class Entry:
    """One measured unit: its median time per call, interpreter overhead included, and the
    MACs and bytes the fits use."""

    unit: Unit
    seconds: float
    macs: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "seconds": self.seconds, "macs": self.macs, "bytes": self.bytes}


def features(layer: Layer) -> tuple[int, int]:
    c = layer_cost(layer)
    return c.macs, c.weight_bytes() + c.activation_bytes()


@dataclass(frozen=True)
class NetworkTime:
    """A calibration network measured whole, beside the sum of its units' times: what fits how
    units add up inside a network."""

    seconds: float
    units: float
    layers: int


@dataclass
class Profile:
    runtime: str
    threads: int
    overhead: float  # seconds of a call that computes next to nothing
    entries: dict[str, Entry]
    meta: dict[str, str]
    networks: dict[str, NetworkTime] = field(default_factory=dict)  # by source hash

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "runtime": self.runtime, "threads": self.threads, "overhead_seconds": self.overhead,
                "meta": self.meta, "entries": [e.to_json() for _, e in sorted(self.entries.items())],
                "networks": {k: vars(n) for k, n in sorted(self.networks.items())}}  # fmt: skip


def profile_from_json(data: Any, source: str) -> Profile:
    """A profile read back, every field checked: a wrong file is an error, never a wrong number."""

    def bad(what: str) -> ArchError:
        return ArchError(f"{source}: not a latency profile: {what}", hint="make one with archdsl calibrate")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f'no "format": "{FORMAT}"')
    runtime, threads, overhead = data.get("runtime"), data.get("threads"), data.get("overhead_seconds")
    if not isinstance(runtime, str) or not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise bad("runtime and threads missing or malformed")
    if not _seconds(overhead):
        raise bad("overhead_seconds missing or not a positive number")
    entries = {}
    for i, e in enumerate(data.get("entries") or []):
        ok = isinstance(e, dict) and isinstance(e.get("unit"), dict) and isinstance(e["unit"].get("op"), str)
        if not ok or not _seconds(e.get("seconds")) or not all(_count(e.get(f)) for f in ("macs", "bytes")):
            raise bad(f"entry {i + 1} is malformed")
        entries[key_of(e["unit"])] = Entry(e["unit"], float(e["seconds"]), e["macs"], e["bytes"])
    networks = {}
    for name, n in (data.get("networks") or {}).items():
        if not isinstance(n, dict) or not _seconds(n.get("seconds")) or not _seconds(n.get("units")) or not _count(
                n.get("layers")):  # fmt: skip
            raise bad(f"network {name} is malformed")
        networks[name] = NetworkTime(float(n["seconds"]), float(n["units"]), n["layers"])
    meta = data.get("meta") or {}
    return Profile(runtime, threads, float(overhead or 0), entries, {str(k): str(v) for k, v in meta.items()}, networks)


def read_profile(path: str) -> Profile:
    """A profile file, read within bounds; malformed JSON is located (file:line:col)."""

    def fail(problem: str) -> ArchError:
        return ArchError(f"cannot read latency profile {path!r}: {problem}")

    try:
        with open_regular(path, MAX_PROFILE_BYTES, "a latency profile may have", fail) as (f, _):
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        line_end = len(text.split("\n")[e.lineno - 1]) + 1
        raise ArchError(f"malformed JSON: {e.msg}", Span(path, e.lineno, e.colno, e.lineno, max(line_end, e.colno + 1),
                        text), "make a profile with archdsl calibrate") from None  # fmt: skip
    return profile_from_json(data, path)


def _seconds(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1e3


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def nonnegative_fit(rows: Sequence[tuple[Sequence[float], float]]) -> tuple[float, ...]:
    """Coefficients c >= 0 minimising the relative error sum(((c . x - t) / t)^2) over rows (x, t):
    the best least-squares fit over every subset of the features whose solution is non-negative."""
    import numpy as np

    n = len(rows[0][0])
    best: tuple[float, tuple[float, ...]] = (float("inf"), (0.0,) * n)
    for k in range(n, 0, -1):
        for used in itertools.combinations(range(n), k):
            a = np.array([[xs[i] / t for i in used] for xs, t in rows])
            scale = np.abs(a).max(axis=0)
            if len(rows) < k or not scale.all():
                continue
            solution = np.linalg.lstsq(a / scale, np.ones(len(rows)), rcond=None)[0] / scale
            if (solution < 0).any():
                continue
            coef = [0.0] * n
            for i, v in zip(used, solution, strict=True):
                coef[i] = float(v)
            err = sum(((sum(c * x for c, x in zip(coef, xs, strict=True)) - t) / t) ** 2 for xs, t in rows)
            if err < best[0] - 1e-12:
                best = (err, tuple(coef))
    return best[1]


@dataclass(frozen=True)
class LayerTime:
    path: str
    block: str
    seconds: float
    source: str  # "measured", or "fitted on <family>"


class Predictor:
    """Layer times from the profile's units; a network's time the overhead plus scale x its units
    plus a constant per layer, both fitted on the calibration networks measured whole (a unit timed
    alone runs with its weights in cache; inside a network they come from memory)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self._fits: dict[tuple[str, ...], tuple[float, ...] | None] = {}
        runs = [((n.units, float(n.layers)), n.seconds - profile.overhead) for n in profile.networks.values()]
        self.scale, self.per_layer = nonnegative_fit(runs) if runs else (1.0, 0.0)

    def layer(self, layer: Layer) -> tuple[float, str]:
        unit = unit_of(layer)
        if unit is None:
            return 0.0, "folded"
        entry = self.profile.entries.get(key_of(unit))
        if entry is not None:
            return max(entry.seconds - self.profile.overhead, 0.0), "measured"
        family = family_of(unit)
        for n in range(len(family), 0, -1):
            fit = self._fit(family[:n])
            if fit is not None:
                macs, moved = features(layer)
                return fit[0] + fit[1] * macs + fit[2] * moved, "fitted on " + " ".join(family[:n])
        raise ArchError(f"the profile has no {unit['op']} unit to predict {layer_path(layer)} from",
                        hint="calibrate on specs that use this kind of layer")  # fmt: skip

    def _fit(self, family: tuple[str, ...]) -> tuple[float, ...] | None:
        """time = a + b x MACs + c x bytes over the family's measured units; with fewer than three,
        time proportional to bytes (what the few there are say); None without any."""
        if family not in self._fits:
            pool = [e for e in self.profile.entries.values() if family_of(e.unit)[: len(family)] == family]
            rows = [((1.0, float(e.macs), float(e.bytes)), max(e.seconds - self.profile.overhead, 1e-9)) for e in pool]
            if len(rows) >= 3:
                self._fits[family] = nonnegative_fit(rows)
            else:
                few = [((xs[2],), t) for xs, t in rows if xs[2] > 0]
                self._fits[family] = (0.0, 0.0, *nonnegative_fit(few)) if few else None
        return self._fits[family]

    def units(self, net: Network) -> list[LayerTime]:
        """Every layer's unit time, as measured or fitted (alone, before the network's fit)."""
        times = []
        for block in net.blocks():
            for layer in layers_of(block):
                seconds, source = self.layer(layer)
                times.append(LayerTime(layer_path(layer), block.path, seconds, source))
        return times

    def network(self, net: Network) -> tuple[float, list[LayerTime]]:
        """The network's time per call and each layer's share of it."""
        times = [replace(t, seconds=self.scale * t.seconds + self.per_layer) for t in self.units(net)]
        return self.profile.overhead + sum(t.seconds for t in times), times
