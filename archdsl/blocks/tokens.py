"""`tokens count=N dim=D`: Mobile-Former's learned global tokens, created beside the map that
flows in (a stem block, after its conv): N vectors of D values, the same for every image, which
the `mf` blocks then carry with the map and the head merges in (`mobile_former.py`,
`mf_merge.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from ..errors import ArchError
from ..ir.geometry import FeatureMap
from ..ir.layers import Layer, Tokens
from ..ir.nodes import HW, BlockNode, BlockSpec
from .build import Builder
from .kind import BlockKind, TimmPlace, TorchPiece, Word

if TYPE_CHECKING:
    from ..codegen.steps import Step


class TokensBlock(BlockNode):
    """The map passes unchanged; `count` learned tokens of `dim` values join it."""

    kind: Literal["tokens"] = "tokens"
    path: str
    channels: int
    hw: HW
    count: int
    dim: int


def build(ctx: Builder, b: BlockSpec, path: str, x: FeatureMap) -> tuple[TokensBlock, FeatureMap]:
    if b.token_count is None or b.token_dim is None:
        raise ArchError("'tokens' needs how many and how wide", b.span, "write tokens count=<N> dim=<D>, e.g. "
                        "count=6 dim=192 (Mobile-Former-294M)")  # fmt: skip
    block = TokensBlock.make(path=path, channels=x.c, hw=x.hw, count=b.token_count, dim=b.token_dim)
    return block, FeatureMap(x.c, x.hw, tokens=(b.token_count, b.token_dim))


def layers(block: TokensBlock) -> Iterator[Layer]:
    yield Tokens(block.path, block.count, block.dim)


def steps(block: TokensBlock) -> list[Step]:
    from ..codegen.steps import BlockOutput, InitTokens

    return [InitTokens(block.path, block.count, block.dim), BlockOutput(f"{block.path}.tokens", "tokens"),
            BlockOutput(block.path)]  # fmt: skip


def torch_call(block: TokensBlock, t: Any) -> Any:
    return t.call("Tokens", ("", str(block.count)), ("", str(block.dim)), comment=t.cost_note(layers(block)))


def authors_names(block: TokensBlock, place: TimmPlace, state: Mapping[str, Any], out: dict[str, str]) -> None:
    """The authors' `tokens` (an nn.Embedding: its `weight` is our `tokens`)."""
    out[block.path] = "tokens"


KIND = BlockKind(
    name="tokens",
    node=TokensBlock,
    words={
        "tokens": Word(
            frozenset({"count", "dim"}), "Mobile-Former's learned global tokens, beside the map", kernels="none"
        )
    },  # fmt: skip
    build=build,
    layers=layers,
    input=lambda b: (b.channels, b.hw),
    output=lambda b: (b.channels, b.hw),
    steps=steps,
    torch=TorchPiece("mobile_former.py.j2", ("Tokens",), torch_call),
    timm={"mobile_former": authors_names},
    pair_maps=lambda b: (FeatureMap(b.channels, b.hw), FeatureMap(b.channels, b.hw, tokens=(b.count, b.dim))),
)
