"""Sweep throughput: cost-only evaluation of candidates of a MobileNetV4-style UIB space around
MNv4-Conv-M (`spaces/mnv4_conv_m_uib.arch`), each bound, lowered, resolved and costed from the
space parsed once (no file read again, no code generated), measured in this process on one core
and on a local Ray cluster of `--cpus` CPUs started here, side by side on the same candidates.
Both executors are warmed first (every worker holding the parsed space), so the rates are of
evaluation, not of start-up; the two must give the same rows.

Goals (issue 12): >= 200 candidates / s / core in one process; the Ray cluster of 2 CPUs
>= 1.7x the single-process rate.

    python benchmarks/sweep_throughput.py [--candidates 3000] [--cpus 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.search.evaluate import Job, Source  # noqa: E402
from archdsl.search.executors import Inline, Ray  # noqa: E402
from archdsl.search.metrics import ALWAYS  # noqa: E402
from archdsl.search.space import Space  # noqa: E402
from archdsl.search.sweep import sampled  # noqa: E402

SPACE = ROOT / "spaces" / "mnv4_conv_m_uib.arch"


def rate(executor, job, bindings, batch: int) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    batches = [bindings[i : i + batch] for i in range(0, len(bindings), batch)]
    start = time.perf_counter()
    rows = [r for rows in executor.map(job, batches) for r in rows]
    return len(bindings) / (time.perf_counter() - start), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=3000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    space = Space.load(SPACE)
    job = Job(Source.of(space.defs, ROOT, None), ALWAYS)
    bindings = sampled(space, args.candidates * (args.rounds + 1), seed=0)
    print(f"{SPACE.relative_to(ROOT)}: {space.size:,} candidates, {len(space.dimensions)} dimensions")
    inline, ray = Inline(), Ray(None, args.cpus)
    per_task = max(1, args.candidates // (4 * args.cpus))  # a few tasks per CPU: balanced, little overhead
    rate(inline, job, bindings[: 2 * per_task], per_task)  # warm: the space parsed in each
    rate(ray, job, bindings[: 4 * args.cpus * per_task], per_task)
    here, there = [], []
    try:
        for r in range(1, args.rounds + 1):  # the same candidates, in turn, so both see the same load
            chunk = bindings[r * args.candidates : (r + 1) * args.candidates]
            a, rows_here = rate(inline, job, chunk, per_task)
            b, rows_there = rate(ray, job, chunk, per_task)
            assert rows_here == rows_there, "the executors disagree"
            here.append(a)
            there.append(b)
            print(f"round {r}: one process {a:,.0f}/s, Ray ({args.cpus} CPUs) {b:,.0f}/s, {b / a:.2f}x")
    finally:
        ray.close()
    a, b = statistics.median(here), statistics.median(there)
    print(f"\nmedian of {args.rounds} rounds of {args.candidates:,} candidates (cost only):")
    print(f"  one process:          {a:8,.0f} candidates/s   (goal >= 200 / s / core)")
    print(f"  Ray, {args.cpus} CPUs (local): {b:8,.0f} candidates/s   {b / a:.2f}x one process (goal >= 1.7x)")


if __name__ == "__main__":
    main()
