"""Evaluate candidates of a space, wherever a worker runs: in this process, in a local pool, or
as a Ray task on another machine. What travels is plain data: the spec's text and those of the
files it imports (a `Source`), the metric names and the candidates' bindings; each worker parses
the space once and keeps it for every batch it is given.

A candidate that does not build (channels that do not fit, a block without a residual where
one is needed) is a row with its error, not a failed sweep.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ArchError, ArchErrors
from ..language.loader import Definitions, SpecFiles, load_text
from ..language.syntax import Import
from .space import Space

# Columns of a results row that are neither a dimension nor a metric.
RESERVED = ("index", "hash", "feasible", "front", "error", "evaluate")


@dataclass(frozen=True)
class Source:
    """A space as text: the main file, every file it imports (by resolved path), the root imports
    may reach, and the network."""

    file: str
    texts: tuple[tuple[str, str], ...]  # (resolved path, text), the main file first
    root: str
    network: str | None

    @classmethod
    def of(cls, defs: Definitions, root: Path, network: str | None) -> Source:
        paths = [str(Path(defs.main.file).resolve()), *map(str, defs.imported)]
        return cls(defs.main.file, tuple(zip(paths, defs.sources, strict=True)), str(root.resolve()), network)

    def load(self) -> Space:
        texts = dict(self.texts)
        main, text = self.texts[0]  # by its resolved path: a worker's working directory is not ours
        return Space(load_text(text, main, Path(self.root), _Snapshot(texts)), self.network)


class _Snapshot(SpecFiles):
    """Imports read from the texts the driver sent, never from this machine's disk."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def read(self, path: Path, imported: Import) -> str:
        return self.texts[str(path)]

    def exists(self, path: Path) -> bool:
        return str(path) in self.texts


@dataclass(frozen=True)
class Job:
    """What every batch of one sweep shares."""

    source: Source
    metrics: tuple[str, ...]
    evaluate: str | None = None  # MODULE:FUNCTION, the user's own metric


_loaded: dict[Job, tuple[Space, Callable[..., dict[str, float]], Callable[..., Any] | None]] = {}


def run_batch(job: Job, bindings: list[tuple[int, ...]]) -> list[dict[str, Any]]:
    """One row per binding: its hash, its metrics (NaN where it did not build) and its error."""
    if job not in _loaded:
        from .metrics import measure

        _loaded.clear()  # one sweep per worker at a time
        _loaded[job] = (job.source.load(), measure(job.metrics), user_function(job.evaluate) if job.evaluate else None)
    space, measure_net, user = _loaded[job]
    return [_row(space, b, measure_net, user) for b in bindings]


def _row(space: Space, binding: tuple[int, ...], measure_net: Callable[..., dict[str, float]],
         user: Callable[..., Any] | None) -> dict[str, Any]:  # fmt: skip
    from ..ir.bounds import Totals
    from ..ir.pipeline import resolve

    candidate = space.bound(binding)
    row: dict[str, Any] = {"hash": candidate.hash, "error": ""}
    totals = Totals()
    try:
        net = resolve(candidate.lower(), space.defs.main.file, totals)
        row |= measure_net(net, totals.cost)
    except (ArchError, ArchErrors) as e:
        row["error"] = (e.errors[0] if isinstance(e, ArchErrors) else e).message
        return row
    if user is not None:
        taken = {*RESERVED, *row, *(d.name for d in space.dimensions)}
        try:
            row |= _user_metrics(user, candidate.text, candidate.hash, net, taken)
        except (ArchError, ArchErrors) as e:  # the PyTorch code for it (a backend's limits)
            row["error"] = "--evaluate: " + (e.errors[0] if isinstance(e, ArchErrors) else e).message
    return row


def user_function(target: str) -> Callable[..., Any]:
    """`MODULE:FUNCTION`, imported (the working directory first on the path, as `python -m`)."""
    import sys

    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise ArchError(f"--evaluate {target!r}: expected MODULE:FUNCTION", hint="e.g. --evaluate proxy:train_briefly")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        fn = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise ArchError(f"--evaluate {target!r}: {e}") from None
    if not callable(fn):
        raise ArchError(f"--evaluate {target!r} is not a function")
    return fn  # type: ignore[no-any-return]


def _user_metrics(fn: Callable[..., Any], spec: str, digest: str, net: Any, taken: set[str]) -> dict[str, Any]:
    """The user's metrics of a candidate, called with its spec text and its generated PyTorch model
    (random weights, as `build_model()` gives them, seeded by the candidate's hash: the same
    candidate gets the same model wherever and whenever it runs); numbers only, under names of
    their own (not a dimension's or another column's)."""
    import torch

    from ..codegen.registry import get_backend
    from ..runtimes.runners import load_module

    module = load_module(get_backend("torch").emit(net), f"archdsl_sweep_{net.name}")
    torch.manual_seed(int(digest, 16))
    model = module.build_model()
    try:
        got = fn(spec=spec, model=model)
    except Exception as e:  # the user's code: its failure is this candidate's, said in its row
        return {"error": f"--evaluate: {type(e).__name__}: {e}"}
    if not isinstance(got, dict) or not all(isinstance(k, str) for k in got):
        return {"error": f"--evaluate returned {type(got).__name__}, not a dict of metrics"}
    clash = sorted(k for k in got if k in taken)
    if clash:
        return {"error": f"--evaluate returned '{clash[0]}', which names a column already (a metric or a dimension)"}
    return {k: float(v) if isinstance(v, (int, float)) else math.nan for k, v in got.items()}
