"""The search-space commands: `archdsl space` (its dimensions and size) and `archdsl sample`
(one candidate as a spec of its own)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..atomic import check_output, write_atomic
from .arg_types import seed

COMMANDS = ("space", "sample")


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
    out = check_output(args.output, [Path(args.spec)])
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
    lines = [f"# {space.network}: candidate {index:,} of {space.size:,} of {spec} (archdsl sample {how})"]
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
