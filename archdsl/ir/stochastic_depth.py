"""Give every block its stochastic-depth rate and the classifier its dropout, from the nearest
`defaults` (the block's own option first). After `expand_repeats`, so that the linear schedule
counts the blocks that exist: with `drop_path R linear`, stage block i of N gets R x i / N, as
timm's `drop_path_rate` does (the first block 0); a plain `drop_path R` gives every stage block R.
The stem and head take no stochastic depth unless a block there asks for it."""

from __future__ import annotations

from .apply_defaults import merge
from .network import Network, Stage
from .nodes import BlockNode, BlockSpec, Defaults, NetworkSpec, StageSpec
from .stages import map_stages

NAME = "stochastic_depth"


def stochastic_depth(spec: NetworkSpec) -> NetworkSpec:
    starts, count = [], 0
    for stage in spec.stages:  # each stage's first global block index
        starts.append(count)
        count += len(stage.blocks)

    def stage_rates(stage: StageSpec, index: int | None) -> StageSpec:
        d = merge(spec.defaults, stage.defaults)
        assert isinstance(d, Defaults)

        def rate(i: int) -> float:
            if index is None or not d.drop_path:
                return 0.0
            return d.drop_path * (starts[index] + i) / count if d.drop_path_linear else d.drop_path

        def block(b: BlockSpec, i: int) -> BlockSpec:
            return b.model_copy(update={
                "drop_path": rate(i) if b.drop_path is None else b.drop_path,
                "dropout": (d.dropout or 0.0) if b.dropout is None else b.dropout,
            })  # fmt: skip

        return stage.model_copy(update={"blocks": tuple(block(b, i) for i, b in enumerate(stage.blocks))})

    return map_stages(spec, NAME, stage_rates)


def without_stochastic_layers(net: Network) -> Network:
    """`net` with every drop-path rate and dropout at 0: a training step that draws no random
    masks, so that two frameworks can be compared on it (`verify --train`)."""

    def quiet(block: BlockNode) -> BlockNode:
        update = {f: 0.0 for f in ("drop_path", "dropout") if getattr(block, f, 0.0)}
        return block.model_copy(update=update) if update else block

    def stage(s: Stage) -> Stage:
        return s.model_copy(update={"blocks": tuple(quiet(b) for b in s.blocks)})

    stages = {"stem": stage(net.stem), "stages": tuple(stage(s) for s in net.stages), "head": stage(net.head)}
    return net.model_copy(update=stages)
