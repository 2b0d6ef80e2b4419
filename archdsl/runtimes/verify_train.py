"""`archdsl verify --train`: one training step in PyTorch and in Keras, on the same weights and
batch, compared block by block: the loss, each block's output in the training forward pass,
every gradient, the weights after one SGD step and the BatchNorm running statistics.

The step is what a training loop does: forward in train mode (BatchNorm on batch statistics,
updating its running ones), cross-entropy against fixed labels, backward, plain SGD (no
momentum, no weight decay). Dropout and drop-path are switched off for the check, since two
frameworks cannot draw the same random masks.

It runs in float64 by default, where only a difference of semantics can show: in float32 a
training step is chaotic enough that rounding alone moves gradients by percents (an
activation a rounding error away from ReLU's kink flips; BatchNorm over the few values of a
small map divides by a small deviation). Errors are relative, as `verify`'s are:
max|a - b| / max(1, max|reference|), except a gradient's, which is relative to its own scale,
max|a - b| / max|reference| (a floor at 1 would hide any error in gradients, which are small),
that scale floored at 1e-3 of the network's largest gradient (a gradient that is zero in exact
arithmetic, e.g. a BatchNorm shift followed by another BatchNorm, is rounding noise only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codegen.registry import get_backend
from ..ir.network import Network
from ..ir.stochastic_depth import without_stochastic_layers
from .runners import StepResult, block_paths, tensor_outputs, train_step
from .verify import compare, relative_error

RUNNING = (".running_mean", ".running_var")


@dataclass(frozen=True)
class Quantity:
    """One compared quantity of the step (e.g. the gradients): its worst error and where."""

    name: str
    count: int  # tensors (or outputs) compared
    worst: float
    worst_block: str
    first_divergence: str | None  # the first block, in network order, over the tolerance
    unmatched: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.first_divergence is None and not self.unmatched


@dataclass(frozen=True)
class TrainReport:
    reference: str
    other: str
    quantities: tuple[Quantity, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(q.ok for q in self.quantities)


def gradient_errors(ref: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    """The gradient error for the reference gradients `ref`: see the module docstring."""
    floor = 1e-3 * max((float(np.max(np.abs(g))) for g in ref.values() if g.size), default=0.0)

    def error(a: np.ndarray, b: np.ndarray) -> float:
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            return float("inf")
        diff, scale = float(np.max(np.abs(a - b))), max(float(np.max(np.abs(a))), floor)
        return diff / scale if scale else (0.0 if diff == 0.0 else float("inf"))

    return error


def block_of(key: str, paths: list[str]) -> str:
    """The block a canonical tensor name belongs to: the longest block path it starts with."""
    return max((p for p in paths if key.startswith(p + ".")), key=len, default=key)


def compare_tensors(name: str, ref: dict[str, np.ndarray], other: dict[str, np.ndarray], paths: list[str],
                    tolerance: float, error=relative_error, may_be_empty: bool = False) -> Quantity:  # type: ignore[no-untyped-def]  # fmt: skip
    """Per tensor, then per block (its worst tensor); a tensor one side lacks, or whose shapes
    differ, is unmatched, never skipped. Nothing on either side is a failure unless
    `may_be_empty` (the deploy form has no BatchNorm statistics)."""
    if may_be_empty and not ref and not other:
        return Quantity(name, 0, 0.0, "-", None)
    unmatched = [f"{k} only in one backend" for k in sorted(ref.keys() ^ other.keys())]
    unmatched += [f"{k}: shapes {ref[k].shape} and {other[k].shape}" for k in sorted(ref.keys() & other.keys())
                  if ref[k].shape != other[k].shape]  # fmt: skip
    by_block: dict[str, float] = {}
    for k in ref.keys() & other.keys():
        if ref[k].shape == other[k].shape:
            block = block_of(k, paths)
            by_block[block] = max(by_block.get(block, 0.0), error(ref[k], other[k]))
    order = [p for p in paths if p in by_block] + sorted(b for b in by_block if b not in paths)
    if not order:
        return Quantity(name, 0, float("nan"), "-", None, (*unmatched, "nothing to compare"))
    worst = max(order, key=by_block.__getitem__)
    first = next((b for b in order if not by_block[b] <= tolerance), None)
    count = len(ref.keys() & other.keys())
    return Quantity(name, count, by_block[worst], worst, first, tuple(unmatched))


def compare_steps(net: Network, ref_name: str, ref: StepResult, name: str, other: StepResult,
                  tolerance: float) -> TrainReport:  # fmt: skip
    paths = block_paths(net)
    loss = relative_error(np.array(ref.loss), np.array(other.loss))
    tensors = tensor_outputs(net)  # each block's output, and a pair's second tensor (`.low`, `.tokens`)
    outputs = compare(ref_name, ref.outputs, name, other.outputs, tolerance, tensors)

    def split(after: dict[str, np.ndarray], running: bool) -> dict[str, np.ndarray]:
        return {k: v for k, v in after.items() if k.endswith(RUNNING) == running}

    quantities = (
        Quantity("loss", 1, loss, "-", None if loss <= tolerance else "loss"),
        Quantity("outputs", len(tensors), outputs.worst_relative, outputs.worst_block, outputs.first_divergence,
                 outputs.unmatched + ((f"not finite: {outputs.nonfinite}",) if outputs.nonfinite else ())),
        compare_tensors("gradients", ref.gradients, other.gradients, paths, tolerance, gradient_errors(ref.gradients)),
        compare_tensors("weights after", split(ref.after, False), split(other.after, False), paths, tolerance),
        compare_tensors("running stats", split(ref.after, True), split(other.after, True), paths, tolerance,
                        may_be_empty=True),
    )  # fmt: skip
    return TrainReport(ref_name, name, quantities, tolerance)


def batch(net: Network, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random input batch and random class labels, both from `seed`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size, *net.input_shape), dtype=np.float32)
    return x, rng.integers(0, net.classes, size=size, dtype=np.int64)


def verify_train(net: Network, backends: list[str], weights: str, seed: int, tolerance: float, batch_size: int,
                 lr: float, dtype: str = "float64") -> list[TrainReport]:  # fmt: skip
    """One training step in each of `backends` (the first is the reference), compared."""
    net = without_stochastic_layers(net)
    x, labels = batch(net, batch_size, seed)
    results = {}
    for name in backends:
        step = train_step(name)
        results[name] = step(get_backend(name).emit(net), net, weights, x, labels, lr, dtype)
    ref = backends[0]
    return [compare_steps(net, ref, results[ref], n, results[n], tolerance) for n in backends[1:]]


def train_report_text(net: Network, reports: list[TrainReport], batch_size: int, lr: float, dtype: str,
                      source: str) -> str:  # fmt: skip
    c, h, w = net.input_shape
    lines = [f"{net.name}: one training step in {dtype}, batch {batch_size}x{c}x{h}x{w}, cross-entropy, "
             f"SGD lr {lr:g}; {source}; dropout and drop-path off"]  # fmt: skip
    for r in reports:
        lines.append(f"{r.reference} vs {r.other} (tolerance {r.tolerance:g})")
        lines.append(f"  {'quantity':<15}{'compared':>9}{'worst':>12}  worst block")
        for q in r.quantities:
            lines.append(f"  {q.name:<15}{q.count:>9}{q.worst:>12.3g}  {q.worst_block}")
        for q in r.quantities:
            lines += [f"UNMATCHED {q.name}: {problem}" for problem in q.unmatched]
            if q.first_divergence is not None:
                lines.append(f"MISMATCH {r.reference} vs {r.other}: {q.name} first diverge at {q.first_divergence}")
    if all(r.ok for r in reports):
        lines.append("the training step agrees in every backend")
    return "\n".join(lines) + "\n"
