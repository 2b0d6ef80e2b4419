"""Rows of blocks and their repetition, shared by template expansion and the depth pass.

A row is one block statement, or the blocks of one template use, which repeat as a unit:
the first copy keeps its strides, later copies run at stride 1; a feature endpoint (`out`) is
the last copy's output.
"""

from __future__ import annotations

from ..errors import ArchError
from ..ir.nodes import BlockSpec
from ..limits import MAX_BLOCKS


def block_rows(blocks: tuple[BlockSpec, ...] | list[BlockSpec]) -> list[list[BlockSpec]]:
    rows: list[list[BlockSpec]] = []
    for b in blocks:
        if rows and b.group is not None and rows[-1][0].group == b.group:
            rows[-1].append(b)
        else:
            rows.append([b])
    return rows


def repeat_rows(rows: list[list[BlockSpec]], counts: list[int]) -> list[BlockSpec]:
    """Each row `count` times, as plain blocks (repeat 1, no group). Counted before anything is
    built: nested repeats multiply (x256 in x256 in x256 would be 16.7 M blocks)."""
    check_block_count(sum(len(row) * n for row, n in zip(rows, counts, strict=True)),
                      max(zip(rows, counts, strict=True), key=lambda rn: len(rn[0]) * rn[1], default=([], 0))[0])  # fmt: skip
    out: list[BlockSpec] = []
    for row, n in zip(rows, counts, strict=True):
        if n == 0:  # x0: absent (a family member without it)
            continue
        # an endpoint (`out`) is the output of the row's last copy
        first = [b.model_copy(update={"repeat": 1, "group": None, "endpoint": b.endpoint and n == 1}) for b in row]
        out += first
        for i in range(1, n):
            last = i == n - 1
            out += [
                c.model_copy(update={"stride": 1, "endpoint": b.endpoint and last})
                for b, c in zip(row, first, strict=True)
            ]
    return out


def check_block_count(total: int, culprit: list[BlockSpec]) -> None:
    """A located error when expanding would give more than MAX_BLOCKS blocks; `culprit` is the
    row that contributes most."""
    if total > MAX_BLOCKS:
        span = culprit[0].at("x") if culprit else None
        raise ArchError(
            f"the network would expand to {total:,} blocks; archdsl's limit is {MAX_BLOCKS:,}",
            span,
            "lower a repeat count (xN), a template's repeats, or the depth multiplier",
        )
