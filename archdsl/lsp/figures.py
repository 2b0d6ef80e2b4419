"""What a line of a spec comes to in the resolved networks: the blocks a statement gives (itself,
its repeats, or everything a template or family used there expands to), a stage's, a network's;
and their figures as the hover and the inlay hints show them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..analysis.cost import Cost, block_cost
from ..analysis.report import block_seconds, shape_text, si
from ..errors import ArchError, Span
from ..ir.deploy_form import CannotMerge, deploy_form
from ..ir.network import Block, Network, Stage, is_dense
from .analysis import Analysis

Place = tuple[int, int]  # a statement's line and column in the buffer


@dataclass
class Occurrence:
    """Consecutive blocks of one network that one statement gives at one of its uses."""

    network: Network
    blocks: list[Block]


def total(blocks: list[Block] | tuple[Block, ...]) -> Cost:
    return sum(map(block_cost, blocks), Cost())


def _shapes(blocks: list[Block] | tuple[Block, ...]) -> str:
    return f"{shape_text(blocks[0], 'input')} -> {shape_text(blocks[-1])}"


def _places(a: Analysis, span: Span | None) -> set[Place]:
    """Where in the buffer a resolved node was written: its own span, or the uses of the
    template or family that holds it."""
    return {(s.line, s.col) for s in (span, *span.uses) if a.in_file(s)} if span is not None else set()


def block_places(a: Analysis) -> dict[Place, list[Occurrence]]:
    """Each place of the buffer that gives blocks: a block statement, or a use of a template or
    family (whose blocks are also under their own statement, in whichever file defines it)."""
    out: dict[Place, list[Occurrence]] = {}
    for net in a.networks:
        blocks = net.blocks()
        for index, block in enumerate(blocks):
            for where in _places(a, block.span):
                runs = out.setdefault(where, [])
                last = runs[-1] if runs else None
                if last is not None and last.network is net and last.blocks[-1] is blocks[index - 1]:
                    last.blocks.append(block)
                else:
                    runs.append(Occurrence(net, [block]))
    return out


def stage_places(a: Analysis) -> dict[Place, list[tuple[Network, Stage]]]:
    out: dict[Place, list[tuple[Network, Stage]]] = {}
    for net in a.networks:
        for stage in net.all_stages():
            for where in _places(a, stage.span):
                out.setdefault(where, []).append((net, stage))
    return out


Seconds = Callable[[Network], dict[str, float]]  # a network -> predicted seconds per block path


def figures(blocks: list[Block], network: Network, seconds: Seconds | None, shapes: str) -> list[str]:
    """Markdown lines: the shapes, the cost, and a predicted time where a profile is set."""
    c = total(blocks)
    lines = [
        f"`{shapes}`" + ("" if any(is_dense(b) for b in blocks) else " (CxHxW)"),  # a dense head: its outputs
        f"params **{c.params:,}** · MACs **{si(c.macs)}** ({c.macs:,}) · "
        f"weights {si(c.weight_bytes())}B · activations {si(c.activation_bytes())}B (float32)",
    ]
    if seconds is not None:
        try:
            per_block = seconds(network)
        except ArchError as e:  # a unit the profile cannot predict
            lines.append(f"predicted: none ({e.message})")
        else:
            predicted = sum(per_block.get(b.path, 0.0) for b in blocks)
            lines.append(f"predicted **{predicted * 1e3:.3f} ms** (deploy form, latency profile)")
    return lines


def occurrence_text(o: Occurrence, seconds: Seconds | None) -> list[str]:
    first, last = o.blocks[0].path, o.blocks[-1].path
    where = first if first == last else f"{first} … {last} ({_count(o.blocks)})"
    return [f"{o.network.name} · {where}", *figures(o.blocks, o.network, seconds, _shapes(o.blocks))]


def network_text(net: Network, seconds: Seconds | None) -> list[str]:
    blocks = list(net.blocks())
    shapes = f"{'x'.join(map(str, net.input_shape))} -> {shape_text(blocks[-1])}"
    return [f"**network {net.name}** · {_count(blocks)}", *figures(blocks, net, seconds, shapes)]


def stage_text(net: Network, stage: Stage, seconds: Seconds | None) -> list[str]:
    blocks = list(stage.blocks)
    title = f"**{stage.path}**" + ("" if stage.name == stage.path else f" ({stage.name})")
    return [f"{title} of {net.name} · {_count(blocks)}", *figures(blocks, net, seconds, _shapes(blocks))]


def _count(blocks: list[Block]) -> str:
    return "1 block" if len(blocks) == 1 else f"{len(blocks)} blocks"


def predictor_seconds(predictor: Any) -> Seconds:
    """Per-block predicted seconds of a network's deploy form (as `archdsl latency` predicts by
    default; the train form where branches cannot merge) from a latency `Predictor`, for the last
    few networks asked."""
    cache: dict[int, tuple[Network, dict[str, float]]] = {}

    def seconds(net: Network) -> dict[str, float]:
        hit = cache.get(id(net))
        if hit is None or hit[0] is not net:
            if len(cache) >= 8:
                cache.clear()
            try:
                deployed = deploy_form(net)
            except CannotMerge:
                deployed = net
            hit = (net, block_seconds(predictor.network(deployed)))
            cache[id(net)] = hit
        return hit[1]

    return seconds
