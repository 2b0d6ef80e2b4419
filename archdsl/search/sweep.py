"""A sweep: evaluate candidates of a space (every one, a seeded sample, or those Optuna's NSGA-II
proposes), keep one row each in the results file, saved every few seconds and at the end, and
mark which meet the constraints and which are on the Pareto front of the objectives.

Rerun with the same results file, a sweep reuses every row whose candidate (by hash) is already
there with every metric asked for, and evaluates only the rest: an interrupted sweep resumes.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArchError, UsageError
from . import results
from .evaluate import RESERVED, Job
from .executors import Executor
from .metrics import ALWAYS, Constraint, Objective
from .pareto import front
from .space import Space

MAX_CANDIDATES = 100_000  # rows of one sweep: its results are held in memory and rewritten whole
_SAVE_EVERY = 2.0  # seconds between saves of a running sweep


@dataclass
class Sweep:
    space: Space
    job: Job
    output: Path
    constraints: list[Constraint] = field(default_factory=list)
    objectives: list[Objective] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # by hash, in the order evaluated
    reused: int = 0
    evaluated: int = 0
    _saved: float = 0.0
    _seen: int = 0  # candidates asked for so far: the place of the next one
    _place: dict[str, int] = field(default_factory=dict)  # hash -> its place in the results

    def __post_init__(self) -> None:
        dims = [d.name for d in self.space.dimensions]
        for name in dims:
            if name in RESERVED or name in self.job.metrics:
                raise UsageError(f"the dimension '{name}' has the name of a results column",
                                 hint="rename the named choice (let ...)")  # fmt: skip
        self.previous: dict[str, dict[str, Any]] = {}
        for r in results.read(self.output, tuple(dims)):
            if isinstance(r.get("hash"), str) and (kept := self._reusable(r)) is not None:
                self.previous[r["hash"]] = kept
        self._checked = False  # the objectives' and constraints' names, against a row that built
        if not self.objectives:
            chosen = [m for m in self.job.metrics if m not in ALWAYS] or ["macs", "params"]
            self.objectives = [Objective(m, False) for m in chosen]
        known = set(self.job.metrics) | {"error"}
        for name in [c.name for c in self.constraints] + [o.name for o in self.objectives]:
            if name not in known and self.job.evaluate is None:
                raise UsageError(f"'{name}' is not a metric of this sweep", hint="add --metric " + name)

    def _reusable(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """What a row of an earlier run gives this one: its hash, error and metrics, where it has
        every metric asked for and was evaluated by the same --evaluate (None otherwise)."""
        wanted = set(self.job.metrics)
        evaluate = row.get("evaluate") if isinstance(row.get("evaluate"), str) else ""
        if not wanted <= row.keys() or evaluate != (self.job.evaluate or ""):
            return None
        keep = wanted | ({k for k in row if k not in RESERVED} if self.job.evaluate else set())
        keep -= {d.name for d in self.space.dimensions}
        error = row.get("error")
        return {"hash": row["hash"], "error": error if isinstance(error, str) else "", **{k: row[k] for k in keep}}

    @property
    def columns(self) -> list[str]:
        dims = [d.name for d in self.space.dimensions]
        extra = sorted(
            {k for r in self.rows.values() for k in r} - {*RESERVED, *self.job.metrics, *dims}
        )  # user metrics
        evaluate = ["evaluate"] if self.job.evaluate else []
        return [*results.FIRST, *dims, *self.job.metrics, *extra, *evaluate, "feasible", "front", "error"]

    def run(self, executor: Executor, bindings: list[tuple[int, ...]], progress: Any = None) -> list[dict[str, Any]]:
        """Rows for `bindings`, in their order: reused where the results file has them."""
        got: dict[int, dict[str, Any]] = {}
        if self.previous:  # only a resumed sweep pays for hashing in this process
            for i, b in enumerate(bindings):
                row = self.previous.get(self.space.bound(b).hash)
                if row is not None:
                    got[i] = self._keep(i, bindings[i], dict(row))
        self.reused += len(got)
        pending = [i for i in range(len(bindings)) if i not in got]
        size = max(1, min(256, math.ceil(len(pending) / 32)))
        batches = [pending[k : k + size] for k in range(0, len(pending), size)]
        evaluated = executor.map(self.job, [[bindings[i] for i in b] for b in batches])
        for batch, rows in zip(batches, evaluated, strict=True):
            for i, row in zip(batch, rows, strict=True):
                got[i] = self._keep(i, bindings[i], row)
            self.evaluated += len(batch)
            if progress is not None:
                progress.update(len(batch))
            if time.monotonic() - self._saved > _SAVE_EVERY:
                self.save()
        self._seen += len(bindings)
        return [got[i] for i in range(len(bindings))]

    def _keep(self, i: int, binding: tuple[int, ...], row: dict[str, Any]) -> dict[str, Any]:
        """Keep a candidate's row (the first, where a search proposes one twice), at its place in
        the order candidates were asked for, whichever executor gave it and when."""
        if row["hash"] not in self.rows:
            row = {k: v for k, v in row.items() if k not in ("index", "feasible", "front")}
            evaluate = {"evaluate": self.job.evaluate} if self.job.evaluate else {}
            self.rows[row["hash"]] = {
                "index": self.space.index(binding),
                **self.space.labels(binding),
                **row,
                **evaluate,
            }
            self._place[row["hash"]] = self._seen + i
            if not self._checked and not row["error"]:
                self._check_names(row)
        return row

    def _check_names(self, row: dict[str, Any]) -> None:
        """The objectives and constraints name metrics a row has (with --evaluate, known only now)."""
        self._checked = True
        for name in [c.name for c in self.constraints] + [o.name for o in self.objectives]:
            if name not in row:
                metrics = ", ".join(k for k in row if k not in ("hash", "error"))
                raise UsageError(f"'{name}' is not a metric of this sweep", hint=f"its metrics: {metrics}")

    def save(self) -> None:
        rows = sorted(self.rows.values(), key=lambda r: self._place[r["hash"]])
        for row, feasible in zip(rows, self._feasible(rows), strict=True):
            row["feasible"] = feasible
        members = iter(front([self._point(r) for r in rows if r["feasible"]]))
        for row in rows:
            row["front"] = bool(next(members)) if row["feasible"] else False
        results.write(self.output, rows, self.columns)
        self._saved = time.monotonic()

    def _feasible(self, rows: list[dict[str, Any]]) -> list[bool]:
        return [not r.get("error") and all(not _nan(r.get(o.name)) for o in self.objectives)
                and all(c.violation(number(r, c.name)) <= 0 for c in self.constraints) for r in rows]  # fmt: skip

    def _point(self, row: dict[str, Any]) -> tuple[float, ...]:
        return tuple(-float(row[o.name]) if o.maximize else float(row[o.name]) for o in self.objectives)


def _nan(v: Any) -> bool:
    return not isinstance(v, (int, float)) or math.isnan(v)


def number(row: dict[str, Any], name: str) -> float:
    """A row's metric as a number; NaN where it has none (a candidate that did not build)."""
    v = row.get(name)
    return float(v) if isinstance(v, (int, float)) else math.nan


