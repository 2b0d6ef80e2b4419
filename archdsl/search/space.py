"""A search space: a spec read once, its dimensions, its exact size, and any candidate by index
(mixed radix, the first dimension slowest, the order of `itertools.product`) or by seed.

A candidate binds the syntax tree (`bind.py`) and lowers like any spec, through the same
templates, families and imports, without reading a file again. `canonical()` writes it as one
self-contained spec (the templates and family it uses, then the network), and its hash is that
text's.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ..errors import ArchError, ArchErrors, UsageError
from ..ir.nodes import NetworkSpec
from ..language.fmt import format_module
from ..language.loader import Definitions, load_file
from ..language.lower import choose_network, lower
from ..language.syntax import BlockDef, Module, NetworkDef, NetworkInst
from .bind import Binder, Value
from .dimensions import Dimension, find_dimensions


@dataclass(frozen=True)
class Candidate:
    """One network of a space: its index, the value index of each dimension, and its definitions."""

    index: int
    binding: tuple[int, ...]
    defs: Definitions
    network: str

    def lower(self) -> NetworkSpec:
        return lower(self.defs, self.network)

    @cached_property
    def text(self) -> str:
        """The candidate as a self-contained canonical spec (no header)."""
        items = [*self.defs.blocks.values(), *self._family(), self.defs.networks[self.network]]
        return format_module(Module(self.defs.main.file, tuple(items)), blank_lines=False)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def _family(self) -> list[NetworkDef]:
        node = self.defs.networks[self.network]
        return [self.defs.networks[node.base]] if isinstance(node, NetworkInst) else []  # type: ignore[list-item]


class Space:
    """The space a spec describes (one network of it, when it defines several)."""

    def __init__(self, defs: Definitions, network: str | None = None):
        self.defs = defs
        self.network = choose_network(defs, network)
        self.found = find_dimensions(defs, self.network)
        self.dimensions: list[Dimension] = self.found.dimensions

    @classmethod
    def load(cls, path: str | Path, network: str | None = None, root: Path | None = None) -> Space:
        return cls(load_file(path, root), network)

    @property
    def size(self) -> int:
        """How many candidates: exact, however large."""
        return math.prod(len(d.values) for d in self.dimensions)

    def binding(self, index: int) -> tuple[int, ...]:
        """The value index of each dimension of candidate `index` (0 <= index < size)."""
        if not 0 <= index < self.size:
            raise UsageError(f"no candidate {index:,}: the space has {self.size:,}",
                             hint=f"an index from 0 to {self.size - 1:,}")  # fmt: skip
        digits = []
        for d in reversed(self.dimensions):
            index, digit = divmod(index, len(d.values))
            digits.append(digit)
        return tuple(reversed(digits))

    def index(self, binding: tuple[int, ...]) -> int:
        index = 0
        for d, digit in zip(self.dimensions, binding, strict=True):
            index = index * len(d.values) + digit
        return index

    def seeded(self, seed: int) -> int:
        """A candidate's index drawn uniformly by `seed` (the same on every machine)."""
        return random.Random(seed).randrange(self.size)

    def candidate(self, index: int) -> Candidate:
        return self.bound(self.binding(index))

    def bound(self, binding: tuple[int, ...], index: int | None = None) -> Candidate:
        values: list[Value] = [d.values[i] for d, i in zip(self.dimensions, binding, strict=True)]
        binder = Binder(self.found, values)
        node = self.defs.networks[self.network]
        networks: dict[str, NetworkDef | NetworkInst] = {}
        if isinstance(node, NetworkInst):
            networks[node.name] = binder.instance(node)
            family = self.defs.networks.get(node.base)
            if isinstance(family, NetworkDef):
                networks[family.name] = binder.network(family)
        else:
            networks[node.name] = binder.network(node)
        blocks: dict[str, BlockDef] = {t.name: binder.template(t) for t in self.found.templates}
        defs = replace(self.defs, networks=networks, blocks=blocks)
        return Candidate(self.index(binding) if index is None else index, binding, defs, self.network)

    def check(self) -> None:
        """Every value of every dimension lowers, the others at their first value: an illegal value
        (`k{3,0}` for a kernel, `act={relu,3}`) is an error at that value, before any sweep."""
        first = (0,) * len(self.dimensions)
        try:
            self.bound(first).lower()
        except (ArchError, ArchErrors) as e:
            self._say_first(e)
            raise
        for d, dim in enumerate(self.dimensions):
            for v in range(1, len(dim.values)):
                binding = first[:d] + (v,) + first[d + 1 :]
                try:
                    self.bound(binding).lower()
                except (ArchError, ArchErrors) as e:
                    _say_which(e, dim, v)
                    raise

    def _say_first(self, error: ArchError | ArchErrors) -> None:
        """Notes for an error of the first candidate: which named choice gave the value (a name used
        where its values do not fit, `act=kk` with `let kk={3,5}`), and that all are at their first."""
        for e in error.errors if isinstance(error, ArchErrors) else (error,):
            s = e.span
            text = s.line_text()[s.col - 1 : s.end_col - 1] if s is not None and s.line == s.end_line else ""
            inside = s is not None and any(d.span.contains(s) for d in self.dimensions)  # a word in a choice
            if text in self.found.lets and not inside:
                dim = self.dimensions[self.found.lets[text]]
                where = dim.span
                e.add_note(f"{text} = {dim.labels[0]} here: the named choice at {where.file}:{where.line}:{where.col}",
                           where)  # fmt: skip
            if self.dimensions:
                e.add_note("with every choice at its first value")

    def labels(self, binding: tuple[int, ...]) -> dict[str, str]:
        """Dimension name -> the value a binding gives it, as written."""
        return {d.name: d.labels[i] for d, i in zip(self.dimensions, binding, strict=True)}


def _say_which(error: ArchError | ArchErrors, dim: Dimension, value: int) -> None:
    where = dim.span
    note = f"with {dim.name} = {dim.labels[value]} (the choice at {where.file}:{where.line}:{where.col}), " \
           "every other choice at its first value"  # fmt: skip
    for e in error.errors if isinstance(error, ArchErrors) else (error,):
        e.add_note(note, where)
