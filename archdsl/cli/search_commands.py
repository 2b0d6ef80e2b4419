"""The search-space commands: `archdsl space` (its dimensions and size), `archdsl sample` (one
candidate as a spec of its own) and `archdsl sweep` (candidates evaluated, their Pareto front)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..atomic import check_output, write_atomic
from ..errors import ArchError, UsageError
from .arg_types import count, seed

COMMANDS = ("space", "sample", "sweep")


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("space", help="the dimensions of a search space and its exact size")
    _spec_arguments(c)
    c.add_argument("--json", action="store_true", help="machine-readable output")

    c = sub.add_parser("sample", help="write one candidate of a search space as a spec of its own")
    _spec_arguments(c)
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--index", type=_index, help="the candidate's index (0 to size - 1; the space lists them)")
    which.add_argument("--seed", type=seed, help="a candidate drawn uniformly by this seed")
    c.add_argument("-o", "--output", required=True, help="the candidate's spec (written atomically; - for stdout)")

    c = sub.add_parser("sweep", help="evaluate candidates of a search space and mark their Pareto front")
    _spec_arguments(c)
    c.add_argument("--metric", action="append", default=[], metavar="M",
                   help="params, macs, weight_bytes, activation_bytes (always measured), roofline@RIDGE, latency@PROFILE.json")  # fmt: skip
    c.add_argument(
        "--constraint", action="append", default=[], metavar="C", help="NAME<=VALUE or NAME>=VALUE, e.g. macs<=300e6"
    )
    c.add_argument("--objective", action="append", default=[], metavar="O",
                   help="min:NAME or max:NAME (default: min of each --metric)")  # fmt: skip
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every candidate, in index order")
    which.add_argument("--samples", type=count(1, 10**9), metavar="N", help="N different candidates drawn by --seed")
    which.add_argument(
        "--search", choices=("nsga2",), help="multi-objective search with Optuna's NSGA-II (with --trials)"
    )
    c.add_argument("--trials", type=count(1, 10**9), help="--search: candidates to evaluate")
    c.add_argument(
        "--population", type=count(2, 10_000), default=50, help="--search: NSGA-II's population (default 50)"
    )
    c.add_argument("--seed", type=seed, default=0, help="of --samples and --search (default 0)")
    c.add_argument("--evaluate", metavar="MODULE:FUNCTION",
                   help="your own metric: called with spec= (the candidate's text) and model= (its PyTorch model), returns a dict")  # fmt: skip
    c.add_argument("-o", "--output", required=True, help="results: .csv, .jsonl or .parquet (rerun to resume)")
    c.add_argument(
        "--front-specs", metavar="DIR", help="write each candidate of the front as DIR/<network>-<hash>.arch"
    )
    c.add_argument("--plot", metavar="FILE", help="the front on the first two objectives (.png or .svg)")
    c.add_argument("--workers", type=count(1, 1024), help="local worker processes (default: one per CPU)")
    c.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray: a new local cluster, `auto` (this machine's), or ADDRESS")  # fmt: skip


def _spec_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument("spec", help="spec file (.arch) with choices such as k{3,5}")
    c.add_argument("--network", help="network to use when the file defines several")
    c.add_argument("--import-root", type=Path, help="directory imports may reach (default: the project root)")


def _index(text: str) -> int:
    try:
        value = int(text.replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"an index is at least 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..search.space import Space

    space = Space.load(args.spec, args.network, args.import_root)
    space.check()
    if args.command == "space":
        return _show(space, args.json)
    if args.command == "sweep":
        return _sweep(space, args)
    out = check_output(args.output, [Path(args.spec), *space.defs.imported])
    index = args.index if args.index is not None else space.seeded(args.seed)
    candidate = space.candidate(index)
    how = f"--index {index}" if args.seed is None else f"--seed {args.seed}"
    write_atomic(out, header(space, candidate.binding, args.spec, how) + candidate.text)
    if str(out) != "/dev/stdout":
        print(f"wrote {out}: candidate {index:,} of {space.size:,} (hash {candidate.hash})", file=sys.stderr)
    return 0


def header(space: Any, binding: tuple[int, ...], spec: str, how: str) -> str:
    """The comment that opens a candidate's spec: where it comes from and its choices."""
    index = space.index(binding)
    choices = " ".join(f"{k}={v}" for k, v in space.labels(binding).items())
    shown = spec if spec.isprintable() else ascii(spec)  # a path is the user's text: one comment line
    lines = [f"# {space.network}: candidate {index:,} of {space.size:,} of {shown} (archdsl sample {how})"]
    lines += textwrap.wrap(choices, 98, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
    return "\n".join(lines) + "\n\n"


def _show(space: Any, as_json: bool) -> int:
    dims = space.dimensions
    if as_json:
        rows = [{"name": d.name, "values": list(d.labels), "at": f"{d.span.file}:{d.span.line}:{d.span.col}"}
                for d in dims]  # fmt: skip
        sys.stdout.write(
            json.dumps({"network": space.network, "size": space.size, "dimensions": rows}, indent=2) + "\n"
        )
        return 0
    about = f" (about {float(space.size):.3g})" if space.size >= 10**12 else ""
    candidates = f"{space.size:,} candidate{'s' * (space.size != 1)}{about}"
    print(f"{space.network}: {candidates}, {len(dims)} dimension{'s' * (len(dims) != 1)}")
    width = max((len(d.name) for d in dims), default=0)
    for d in dims:
        print(
            f"  {d.name:<{width}}  {len(d.values):>4}  {','.join(d.labels):<24}  {d.span.file}:{d.span.line}:{d.span.col}"
        )
    return 0


def _sweep(space: Any, args: argparse.Namespace) -> int:
    import time

    from ..language.loader import project_root
    from ..search import sweep as sweeps
    from ..search.evaluate import Job, Source
    from ..search.executors import executor
    from ..search.metrics import ALWAYS, Constraint, Objective, parse_metric

    if (args.search is None) != (args.trials is None):
        raise UsageError("--trials goes with --search nsga2", hint="--search nsga2 --trials 500")
    metrics = tuple(dict.fromkeys([*ALWAYS, *map(parse_metric, args.metric)]))
    inputs = [Path(args.spec), *space.defs.imported]
    out = check_output(args.output, inputs)
    plot = check_output(args.plot, inputs) if args.plot else None
    root = args.import_root or project_root(Path(args.spec).resolve().parent)
    job = Job(Source.of(space.defs, root, args.network), metrics, args.evaluate)
    sweep = sweeps.Sweep(space, job, out, [Constraint.parse(c) for c in args.constraint],
                         [Objective.parse(o) for o in args.objective])  # fmt: skip
    if plot is not None:  # before the sweep, not after it
        from ..search.plot import check_plot

        check_plot(sweep.objectives, plot)
    if args.evaluate:  # imported here first: a wrong name fails now, not in every worker
        from ..search.evaluate import user_function

        user_function(args.evaluate)
    bindings = (
        None if args.search else (sweeps.grid(space) if args.all else sweeps.sampled(space, args.samples, args.seed))
    )
    progress = sweeps.progress_bar(args.trials or len(bindings or ()))
    run = executor(args.workers, args.ray, args.ray is not None)
    start = time.monotonic()
    try:
        if bindings is None:
            sweeps.nsga2(sweep, run, args.trials, args.seed, args.population, progress)
        else:
            sweep.run(run, bindings, progress)
    finally:  # Ctrl-C too: what was evaluated is saved, and the next run resumes from it
        sweep.save()
        run.close()
        if progress is not None:
            progress.close()
    front = [r for r in sweep.rows.values() if r["front"]]
    if args.front_specs:
        _front_specs(space, front, Path(args.front_specs), args.spec)
    if plot is not None:
        from ..search.plot import plot_front

        plot_front(
            list(sweep.rows.values()), sweep.objectives, plot, f"{space.network}: {len(sweep.rows):,} candidates"
        )
    print(sweeps.summary(sweep, time.monotonic() - start), file=sys.stderr)
    return 0


def _front_specs(space: Any, front: list[dict[str, Any]], folder: Path, spec: str) -> None:
    """Each front member as a spec of its own; a file there that is not that candidate stays."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in front:
        binding = space.binding(int(row["index"]))
        candidate = space.bound(binding)
        path = folder / f"{space.network}-{candidate.hash}.arch"
        text = header(space, binding, spec, f"--index {row['index']}") + candidate.text
        if path.exists() and path.read_text(encoding="utf-8", errors="replace") != text:
            raise ArchError(
                f"refusing to replace {path}: it is not this candidate's spec", hint="choose another --front-specs"
            )
        write_atomic(check_output(str(path)), text)
