"""The front as a picture: every candidate on the first two objectives (those that miss a
constraint faded), the Pareto front drawn through its members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.roofline_plot import figure_bytes, pyplot_agg
from ..atomic import write_atomic
from ..errors import UsageError


def check_plot(objectives: list[Any], path: Path) -> None:
    """What --plot needs, before anything is evaluated: two objectives, a format, matplotlib."""
    if len(objectives) < 2:
        raise UsageError("--plot draws two objectives", hint="give two --objective, e.g. min:latency@P and max:macs")
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: name it .png or .svg")
    try:
        pyplot_agg()
    except ImportError:
        raise UsageError("--plot needs matplotlib", hint="pip install 'archdsl[plot]'") from None


def plot_front(rows: list[dict[str, Any]], objectives: list[Any], path: Path, title: str) -> None:
    check_plot(objectives, path)
    plt = pyplot_agg()
    fmt = path.suffix.lower().lstrip(".")
    x, y = objectives[0].name, objectives[1].name
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for group, style in (("infeasible", dict(c="0.8", marker="x", s=12, label="misses a constraint")),
                         ("feasible", dict(c="tab:blue", s=10, alpha=0.6, label="candidate"))):  # fmt: skip
        chosen = [r for r in rows if (r["feasible"] if group == "feasible" else not r["feasible"] and not r["error"])]
        if chosen:
            ax.scatter([r[x] for r in chosen], [r[y] for r in chosen], **style)
    members = sorted((r for r in rows if r["front"]), key=lambda r: r[x])
    if members:
        ax.plot([r[x] for r in members], [r[y] for r in members], "o-", c="tab:red", ms=5, label="Pareto front")
    ax.set_xlabel(f"{x} ({'max' if objectives[0].maximize else 'min'})")
    ax.set_ylabel(f"{y} ({'max' if objectives[1].maximize else 'min'})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    data = figure_bytes(fig, fmt)
    plt.close(fig)
    write_atomic(path, data)
