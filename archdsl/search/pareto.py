"""The Pareto front: the rows no other row dominates (at least as good on every objective and
better on one). Sorted on the objectives first, a row can only be dominated by one before it,
and only a front member needs to be compared: O(n x front)."""

from __future__ import annotations

from typing import Sequence


def front(points: Sequence[Sequence[float]]) -> list[bool]:
    """For points to minimise on every coordinate, which are on the front (ties: all of them)."""
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    members: list[int] = []
    on = [False] * len(points)
    for i in order:
        p = points[i]
        if not any(_dominates(points[j], p) for j in members):
            members.append(i)
            on[i] = True
    return on


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))
