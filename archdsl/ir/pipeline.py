"""The passes that resolve a `NetworkSpec` into a `Network`, in order.

Each pass is a pure function; the spec-to-spec passes record their name in `applied`, so
running one twice changes nothing. `build_blocks` is the last step and builds the resolved IR.
"""

from __future__ import annotations

from typing import Callable

from .apply_defaults import apply_defaults
from .bounds import Totals
from .build_blocks import build_blocks
from .expand_repeats import expand_repeats
from .network import Network
from .nodes import NetworkSpec
from .output_stride import output_stride
from .scale_width import scale_width
from .stochastic_depth import stochastic_depth

PIPELINE: tuple[Callable[[NetworkSpec], NetworkSpec], ...] = (
    apply_defaults,
    expand_repeats,
    output_stride,
    stochastic_depth,
    scale_width,
)


def resolve(spec: NetworkSpec, source: str = "", totals: Totals | None = None) -> Network:
    """The resolved network; `totals`, when given, ends holding its whole cost (the resource
    bounds add up every layer's as they check it: a sweep reads it there instead of again)."""
    for step in PIPELINE:
        spec = step(spec)
    return build_blocks(spec, source, totals)
