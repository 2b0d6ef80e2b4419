"""Expand `xN` repeats into copies, after scaling each stage's depth by the depth multiplier.

A row is one block statement, or all the blocks of one template use, which repeat as a unit.
Only the first copy of a row keeps its stride. With `fix_first_last`, the first and last body
stages keep their depth (EfficientNet-Lite).
"""

from __future__ import annotations

from ..ir import NetworkSpec, StageSpec
from ..repeats import block_rows, repeat_rows
from ..rounding import scale_depth

NAME = "expand_repeats"


def _expand(stage: StageSpec, multiplier: float) -> StageSpec:
    rows = block_rows(stage.blocks)
    repeats = [row[0].repeat for row in rows]
    if multiplier != 1.0:
        repeats = scale_depth(repeats, multiplier)
    return stage.model_copy(update={"blocks": tuple(repeat_rows(rows, repeats))})


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
