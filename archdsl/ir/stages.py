"""The shape every spec-to-spec pass shares: rewrite each stage, record the pass as applied."""

from __future__ import annotations

from typing import Any, Callable

from .nodes import NetworkSpec, StageSpec


def map_stages(spec: NetworkSpec, name: str, body: Callable[[StageSpec, int | None], StageSpec],
               **update: Any) -> NetworkSpec:  # fmt: skip
    """`spec` with `body(stage, index)` applied to the stem and head (index None) and to each body
    stage, and `name` recorded in `applied`; unchanged if the pass already ran."""
    if name in spec.applied:
        return spec
    return spec.model_copy(
        update={
            "stem": body(spec.stem, None),
            "stages": tuple(body(s, i) for i, s in enumerate(spec.stages)),
            "head": body(spec.head, None),
            "applied": (*spec.applied, name),
            **update,
        }
    )
