"""Expand `xN` repeats into copies, after scaling each stage's depth by the depth multiplier.

A row is one block statement, or all the blocks of one template use, which repeat as a unit.
Only the first copy of a row keeps its stride. With `fix_first_last`, the first and last body
stages keep their depth (EfficientNet-Lite).
"""

from __future__ import annotations

from ..errors import ArchError
from ..language.repeats import block_rows, check_block_count, repeat_rows
from .nodes import NetworkSpec, StageSpec
from .rounding import scale_depth
from .stages import map_stages

NAME = "expand_repeats"


def _expand(stage: StageSpec, multiplier: float) -> StageSpec:
    rows = block_rows(stage.blocks)
    repeats = [row[0].repeat for row in rows]
    if multiplier != 1.0:
        repeats = scale_depth(repeats, multiplier)
    blocks = tuple(repeat_rows(rows, repeats))
    if rows and not blocks:
        raise ArchError(f"every block of '{stage.name}' repeats x0: it would have no blocks", stage.span,
                        "give one of its blocks a repeat count of 1 or more, or leave the stage out")  # fmt: skip
    return stage.model_copy(update={"blocks": blocks})


def expand_repeats(spec: NetworkSpec) -> NetworkSpec:
    last = len(spec.stages) - 1
    total = 0  # blocks so far: each stage is bounded on its own, and the network as a whole

    def multiplier(index: int | None) -> float:
        fixed = index is None or (spec.depth.fix_first_last and index in (0, last))  # stem, head: never
        return 1.0 if fixed else spec.depth.multiplier

    def expand(stage: StageSpec, index: int | None) -> StageSpec:
        nonlocal total
        out = _expand(stage, multiplier(index))
        total += len(out.blocks)
        check_block_count(total, list(out.blocks))
        return out

    return map_stages(spec, NAME, expand)
