"""Compile time of a spec as a ratio to `python -c "import torch"`, measured alternately.

Both are whole processes timed by wall clock, interleaved round by round so machine load hits
both alike; the medians are compared. Three floors are printed: importing lark, pydantic and
jinja2 (`import pydantic` alone is lazy), the same with pydantic's BaseModel actually loaded, and
with one model class defined, which any pydantic IR needs. The compile runs as users run it: the
installed `archdsl` script. Goal: compile / import torch <= 0.15. Then one compile under
`python -X importtime`: its import time by package (self times, which add up to the whole) and
archdsl's slowest modules to import.

    python benchmarks/compile_speed.py [--spec specs/mnv4_conv_l.arch] [--rounds 15]
"""

from __future__ import annotations

import argparse
import collections
import compileall
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# The floor of any pydantic IR: a model class with a field loads pydantic.fields, its types and
# annotated_types, which a bare `from pydantic import BaseModel` leaves out.
_ONE_MODEL = """import lark, jinja2
from pydantic import BaseModel, ConfigDict
class Node(BaseModel):  # its schema built when first validated, as the IR's
    model_config = ConfigDict(defer_build=True)
    x: int = 0
"""


def _archdsl() -> list[str]:
    """The command as users run it: the installed `archdsl` script (no runpy), else `-m`."""
    script = Path(sys.executable).parent / "archdsl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "archdsl"]


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def import_breakdown(args: list[str], modules: int = 8) -> str:
    """Import time of one `archdsl ARGS` by top-level package, and its slowest archdsl modules."""
    cmd = [sys.executable, "-X", "importtime", "-m", "archdsl", *args]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    by_package: collections.Counter[str] = collections.Counter()
    own: list[tuple[int, str]] = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        by_package[name.split(".")[0]] += int(self_us)
        if name.startswith("archdsl"):
            own.append((int(self_us), name))
    total = sum(by_package.values())
    lines = [
        f"import time of one compile (python -X importtime -m archdsl, which inflates it): {total / 1000:.1f} ms,"
        " by package (self times):"
    ]
    for package, us in by_package.most_common(10):
        lines.append(f"  {package:<22} {us / 1000:7.1f} ms  {us / total:6.1%}")
    rest = total - sum(us for _, us in by_package.most_common(10))
    lines.append(f"  {'(the rest)':<22} {rest / 1000:7.1f} ms  {rest / total:6.1%}")
    lines.append(f"archdsl's {modules} slowest modules to import (self):")
    lines += [f"  {name:<40} {us / 1000:6.1f} ms" for us, name in sorted(own, reverse=True)[:modules]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/mnv4_conv_l.arch")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "compile": [*_archdsl(), "compile", args.spec, "--backend", "torch"],
        "import torch": [sys.executable, "-c", "import torch"],
        "floor": [sys.executable, "-c", "import lark, pydantic, jinja2"],
        "floor+BaseModel": [sys.executable, "-c", "import lark, jinja2; from pydantic import BaseModel"],
        "floor+one model": [sys.executable, "-c", _ONE_MODEL],
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
    for floor in ("floor", "floor+BaseModel", "floor+one model"):
        print(f"ratio {floor} / import torch: {med[floor] / med['import torch']:.3f}")
    print(import_breakdown(["compile", args.spec, "--backend", "torch"]))


if __name__ == "__main__":
    main()
