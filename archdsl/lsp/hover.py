"""Hover text: on a block line, what it resolves to and costs; on a stage or network line, their
totals; on a template or family name, its signature and the comment above it; on an option, what
it means (the vocabulary's own table, which the docs and errors read too)."""

from __future__ import annotations

import re

from ..language.fmt import params_text
from ..language.syntax import BlockDef, Flag, Import, KwArg, Module, NetworkDef, NetworkInst, Stmt
from ..language.vocabulary import COMPACT, FLAGS, KWARGS, WORDS
from .analysis import Analysis
from .figures import Seconds, block_places, network_text, occurrence_text, stage_places, stage_text
from .locate import Position, comment_above, context_at, within

_COMPACT = re.compile(rf"^({'|'.join(COMPACT)})(\d.*)$")  # COMPACT lists `se` before `s`
_MAX_OCCURRENCES = 4  # a template line used more often shows its first uses and a count


def hover_text(a: Analysis, at: Position, seconds: Seconds | None = None) -> str | None:
    """Markdown for the hover at `at`, or None where there is nothing to say."""
    if a.module is None:
        return None
    choice = _choice(a, at)
    if choice is not None:
        return choice
    ctx = context_at(a.module, at)
    item, stmt = ctx.item, ctx.stmt
    if isinstance(item, Import):
        return f"imports `{(a.path.parent / item.path).resolve()}`"
    if stmt is not None and ctx.option is not None and stmt.body is None:
        meaning = option_meaning(_kind_word(stmt), ctx.option)
        if meaning is not None:
            return meaning
    if stmt is not None:
        return _statement(a, stmt, at, seconds)
    if isinstance(item, (NetworkDef, NetworkInst)) and at[0] == item.span.line:
        if isinstance(item, NetworkInst) and within(item.base_span, at):
            return _definition(a, item.base)
        nets = [n for n in a.networks if n.name == item.name]
        head = _definition(a, item.name)
        return "\n\n".join([*([head] if head else []), *("  \n".join(network_text(n, seconds)) for n in nets)])
    if isinstance(item, BlockDef) and at[0] == item.span.line:
        return _definition(a, item.name)
    return None


def _choice(a: Analysis, at: Position) -> str | None:
    """On a choice of a search space: its dimension, and the space it is one of."""
    for space, shown in a.spaces:
        for d in space.dimensions:
            if a.in_file(d.span) and within(d.span, at):
                return (f"**choice `{d.name}`**: {', '.join(d.labels)} ({len(d.values)} values)  \n"
                        f"one of {len(space.dimensions)} dimensions of `{space.network}`, a space of "
                        f"{space.size:,} networks; the shapes and costs shown are candidate {shown:,}'s"
                        + (" (the first value of every choice)" if shown == 0 else " (candidate 0 does not build)"))  # fmt: skip
    return None


def _statement(a: Analysis, stmt: Stmt, at: Position, seconds: Seconds | None) -> str | None:
    place = (stmt.span.line, stmt.span.col)
    parts: list[str] = []
    word, word_span = _kind_word(stmt), stmt.head_span
    if word != stmt.head:  # `stem <kind> ...`: the kind is the first option
        word_span = stmt.items[0].span
    if within(word_span, at):
        if a.defs is not None and word in a.defs.blocks:
            parts.append(_definition(a, word) or "")
        elif word in WORDS:
            parts.append(f"**{word}**: {WORDS[word][1].summary}")
    occurrences = block_places(a).get(place, [])
    for o in occurrences[:_MAX_OCCURRENCES]:
        parts.append("  \n".join(occurrence_text(o, seconds)))
    if len(occurrences) > _MAX_OCCURRENCES:
        parts.append(f"… and {len(occurrences) - _MAX_OCCURRENCES} more uses")
    if stmt.body is not None:
        parts += ["  \n".join(stage_text(net, stage, seconds)) for net, stage in stage_places(a).get(place, [])]
    return "\n\n".join(p for p in parts if p) or None


def _kind_word(stmt: Stmt) -> str:
    """The word naming a block statement's kind or template: its head, but for a one-line
    `stem conv ...` or `head ssdlite ...`, the word after `stem` or `head`."""
    first = stmt.items[0] if stmt.items else None
    return first.word if stmt.head in ("stem", "head") and isinstance(first, Flag) else stmt.head


def _definition(a: Analysis, name: str) -> str | None:
    """A template's or family's signature, with the comment above its definition."""
    if a.defs is None:
        return None
    node = a.defs.blocks.get(name) or a.defs.networks.get(name)
    if node is None:
        return None
    if isinstance(node, NetworkInst):
        signature = f"network {node.name} = {node.base}(...)"
    else:
        word = "block" if isinstance(node, BlockDef) else "network"
        signature = f"{word} {node.name}{params_text(node.params) if node.params is not None else ''}"
    module = _module_of(a, node.span.file)
    doc = comment_above(module, node.span.line) if module is not None else ""
    where = f"defined at {node.name_span.file}:{node.name_span.line}"
    return "\n\n".join(p for p in (f"```archdsl\n{signature}\n```", doc, where) if p)


def _module_of(a: Analysis, file: str) -> Module | None:
    return next((m for m in (a.defs.modules if a.defs else ()) if m.file == file), None)


def option_meaning(head: str, option: Flag | KwArg | object) -> str | None:
    """What an option of a block statement means, from the vocabulary's tables."""
    if head not in WORDS:
        return None
    value = None
    if isinstance(option, KwArg):
        key = option.key
    elif isinstance(option, Flag) and option.word in FLAGS:
        key = option.word
    elif isinstance(option, Flag) and (match := _COMPACT.match(option.word)) is not None:
        key, value = match.group(1), match.group(2)
    else:
        return None
    meaning = FLAGS[key][1] if key in FLAGS else KWARGS[key].meaning if key in KWARGS else None
    if meaning is None:
        return None
    text = f"`{key}`: {meaning}" + (f" = {value}" if value is not None else "")
    return text if key in WORDS[head][1].options else f"{text} (not an option of `{head}`)"
