"""`archdsl verify`: the same network, weights and input through several backends, compared
block by block. The first backend is the reference; relative error is
max|a - b| / max(1, max|reference|). Backends agree when every block's output agrees within the
tolerance (a mistake early in a network can fade before the logits); on a mismatch the report
names the first block over it. A NaN or Inf in any output fails the pair (a NaN compares false
with every tolerance), and the report names the backend and the first block that produced one."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codegen.registry import get_backend
from ..ir.network import Network
from .runners import Outputs, reported_paths, runner, stdout_to_stderr
from .weights import init_weights, save_weights


@dataclass(frozen=True)
class PairReport:
    reference: str
    other: str
    max_abs: float  # on the last compared output (the logits)
    max_ref: float
    relative: float
    worst_block: str
    worst_relative: float
    first_divergence: str | None  # first block over tolerance (or not finite), in network order
    tolerance: float
    nonfinite: str | None = None  # e.g. "keras at stages.1.blocks.0": the first non-finite output
    unmatched: tuple[str, ...] = ()  # outputs one side lacks, or whose shapes differ

    @property
    def ok(self) -> bool:
        return self.first_divergence is None and self.nonfinite is None and not self.unmatched


def relative_error(ref: np.ndarray, other: np.ndarray) -> float:
    """max|ref - other| / max(1, max|ref|); infinite where either side is not finite."""
    if not (np.isfinite(ref).all() and np.isfinite(other).all()):
        return float("inf")
    return float(np.max(np.abs(ref - other)) / max(1.0, float(np.max(np.abs(ref)))))


def compare(ref_name: str, ref: Outputs, name: str, other: Outputs, tolerance: float,
            expected: list[str] | None = None) -> PairReport:  # fmt: skip
    """One pair's report over the `expected` outputs (default: every output either side has).
    Each must be on both sides, with one shape: an output a backend did not report is a
    failure, never skipped."""
    if expected is None:
        expected = [*ref, *(p for p in other if p not in ref)]
    unmatched = [f"{side} has no output {p}" for p in expected for side, out in ((ref_name, ref), (name, other))
                 if p not in out]  # fmt: skip
    both = [p for p in expected if p in ref and p in other]
    paths = [p for p in both if ref[p].shape == other[p].shape]
    unmatched += [f"{p}: {ref_name} {ref[p].shape}, {name} {other[p].shape}" for p in both
                  if ref[p].shape != other[p].shape]  # fmt: skip
    if not paths:
        nan = float("nan")
        return PairReport(
            ref_name, name, nan, nan, nan, "-", nan, None, tolerance, None, (*unmatched, "no common output")
        )
    errors = {p: relative_error(ref[p], other[p]) for p in paths}
    first = next((p for p in paths if not errors[p] <= tolerance), None)
    worst = max(paths, key=errors.__getitem__)
    last = paths[-1]
    with np.errstate(invalid="ignore"):  # inf - inf: the report shows nan
        max_abs = float(np.max(np.abs(ref[last] - other[last])))
    return PairReport(
        ref_name, name, max_abs, float(np.max(np.abs(ref[last]))),
        errors[last], worst, errors[worst], first, tolerance, _nonfinite(ref_name, ref, name, other, paths),
        tuple(unmatched),
    )  # fmt: skip


def _nonfinite(ref_name: str, ref: Outputs, name: str, other: Outputs, paths: list[str]) -> str | None:
    """Which side(s) first produced a NaN or Inf, and at which block; None if none did."""
    for p in paths:
        sides = [n for n, out in ((ref_name, ref), (name, other)) if not np.isfinite(out[p]).all()]
        if sides:
            return f"{' and '.join(sides)} at {p}"
    return None


def run_backends(net: Network, backends: list[str], weights: str, seed: int) -> dict[str, Outputs]:
    """Each backend's block outputs for one random input (from `seed`) and one weight file."""
    x = np.random.default_rng(seed).standard_normal((1, *net.input_shape), dtype=np.float32)
    results = {}
    for name in backends:
        run, backend = runner(name)
        with stdout_to_stderr():  # stdout carries the report alone (verify --json)
            results[name] = run(get_backend(backend).emit(net), net, weights, x)
    return results


def verify(net: Network, backends: list[str], weights: str | None, seed: int, tolerance: float) -> list[PairReport]:
    """Compare `backends` against the first; random canonical weights from `seed` unless given."""
    with tempfile.TemporaryDirectory() as tmp:
        if weights is None:
            weights = str(Path(tmp) / "weights.safetensors")
            save_weights(init_weights(net, seed), weights)
        results = run_backends(net, backends, weights, seed)
    ref = backends[0]
    reports = []
    for name in backends[1:]:  # a pair compares what both runners report (TFLite: only the logits)
        expected = [p for p in reported_paths(ref, net) if p in reported_paths(name, net)]
        reports.append(compare(ref, results[ref], name, results[name], tolerance, expected))
    return reports


def report_text(net: Network, reports: list[PairReport], tolerance: float, weights: str | None, seed: int) -> str:
    c, h, w = net.input_shape
    source = weights or f"random canonical weights (seed {seed}, BN statistics randomised)"
    lines = [f"{net.name}: input 1x{c}x{h}x{w} (seed {seed}); {source}; tolerance {tolerance:g} relative"]
    lines.append(f"{'pair':<16}{'max|diff|':>12}{'max|ref|':>12}{'relative':>12}  worst block")
    for r in reports:
        lines.append(
            f"{r.reference + '-' + r.other:<16}{r.max_abs:>12.3g}{r.max_ref:>12.4g}{r.relative:>12.3g}"
            f"  {r.worst_block} ({r.worst_relative:.3g})"
        )
    for r in reports:
        for problem in r.unmatched:
            lines.append(f"UNMATCHED {r.reference} vs {r.other}: {problem}")
        if r.nonfinite is not None:
            lines.append(f"NON-FINITE {r.reference} vs {r.other}: NaN or Inf from {r.nonfinite}")
        elif r.first_divergence is not None:
            lines.append(f"MISMATCH {r.reference} vs {r.other}: first divergence at block {r.first_divergence}")
    if all(r.ok for r in reports):
        lines.append("all backends agree")
    return "\n".join(lines) + "\n"
