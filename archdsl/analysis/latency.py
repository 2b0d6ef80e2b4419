"""Predicted latency: every layer's time looked up in a profile measured on the real runtime
(`archdsl calibrate`), as NetAdapt, FBNet and nn-Meter do, and summed.

A layer runs as one *unit*, the kernel(s) the runtime executes for it, with the fusion the
TFLite converter applies inside it: a conv's BatchNorm folds into its weights and bias, ReLU and
ReLU6 fuse into the conv op (hard-swish and the other activations run as an op of their own, timed
with the conv), an SE's hard-sigmoid gate folds into its expand conv. Across layers the converter
folds constant scales: a layer scale into the conv before it, a lone BatchNorm's scale forward
(it runs as an ADD); nothing else fuses (a residual add stays an ADD). So a network's time is
the interpreter's fixed cost per call plus its units' times, with terms fitted on networks
measured whole (`Predictor`). A unit measured in the profile is looked up; any other is fitted:
time = a + b x MACs + c x bytes (non-negative, relative least squares) over the measured units
of its family (same op, kernel, stride, activation), proportional to bytes when the family has
one or two, and widened (a prefix of the family) when it has none."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import ArchError, Span
from ..input_files import read_text
from ..ir.layers import (
    Activation,
    AttentionCore,
    Blur,
    BranchSum,
    ChannelShuffle,
    Concat,
    DynamicRelu,
    Gate,
    InputNorm,
    Layer,
    LayerNorm,
    LayerScale,
    Linear,
    ResidualAdd,
    TokenGate,
    TokenLinear,
    Tokens,
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
    unit = {"op": "conv", "cin": c.cin, "cout": c.cout, "k": c.kernel, "s": c.stride, "groups": c.groups,
            "pad": list(c.padding), "hw": list(c.in_hw), "act": c.act}  # fmt: skip
    return unit | {"d": c.dilation} if c.dilation != 1 else unit  # the profiles of undilated nets stay as they were


def _pool(p: Pool) -> Unit:
    return {"op": "pool", "mode": p.mode, "global": p.is_global, "k": p.kernel, "s": p.stride, "pad": list(p.padding),
            "c": p.channels, "hw": list(p.in_hw)}  # fmt: skip


def _token_linear(f: TokenLinear) -> Unit:
    """A linear layer on tokens: the classifier's unit, with its rows and act where it has them
    (so the units of the networks without tokens keep their keys)."""
    unit: Unit = {"op": "fc", "cin": f.cin, "classes": f.cout}
    return unit | ({"rows": f.rows} if f.rows != 1 else {}) | ({"act": f.act} if f.act != "identity" else {})


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
    Gate: lambda g: {"op": "gate", "c": g.channels, "hw": list(g.hw)},
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
    Blur: lambda b: {"op": "blur", "c": b.channels, "hw": list(b.in_hw)},
    Linear: lambda f: {"op": "fc", "cin": f.cin, "classes": f.classes},
    Tokens: lambda t: None,  # a constant, broadcast to the batch
    TokenLinear: _token_linear,
    LayerNorm: lambda n: {"op": "layer_norm", "c": n.dim, "rows": n.rows},
    DynamicRelu: lambda d: {"op": "dynamic_relu", "c": d.channels, "hw": list(d.hw)},
    TokenGate: lambda g: {"op": "mul", "c": g.channels, "rows": g.rows},
}


def unit_of(layer: Layer) -> Unit | None:
    return UNITS[type(layer)](layer)


def key_of(unit: Unit) -> str:
    return json.dumps(unit, sort_keys=True, separators=(",", ":"))


def is_depthwise(conv: Unit) -> bool:
    return bool(conv["groups"] == conv["cin"] == conv["cout"] > 1)


def family_of(unit: Unit) -> tuple[str, ...]:
    """What a fit pools over, most specific first (prefixes widen it): the op, then what changes
    the kernel's efficiency rather than its size."""
    op = unit["op"]
    if op == "conv":
        shape = "depthwise" if is_depthwise(unit) else (
            "grouped" if unit["groups"] > 1 else ("pointwise" if unit["k"] == 1 else "full"))  # fmt: skip
        window = f"k{unit['k']}s{unit['s']}" + (f"d{unit['d']}" if "d" in unit else "")
        return (op, shape, window, unit["act"])
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
    layers: int  # that run (not folded)
    weights: int  # bytes


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


