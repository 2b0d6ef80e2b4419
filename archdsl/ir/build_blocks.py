"""Build every block's meaning: walk a prepared `NetworkSpec`'s blocks in order, carrying the
channels and spatial size, and elaborate each into its explicit layers (channels, paddings,
paths) with its kind's `build` (`archdsl/blocks/`); the result is the resolved `Network`."""

from __future__ import annotations

from ..blocks import kind_of
from ..blocks.build import Builder
from ..errors import ArchError, Span
from .bounds import Totals
from .geometry import FeatureMap
from .network import Endpoint, Network, Stage, is_dense
from .nodes import BlockSpec, Metadata, NetworkSpec, StageSpec, default_preprocess

# What to write where a block is given what it does not take: (what it was given, what it
# takes) -> the hint.
_HINTS = {
    ("octave", None): "give this block alpha=A to go on in octaves, or alpha=0 to merge the low-frequency part "
    "into one tensor",
    ("tokens", None): "a block beside Mobile-Former tokens is an mf or mf_down block; the head merges them "
    "with mf_merge",
    (None, "tokens"): "create the tokens first: `tokens count=N dim=D` in the stem, after its conv",
}


def check_input(b: BlockSpec, x: FeatureMap) -> None:
    """A located error where block `b` does not take what flows in (one tensor, or a pair)."""
    takes = kind_of(b).takes(b)
    if x.pair in takes:
        return
    given = {"octave": f"an octave pair ({x.show()})", "tokens": f"a map and its tokens ({x.show()})",
             None: f"one tensor ({x.show()})"}[x.pair]  # fmt: skip
    wanted = None if None in takes else sorted(t for t in takes if t)[0]
    what = {"octave": "an octave pair", "tokens": "a map and its tokens", None: "one tensor"}[wanted]
    raise ArchError(f"'{b.variant or b.kind}' takes {what}, and the block before it gives {given}", b.span,
                    _HINTS.get((x.pair, wanted), _HINTS.get((x.pair, None))))  # fmt: skip


def build_blocks(spec: NetworkSpec, source: str = "", totals: Totals | None = None) -> Network:
    builder = Builder(spec.width.rounding, spec.classes, spec.input_hw)
    x = FeatureMap(spec.in_channels, spec.input_hw)
    totals = totals if totals is not None else Totals()
    endpoints: list[Endpoint] = []
    endpoint_spans: dict[str, Span | None] = {}  # name -> where it is marked
    reduction = 1

    def stage(s: StageSpec, path: str, prefix: str) -> Stage:
        nonlocal x, reduction
        blocks = []
        for j, b in enumerate(s.blocks):
            if kind_of(b).predictions is not None and (s is not spec.head or len(s.blocks) > 1):  # a BlockSpec
                raise ArchError(f"'{b.kind}' is a dense-prediction head: the head's only block", b.span,
                                f"write it as `head {b.kind} ...`, after the stages whose endpoints it reads")  # fmt: skip
            check_input(b, x)
            block, x = kind_of(b).build(builder, b, f"{prefix}{j}", x)
            if block.span is None:  # where later stages (importers, folding) locate their errors
                block = block.model_copy(update={"span": b.span})
            totals.check(block, b)
            blocks.append(block)
            reduction *= b.stride
            last = j == len(s.blocks) - 1
            if b.endpoint or (s.endpoint and last):
                if s is spec.head or kind_of(b).flat_output:
                    raise ArchError("a feature endpoint is the output of a stem or stage block",
                                    b.at("out") if b.endpoint else s.span, "mark a block of the stem or a stage `out`")  # fmt: skip
                name = s.name if last else f"{s.name}_{j}"
                at = b.at("out") if b.endpoint else s.span
                if name in endpoint_spans:
                    raise ArchError(f"two feature endpoints are named '{name}'", at,
                                    f"rename the stage '{s.name}': an endpoint is named by its stage, or <stage>_<index>")  # fmt: skip
                endpoint_spans[name] = at
                endpoints.append(Endpoint.make(name=name, path=block.path, channels=x.c, hw=x.hw, reduction=reduction))
                builder.endpoints.append(endpoints[-1])
        return Stage.make(name=s.name, path=path, blocks=tuple(blocks), span=s.span)

    stem = stage(spec.stem, "stem", "stem.")
    stages = tuple(stage(s, f"stages.{i}", f"stages.{i}.blocks.") for i, s in enumerate(spec.stages))
    head = stage(spec.head, "head", "head.")
    if not head.blocks or not (kind_of(head.blocks[-1]).flat_output or is_dense(head.blocks[-1])):
        raise ArchError("the head must end with a classifier", spec.head.span,
                        "add 'classifier' as its last block (or make the head a dense one: ssdlite, lraspp)")  # fmt: skip
    net = Network.make(
        name=spec.name, source=source, source_hash=spec.source_hash,
        input_shape=(spec.in_channels, *spec.input_hw), classes=spec.classes, width=spec.width.multiplier,
        depth=spec.depth.multiplier, stem=stem, stages=stages, head=head, endpoints=tuple(endpoints),
        preprocess=spec.preprocess or default_preprocess(spec.in_channels), metadata=spec.metadata or Metadata.make(),
    )  # fmt: skip
    taken = {"image", *(name for name, _ in net.outputs())}  # the model's input and outputs
    for e in endpoints:
        if e.name in taken:
            raise ArchError(f"the feature endpoint '{e.name}' has the name of the model's input or an output",
                            endpoint_spans[e.name], f"rename the stage: '{e.name}' is taken")  # fmt: skip
    return net
