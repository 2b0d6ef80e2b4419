"""Rows of blocks and their repetition, shared by template expansion and the depth pass.

A row is one block statement, or the blocks of one template use, which repeat as a unit:
the first copy keeps its strides, later copies run at stride 1.
"""

from __future__ import annotations

from .ir import BlockSpec


def block_rows(blocks: tuple[BlockSpec, ...] | list[BlockSpec]) -> list[list[BlockSpec]]:
    rows: list[list[BlockSpec]] = []
    for b in blocks:
        if rows and b.group is not None and rows[-1][0].group == b.group:
            rows[-1].append(b)
        else:
            rows.append([b])
    return rows


def repeat_rows(rows: list[list[BlockSpec]], counts: list[int]) -> list[BlockSpec]:
    """Each row `count` times, as plain blocks (repeat 1, no group)."""
    out: list[BlockSpec] = []
    for row, n in zip(rows, counts, strict=True):
        first = [b.model_copy(update={"repeat": 1, "group": None}) for b in row]
        out += first
        for _ in range(n - 1):
            out += [b.model_copy(update={"stride": 1}) for b in first]
    return out