# Every unit op's fields: what a profile's entry must carry (int unless named here).
FIELDS: dict[str, tuple[str, ...]] = {
    "conv": ("cin", "cout", "k", "s", "groups", "pad", "hw", "act"),
    "se": ("c", "reduced", "hw", "act", "gate"),
    "add": ("terms", "c", "hw"),
    "norm": ("c", "hw"),
    "act": ("act", "c", "hw"),
    "concat": ("c", "hw"),
    "shuffle": ("groups", "c", "hw"),
    "upsample": ("c", "hw", "out_hw"),
    "gate": ("c", "hw"),
    "attention": ("heads", "kv_heads", "key_dim", "value_dim", "queries", "keys"),
    "pool": ("mode", "global", "k", "s", "pad", "c", "hw"),
    "blur": ("c", "hw"),
    "fc": ("cin", "classes"),
    "none": ("c", "hw"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"conv": ("d",)}  # present only where not 1
_TEXT, _LISTS = ("act", "gate", "mode"), ("pad", "hw", "out_hw")


def _unit_ok(unit: Any) -> bool:
    """A unit with exactly its op's fields, each of its type and in bounds."""
    if not isinstance(unit, dict) or unit.get("op") not in FIELDS:
        return False
    given = set(unit) - {"op"}
    optional = given & set(OPTIONAL.get(unit["op"], ()))
    if given - optional != set(FIELDS[unit["op"]]):
        return False
    for name in (*FIELDS[unit["op"]], *optional):
        value = unit[name]
        if name in _TEXT:
            ok = isinstance(value, str) and len(value) < 64
        elif name in _LISTS:
            ok = isinstance(value, list) and len(value) in (2, 4) and all(_count(v) for v in value)
        elif name == "global":
            ok = isinstance(value, bool)
        else:
            ok = _count(value) and (name not in optional or value > 1)  # an optional field is there for a value != 1
        if not ok:
            return False
    return True


def profile_from_json(data: Any, source: str) -> Profile:
    """A profile read back, every field checked: a wrong file is an error, never a wrong number
    (nor a crash)."""

    def bad(what: str) -> ArchError:
        return ArchError(f"{source}: not a latency profile: {what}", hint="make one with archdsl calibrate")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f'no "format": "{FORMAT}"')
    runtime, threads = data.get("runtime"), data.get("threads")
    if not isinstance(runtime, str) or not _count(threads) or not threads:
        raise bad("runtime and threads missing or malformed")
    if not _seconds(data.get("overhead_seconds")):
        raise bad("overhead_seconds missing or not a positive number")
    overhead = float(data["overhead_seconds"])
    listed, measured, meta = data.get("entries", []), data.get("networks", {}), data.get("meta", {})
    if not isinstance(listed, list) or not isinstance(measured, dict) or not isinstance(meta, dict):
        raise bad("entries (a list), networks and meta (objects) malformed")
    entries = {}
    for i, e in enumerate(listed):
        if not isinstance(e, dict) or not _unit_ok(e.get("unit")) or not _seconds(e.get("seconds")) or not all(
                _count(e.get(f)) for f in ("macs", "bytes")):  # fmt: skip
            raise bad(f"entry {i + 1} is malformed")
        entries[key_of(e["unit"])] = Entry(e["unit"], float(e["seconds"]), e["macs"], e["bytes"])
    networks = {}
    for name, n in measured.items():
        ok = isinstance(n, dict) and _seconds(n.get("seconds")) and _seconds(n.get("units"))
        if not ok or not _count(n.get("layers")) or not _count(n.get("weights")) or n["seconds"] <= overhead:
            raise bad(f"network {name} is malformed")
        networks[name] = NetworkTime(float(n["seconds"]), float(n["units"]), n["layers"], n["weights"])
    return Profile(runtime, int(threads), overhead, entries, {str(k): str(v) for k, v in meta.items()}, networks)


