"""Apply the width multiplier (alpha) to every block's channels and the resolution multiplier
(rho) or explicit resolution to the input.

Channels round with make_divisible(c * alpha) even at alpha 1.0, as the reference builders
do; blocks marked `fixed` keep their channels.
"""

from __future__ import annotations

from .nodes import BlockSpec, NetworkSpec, StageSpec
from .rounding import make_divisible
from .stages import map_stages

NAME = "scale_width"


def _scale_stage(stage: StageSpec, spec: NetworkSpec) -> StageSpec:
    m, r = spec.width.multiplier, spec.width.rounding

    def scale(c: int | None) -> int | None:
        return None if c is None else make_divisible(c * m, r.divisor, r.round_limit)

    def block(b: BlockSpec) -> BlockSpec:
        if b.fixed:
            return b
        return b.model_copy(update={"out": scale(b.out), "mid": scale(b.mid)})

    return stage.model_copy(update={"blocks": tuple(block(b) for b in stage.blocks)})


def scale_width(spec: NetworkSpec) -> NetworkSpec:
    h, w = spec.resolution or (round(spec.input_hw[0] * spec.rho), round(spec.input_hw[1] * spec.rho))
    return map_stages(spec, NAME, lambda stage, _: _scale_stage(stage, spec), input_hw=(h, w), rho=1.0, resolution=None)
