"""Expand `xN` repeats into copies, after scaling each stage's depth by the depth multiplier.

A row is one block statement, or all the blocks of one template use, which repeat as a unit.
Only the first copy of a row keeps its stride. With `fix_first_last`, the first and last body
stages keep their depth (EfficientNet-Lite).
"""

from __future__ import annotations

from ..ir import BlockSpec, NetworkSpec, StageSpec
from ..rounding import scale_depth

NAME = "expand_repeats"


def _rows(blocks: tuple[BlockSpec, ...]) -> list[list[BlockSpec]]:
    rows: list[list[BlockSpec]] = []
    for b in blocks:
        if rows and b.group is not None and rows[-1][0].group == b.group:
            rows[-1].append(b)
        else:
            rows.append([b])
    return rows


def _expand(stage: StageSpec, multiplier: float) -> StageSpec:
    rows = _rows(stage.blocks)
    repeats = [row[0].repeat for row in rows]
    if multiplier != 1.0:
        repeats = scale_depth(repeats, multiplier)
    blocks: list[BlockSpec] = []
    for row, n in zip(rows, repeats, strict=True):
        first = [b.model_copy(update={"repeat": 1}) for b in row]
        blocks += first
        for _ in range(n - 1):
            blocks += [b.model_copy(update={"stride": 1}) for b in first]
    return stage.model_copy(update={"blocks": tuple(blocks)})


def expand_repeats(spec: NetworkSpec) -> NetworkSpec:
    if NAME in spec.applied:
        return spec
    last = len(spec.stages) - 1
    stages = []
    for i, stage in enumerate(spec.stages):
        fixed = spec.depth.fix_first_last and i in (0, last)
        stages.append(_expand(stage, 1.0 if fixed else spec.depth.multiplier))
    return spec.model_copy(
        update={
            "stem": _expand(spec.stem, 1.0),
            "stages": tuple(stages),
            "head": _expand(spec.head, 1.0),
            "applied": (*spec.applied, NAME),
        }
    )
