"""Compile time of a spec as a ratio to `python -c "import torch"`, measured alternately.

Both are whole processes timed by wall clock, interleaved round by round so machine load hits
both alike; the medians are compared. Two floors are printed: importing lark, pydantic and jinja2
(`import pydantic` alone is lazy), and the same with pydantic's BaseModel actually loaded, which
any pydantic IR needs. Goal: compile / import torch <= 0.15.

    python benchmarks/compile_speed.py [--spec specs/mnv4_conv_l.arch] [--rounds 15]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/mnv4_conv_l.arch")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "compile": [sys.executable, "-m", "archdsl", "compile", args.spec, "--backend", "torch"],
        "import torch": [sys.executable, "-c", "import torch"],
        "floor": [sys.executable, "-c", "import lark, pydantic, jinja2"],
        "floor+BaseModel": [sys.executable, "-c", "import lark, jinja2; from pydantic import BaseModel"],
    }
    # pip byte-compiles an installed package; an editable checkout under PYTHONDONTWRITEBYTECODE
    # would recompile every module on each run, so compile it once, as an install would.
    compileall.compile_dir(str(ROOT / "archdsl"), quiet=1)
    for cmd in commands.values():  # warm the file cache once
        _time(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, value in med.items():
        print(f"{name:>16}: median {value * 1000:7.1f} ms over {args.rounds} rounds")
    print(f"ratio compile / import torch: {med['compile'] / med['import torch']:.3f} (goal <= 0.15)")
    for floor in ("floor", "floor+BaseModel"):
        print(f"ratio {floor} / import torch: {med[floor] / med['import torch']:.3f}")


if __name__ == "__main__":
    main()
