"""What every backend generates for a network with feature endpoints (`out`): the endpoints'
description (timm's `feature_info`), where each one is taken, and what a feature extractor
leaves out (everything after the last endpoint, the head included)."""

from __future__ import annotations

from dataclasses import dataclass

from ..blocks import kind_of
from ..ir.network import Block, Network, Stage
from .calls import literal_tuple
from .model_interface import sequence_call


@dataclass(frozen=True)
class Features:
    info: list[dict[str, object]]  # timm's feature_info: name, module, num_chs, reduction
    taken_after: dict[str, str]  # block path -> the endpoint its output is
    last: str  # the last endpoint's block path: a feature extractor returns after it
    pruned: tuple[str, ...]  # weight-name prefixes a feature extractor does not have
    torch_forward: list[str]  # the body of the PyTorch model's `forward_endpoints`
    torch_prune: list[str]  # the statements that drop what runs after the last endpoint

    @property
    def pruned_literal(self) -> str:
        return literal_tuple("FEATURES_PRUNED", self.pruned)


def marks(found: Features | None, path: str) -> dict[str, object]:
    """For the functional backends' templates: the endpoint block `path` gives (or None), and
    whether it is the last one (where a feature extractor returns)."""
    if found is None:
        return {"endpoint": None, "last_endpoint": False}
    return {"endpoint": found.taken_after.get(path), "last_endpoint": path == found.last}


def features(net: Network) -> Features | None:
    if not net.endpoints:
        return None
    info = [{"name": e.name, "module": e.path, "num_chs": e.channels, "reduction": e.reduction} for e in net.endpoints]
    taken = {e.path: e.name for e in net.endpoints}
    last = net.endpoints[-1].path
    stages = (net.stem, *net.stages)
    s, j = next((i, j) for i, st in enumerate(stages) for j, b in enumerate(st.blocks) if b.path == last)
    pruned = ["head."]
    pruned += [f"{st.blocks[m].path}." for st in stages[s : s + 1] for m in range(j + 1, len(st.blocks))]
    pruned += [f"{st.path}." for st in stages[s + 1 :]] if s else ["stages."]
    return Features(
        info, taken, last, tuple(pruned), _torch_forward(stages[: s + 1], taken), _torch_prune(s, j, stages)
    )


def _modules(index: int) -> tuple[str, str]:
    """The PyTorch module of stage `index` (0: the stem) and of its blocks."""
    if index == 0:
        return "self.stem", "self.stem"
    return f"self.stages[{index - 1}]", f"self.stages[{index - 1}].blocks"


def _torch_forward(stages: tuple[Stage, ...], taken: dict[str, str]) -> list[str]:
    lines = ["features = []"]
    for index, stage in enumerate(stages):
        whole, blocks = _modules(index)
        start, n = 0, len(stage.blocks)
        taps = [j for j, b in enumerate(stage.blocks) if b.path in taken]
        for j in [*taps, *([n - 1] if index < len(stages) - 1 and (not taps or taps[-1] < n - 1) else [])]:
            lines.append(
                f"x = {whole}(x)" if start == 0 and j == n - 1 else str(sequence_call(blocks, start, j + 1, n))
            )
            if stage.blocks[j].path in taken:
                value = "x[0]" if _gives_pair(stage.blocks[j]) else "x"  # a pair's first tensor: the map
                lines.append(f"features.append({value})  # {taken[stage.blocks[j].path]}")
            start = j + 1
    return [*lines, "return features"]


def _gives_pair(block: Block) -> bool:
    pair = kind_of(block).pair_maps(block)
    return pair is not None and pair[1].pair is not None


def _torch_prune(s: int, j: int, stages: tuple[Stage, ...]) -> list[str]:
    _, blocks = _modules(s)
    lines = ["del self.head"]
    if s == 0:
        lines.append("self.stages = nn.Sequential()")
    elif s < len(stages) - 1:
        lines.append(f"del self.stages[{s}:]")
    if j < len(stages[s].blocks) - 1:
        lines.append(f"del {blocks}[{j + 1}:]")
    return lines