def read_profile(path: str) -> Profile:
    """A profile file, read within bounds; malformed JSON is located (file:line:col)."""

    text = read_text(path, MAX_PROFILE_BYTES, "latency profile")
    try:
        data = json.loads(text)
    except (RecursionError, ValueError) as e:  # nesting too deep, an integer of thousands of digits
        if not isinstance(e, json.JSONDecodeError):
            raise ArchError(f"cannot read latency profile {path!r}: {str(e) or 'nested too deeply'}") from None
        line_end = len(text.split("\n")[e.lineno - 1]) + 1
        raise ArchError(f"malformed JSON: {e.msg}", Span(path, e.lineno, e.colno, e.lineno, max(line_end, e.colno + 1),
                        text), "make a profile with archdsl calibrate") from None  # fmt: skip
    return profile_from_json(data, path)


def _seconds(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1e3


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63


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


def power_law(rows: Sequence[tuple[int, int, float]]) -> Callable[[int, int], float] | None:
    """time = k x bytes^b x MACs^m fitted on rows (MACs, bytes, seconds) by least squares on the
    logarithms (MACs left out where a row has none: adds, copies); None where the rows cannot
    determine it (too few, or all of one size)."""
    import numpy as np

    with_macs = all(m > 0 for m, _, _ in rows)
    x = np.array([[1.0, np.log(b)] + ([np.log(m)] if with_macs else []) for m, b, _ in rows])
    if len(rows) <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    c = np.linalg.lstsq(x, np.log([t for _, _, t in rows]), rcond=None)[0].tolist()

    def seconds(macs: int, moved: int) -> float:
        log = c[0] + c[1] * math.log(max(moved, 1)) + (c[2] * math.log(max(macs, 1)) if with_macs else 0.0)
        return math.exp(log)

    return seconds


@dataclass(frozen=True)
class LayerTime:
    path: str
    block: str
    seconds: float
    source: str  # "measured", or "fitted on <family>"


class Predictor:
    """Layer times from the profile's units; a network's time the overhead plus scale x its units
    plus a constant per layer plus a cost per weight byte, fitted on the calibration networks
    measured whole (a unit timed alone runs with its weights in cache; inside a network, whose
    weights outgrow the caches, they stream from memory)."""

    def __init__(self, profile: Profile):
        self.profile = profile
        self._fits: dict[tuple[str, ...], Callable[[int, int], float] | None] = {}
        runs = [((n.units, float(n.layers), float(n.weights)), n.seconds - profile.overhead)
                for n in profile.networks.values()]  # fmt: skip
        self.scale, self.per_layer, self.per_weight_byte = 1.0, 0.0, 0.0
        if len(runs) >= 4:  # more runs than the three coefficients
            self.scale, self.per_layer, self.per_weight_byte = nonnegative_fit(runs)
        elif runs:  # too few to tell the other terms from the scale: the scale alone
            (self.scale,) = nonnegative_fit([((xs[0],), t) for xs, t in runs])

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
                return fit(*features(layer)), "fitted on " + " ".join(family[:n])
        raise ArchError(f"the profile has no {unit['op']} unit to predict {layer_path(layer)} from",
                        hint="calibrate on specs that use this kind of layer")  # fmt: skip

    def _fit(self, family: tuple[str, ...]) -> Callable[[int, int], float] | None:
        """A unit's time from its MACs and bytes, fitted on the family's measured units: a power
        law (time = k x bytes^b x MACs^m, least squares in log space, so neither too long nor too
        short is favoured) with four units or more; with fewer, time proportional to bytes (what
        the few there are say); None without any."""
        if family not in self._fits:
            pool = [e for e in self.profile.entries.values() if family_of(e.unit)[: len(family)] == family]
            # a unit timed at the call's fixed cost or below says nothing about its size: left out
            rows = [(e.macs, e.bytes, e.seconds - self.profile.overhead) for e in pool
                    if e.seconds > self.profile.overhead and e.bytes > 0]  # fmt: skip
            self._fits[family] = power_law(rows) if len(rows) >= 4 else None
            if self._fits[family] is None and rows:
                (per_byte,) = nonnegative_fit([((float(b),), t) for _, b, t in rows])
                self._fits[family] = lambda macs, moved: per_byte * moved
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
        """The network's time per call and each layer's share of it (a folded layer has none)."""
        weights = [layer_cost(layer).weight_bytes() for b in net.blocks() for layer in layers_of(b)]
        times = [t if t.source == "folded" else replace(t, seconds=self.scale * t.seconds + self.per_layer
                                                        + self.per_weight_byte * w)
                 for t, w in zip(self.units(net), weights, strict=True)]  # fmt: skip
        return self.profile.overhead + sum(t.seconds for t in times), times
