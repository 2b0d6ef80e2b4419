"""Summarise a mutmut run (`make mutation`, docs/mutation.md): per mutated module, the mutants,
how many were killed, survived, timed out or had no test, and the survival rate; then every
surviving mutant's name (`mutmut show NAME` prints its diff).

A mutant survives when the selected tests pass with it: "survived", and "no tests" (no selected
test calls the mutated function). The rate is surviving / checked, a timeout counting as killed.
Run from the repository root after `mutmut run`; it reads `mutants/**/*.py.meta`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

SURVIVING = ("survived", "no tests")


def main(root: Path = Path("mutants")) -> int:
    metas = sorted(root.glob("**/*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/: run `make mutation` first", file=sys.stderr)
        return 1
    rows, total, survivors = [], Counter[str](), []
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = Counter(status_by_exit_code[c] for c in codes.values())
        rows.append((str(meta.relative_to(root)).removesuffix(".meta"), counts))
        total += counts
        survivors += sorted(k for k, c in codes.items() if status_by_exit_code[c] in SURVIVING)
    rows.append(("overall", total))
    print(
        f"{'module':40} {'mutants':>7} {'checked':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no test':>7} "
        f"{'other':>5} {'survival':>8}"
    )
    for name, c in rows:
        n = sum(c.values())
        checked = n - c["not checked"] - c["skipped"]
        surviving = sum(c[s] for s in SURVIVING)
        other = checked - c["killed"] - c["timeout"] - surviving  # suspicious, segfault, interrupted
        rate = f"{100 * surviving / checked:.1f}%" if checked else "-"
        print(
            f"{name:40} {n:7} {checked:7} {c['killed']:6} {c['timeout']:7} {c['survived']:8} {c['no tests']:7} "
            f"{other:5} {rate:>8}"
        )
    if total["not checked"]:
        print(f"{total['not checked']} mutants not checked yet (an interrupted run: `mutmut run` goes on)")
    print(f"\n{len(survivors)} surviving mutants (`mutmut show NAME` prints the diff):")
    for name in survivors:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