def grid(space: Space) -> list[tuple[int, ...]]:
    if space.size > MAX_CANDIDATES:
        raise UsageError(f"--all would evaluate {space.size:,} candidates (at most {MAX_CANDIDATES:,})",
                         hint="sample some (--samples N --seed S) or search (--search nsga2 --trials N)")  # fmt: skip
    return [space.binding(i) for i in range(space.size)]


def sampled(space: Space, count: int, seed: int) -> list[tuple[int, ...]]:
    """`count` different candidates drawn uniformly by `seed`, in the order drawn."""
    if count > MAX_CANDIDATES:
        raise UsageError(f"--samples {count:,}: at most {MAX_CANDIDATES:,}")
    rng, count = random.Random(seed), min(count, space.size)
    if space.size < 2**62:
        indices = rng.sample(range(space.size), count)
    else:  # beyond what `sample` takes: draws without a repeat (a repeat is all but impossible)
        chosen: dict[int, None] = {}
        while len(chosen) < count:
            chosen.setdefault(rng.randrange(space.size))
        indices = list(chosen)
    return [space.binding(i) for i in indices]


def nsga2(sweep: Sweep, executor: Executor, trials: int, seed: int, population: int,
          progress: Any = None) -> None:  # fmt: skip
    """Optuna's NSGA-II over the dimensions (each a categorical of its value indices), the
    constraints as Optuna's (a violation <= 0 is met), asked and told a generation at a time."""
    try:
        import optuna
    except ImportError:
        raise ArchError("--search nsga2 needs Optuna", hint="pip install 'archdsl[search]'") from None
    if trials > MAX_CANDIDATES:
        raise UsageError(f"--trials {trials:,}: at most {MAX_CANDIDATES:,}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    study = optuna.create_study(directions=["maximize" if o.maximize else "minimize" for o in sweep.objectives],
                                sampler=sampler)  # fmt: skip
    dims = sweep.space.dimensions
    space: dict[str, optuna.distributions.BaseDistribution] = {
        d.name: optuna.distributions.CategoricalDistribution(list(range(len(d.values)))) for d in dims
    }
    told = 0
    while told < trials:
        asked = [study.ask(space) for _ in range(min(population, trials - told))]
        rows = sweep.run(executor, [tuple(t.params[d.name] for d in dims) for t in asked], progress)
        for trial, row in zip(asked, rows, strict=True):
            values = [row.get(o.name, math.nan) for o in sweep.objectives]
            if row.get("error") or any(_nan(v) for v in values):
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            for c in sweep.constraints:  # met where <= 0
                trial.set_constraint(str(c), c.violation(number(row, c.name)))
            study.tell(trial, [float(v) for v in values])
        told += len(asked)


def summary(sweep: Sweep, seconds: float) -> str:
    rows = list(sweep.rows.values())
    rate = f", {sweep.evaluated / seconds:,.0f}/s" if sweep.evaluated and seconds > 0 else ""
    feasible = sum(r["feasible"] for r in rows)
    on = sum(r["front"] for r in rows)
    objectives = ", ".join(map(str, sweep.objectives))
    return (f"{len(rows):,} candidates ({sweep.evaluated:,} evaluated in {seconds:.1f} s{rate}, {sweep.reused:,} "
            f"reused); {feasible:,} feasible, {on:,} on the front of {objectives}; wrote {sweep.output}")  # fmt: skip


def progress_bar(total: int) -> Any:
    """A progress bar with rate and ETA on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="candidate", file=sys.stderr, smoothing=0.1)
