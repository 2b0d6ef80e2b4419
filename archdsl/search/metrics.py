"""What a sweep measures of each candidate, and what it asks of the results.

- Metrics: `params`, `macs`, `weight_bytes` and `activation_bytes` (float32) always, from the
  cost model; `roofline@RIDGE[:DTYPE]`, MobileNetV4's roofline at that ridge point (effective
  MACs: each layer's max(MACs, RIDGE x bytes), `analysis/roofline.py`; bytes at DTYPE, float32 by
  default, or float16, bfloat16, int8); `latency@PROFILE`, the latency
  predicted from a calibrated profile (`archdsl calibrate`), in milliseconds. Both latency
  figures are of the deploy form, which is what runs.
- Constraints: `NAME<=VALUE` or `NAME>=VALUE`, on any column: `macs<=300e6`.
- Objectives: `min:NAME` or `max:NAME`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..analysis.cost import DTYPE_BYTES
from ..errors import UsageError

ALWAYS = ("params", "macs", "weight_bytes", "activation_bytes")
_CONSTRAINT = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=)\s*([-+0-9.eE_]+)\s*$")


def parse_metric(text: str) -> str:
    """A metric's name, checked (its profile read later, by the workers)."""
    if text in ALWAYS:
        return text
    kind, at, arg = text.partition("@")
    if kind == "roofline" and at:
        ridge_text, _, dtype = arg.partition(":")
        ridge = _number(ridge_text, f"--metric {text}: the ridge point")
        if not 0 <= ridge <= 1e6:
            raise UsageError(f"--metric {text}: a ridge point is from 0 to 1e6 MACs/byte")
        if dtype and dtype not in DTYPE_BYTES:
            raise UsageError(f"--metric {text}: unknown dtype {dtype!r}", hint=", ".join(DTYPE_BYTES))
        return text
    if kind == "latency" and at and arg:
        return text
    raise UsageError(f"unknown metric {text!r}",
                     hint="params, macs, weight_bytes, activation_bytes, roofline@RIDGE, latency@PROFILE.json")  # fmt: skip


@dataclass(frozen=True)
class Constraint:
    name: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT.match(text)
        if not m:
            raise UsageError(
                f"cannot read the constraint {text!r}", hint="write NAME<=VALUE or NAME>=VALUE, e.g. macs<=300e6"
            )
        return cls(m[1], m[2], _number(m[3], f"the constraint {text!r}"))

    def violation(self, value: float) -> float:
        """How far `value` is outside the bound (<= 0: satisfied), as Optuna's constraints take it."""
        if isinstance(value, float) and math.isnan(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class Objective:
    name: str
    maximize: bool

    @classmethod
    def parse(cls, text: str) -> Objective:
        sense, _, name = text.partition(":")
        if sense not in ("min", "max") or not name:
            raise UsageError(f"cannot read the objective {text!r}", hint="write min:NAME or max:NAME")
        return cls(name, sense == "max")

    def __str__(self) -> str:
        return f"{'max' if self.maximize else 'min'}:{self.name}"


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{what} must be finite, got {text!r}")
    return value


def measure(metrics: tuple[str, ...]) -> Callable[..., dict[str, float]]:
    """A function from a resolved `Network` to its metrics (profiles read once, here)."""
    from ..analysis.cost import network_cost

    wanted = [m for m in metrics if m not in ALWAYS]
    rooflines = {m: _ridge_dtype(m) for m in wanted if m.startswith("roofline@")}
    predictors = {m: _predictor(m.partition("@")[2]) for m in wanted if m.startswith("latency@")}

    def run(net: Any, total: Any = None) -> dict[str, float]:
        """`total`: the network's cost where the caller has it (`resolve`'s totals)."""
        total = total if total is not None else network_cost(net)
        out: dict[str, float] = {"params": total.params, "macs": total.macs,
                                 "weight_bytes": total.weight_bytes(), "activation_bytes": total.activation_bytes()}  # fmt: skip
        if rooflines or predictors:
            from ..analysis.roofline import effective_macs, loads
            from ..ir.deploy_form import deploy_form

            deployed = deploy_form(net)
            layers = {dtype: loads(deployed, dtype) for dtype in {d for _, d in rooflines.values()}}
            out |= {m: effective_macs(layers[dtype], ridge) for m, (ridge, dtype) in rooflines.items()}
            out |= {m: p.network(deployed)[0] * 1e3 for m, p in predictors.items()}
        return out

    return run


def _ridge_dtype(metric: str) -> tuple[float, str]:
    ridge, _, dtype = metric.partition("@")[2].partition(":")
    return float(ridge), dtype or "float32"


def _predictor(path: str) -> Any:
    from ..analysis.latency import Predictor, read_profile

    return Predictor(read_profile(path))
