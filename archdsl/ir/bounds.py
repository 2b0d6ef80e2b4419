"""Resource bounds of the resolved network, checked block by block as shapes are inferred:
every size a spec derives (kernels, channels after width scaling and rounding, attention
heads x dims, activation tensors, attention score matrices, total params and MACs) stays within
`archdsl.limits`, so that nothing downstream (init-weights, verify, export) can be made to
allocate terabytes. Errors point at the option that makes the size."""

from __future__ import annotations

from ..analysis.cost import Cost, layer_cost
from ..analysis.layers import block_output, layers_of
from ..errors import ArchError
from ..limits import MAX_ACTIVATION, MAX_CHANNELS, MAX_KERNEL, MAX_MACS, MAX_PARAMS
from .network import Block
from .nodes import BlockSpec

_HINT = "archdsl's limits are in docs/language.md (resource bounds)"


class Totals:
    """The running params and MACs of the blocks checked so far."""

    def __init__(self) -> None:
        self.cost = Cost()

    def check(self, block: Block, spec: BlockSpec) -> None:
        out_channels = block_output(block)[0]
        for layer in layers_of(block):
            _check_layer(layer, spec, out_channels)
            self.cost += layer_cost(layer)
        for what, value, limit in (("params", self.cost.params, MAX_PARAMS), ("MACs", self.cost.macs, MAX_MACS)):
            if value > limit:
                raise ArchError(
                    f"the network reaches {value:,} {what} at this block; the limit is {limit:,}", spec.span, _HINT
                )


def _check_layer(layer: object, spec: BlockSpec, out_channels: int) -> None:
    fields = vars(layer)  # an IR node's fields (a lookup of one it lacks through pydantic is slow)
    kernel = fields.get("kernel")
    if isinstance(kernel, int) and kernel > MAX_KERNEL:
        raise ArchError(f"kernel size {kernel:,} is over the limit of {MAX_KERNEL}", spec.at("k"), _HINT)
    for name in ("cin", "cout", "channels", "reduced"):
        channels = fields.get(name)
        if isinstance(channels, int) and channels > MAX_CHANNELS:
            # the option that makes them: an SE's width, the block's output, else its inner width
            culprit = (
                ("se",)
                if name == "reduced"
                else ("c",)
                if channels == out_channels
                else ("mid", "e", "h", "d", "value_dim")
            )
            raise ArchError(f"{channels:,} channels are over the limit of {MAX_CHANNELS:,}", spec.at(*culprit),
                            "channels come from c, e, mid or heads x dims, scaled by the width multiplier and rounded "
                            "to its divisor; " + _HINT)  # fmt: skip
    for elements, what in _tensors(layer):
        if elements > MAX_ACTIVATION:
            raise ArchError(f"{what} of {elements:,} elements is over the limit of {MAX_ACTIVATION:,}", spec.span,
                            "use a smaller input, fewer channels, or a stride earlier; " + _HINT)  # fmt: skip


def _tensors(layer: object) -> list[tuple[int, str]]:
    """(elements, what) of the activations a layer produces."""
    out = []
    fields = vars(layer)
    channels = fields.get("cout") or fields.get("channels")
    hw = fields.get("out_hw") or fields.get("hw")
    if isinstance(channels, int) and hw is not None:
        out.append((channels * hw[0] * hw[1], "an activation tensor"))
    queries, keys, heads = (fields.get(n) for n in ("queries", "keys", "heads"))
    if isinstance(queries, int) and isinstance(keys, int) and isinstance(heads, int):
        out.append((queries * keys * heads, "an attention score matrix"))
    return out
