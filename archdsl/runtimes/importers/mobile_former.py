"""Import a checkpoint of the Mobile-Former authors' PyTorch implementation (AAboys/MobileFormer,
`mobile_former.py` + `dna_blocks.py`) as canonical archdsl weights: `stem.0` / `stem.1`, the
`tokens` embedding, `features.N` numbered over all the stages (`local_global`, `global_block`,
`global_local`, `convK.0` / `convK.1`, `hyperK.hyper.0` / `.2`, or `conv.K` for the convs
alone), the network-level `local_global`, and `classifier.{conv,fc,classifier}`. Each block kind
names its layers there (`timm["mobile_former"]` in `archdsl/blocks/`); a block without a place
in the layout is an error naming it."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...analysis.layers import network_tensors
from ...blocks import kind_of
from ...blocks.kind import TimmPlace
from ...errors import ArchError
from ...ir.network import Network
from .checked import take

LAYOUT = "mobile_former"
_RENAMED = {"tokens": "weight"}  # our tensor name -> theirs where they differ (the tokens: an nn.Embedding)


def _modules(net: Network, state: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Our module path -> the authors', for every block with a place in their layout."""
    blocks = [b for s in net.stages for b in s.blocks]
    places = [(b, TimmPlace("stem", "stem")) for b in net.stem.blocks]
    places += [(b, TimmPlace(f"features.{n}", "stage")) for n, b in enumerate(blocks)]
    places += [(b, TimmPlace("classifier", "head")) for b in net.head.blocks]
    out: dict[str, str] = {}
    for block, place in places:
        names = kind_of(block).timm.get(LAYOUT)
        if names is None:
            raise ArchError(f"cannot import Mobile-Former weights into {net.name}: the authors' layout has no place "
                            f"for {block.path} (a {block.kind} block)", block.span,
                            "their layout: a stem conv, tokens, mf and mf_down blocks, mf_merge and a classifier")  # fmt: skip
        names(block, place, state, out)
    return out


def import_mobile_former(net: Network, state: Mapping[str, np.ndarray], dtypes: Mapping[str, str] | None = None,
                         name: str = "the checkpoint") -> dict[str, np.ndarray]:  # fmt: skip
    modules = _modules(net, state)
    tensors = network_tensors(net)
    names = {}
    for t in tensors:
        module, _, tensor = t.key.rpartition(".")
        names[t.key] = f"{modules.get(module, module)}.{_RENAMED.get(tensor, tensor)}"
    return take(net, tensors, names, state, dtypes, name, "Mobile-Former")
