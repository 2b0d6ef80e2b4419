"""The dimensions of a search space: every choice that the chosen network depends on (in its
body, its family's parameters and body, and the block templates it uses), each named by where it
stands (`s1.0.k`, `head.0.act`, `width`), and every `let` choice under its own name.

A dimension is found by identity: the `Choice` node object itself (two choices that read the
same, `k{3,5}` twice, are two decisions). `let e_mid={4,6}` is one decision however many places
name `e_mid`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ArchError, Span
from ..language.loader import Definitions
from ..language.syntax import (
    BinOp,
    BlockDef,
    Choice,
    ChoiceWord,
    Expr,
    Flag,
    KwArg,
    Literal,
    Name,
    Neg,
    NetworkDef,
    NetworkInst,
    Num,
    Stmt,
)

# Bodies whose statements are blocks, named by their position; other bodies hold settings.
_BLOCK_BODIES = ("stage", "stem", "head")


@dataclass(frozen=True)
class Dimension:
    """One decision: its name, its values (ranges spelled out) and the choice as written."""

    name: str
    values: tuple[Num | Name, ...]
    span: Span

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(v.text if isinstance(v, Num) else v.id for v in self.values)


@dataclass
class Found:
    """What a walk over the network found: its dimensions in source order, which dimension each
    choice node and each network's `let` names stand for, and the nodes that hold any of them
    (the only ones a binding rebuilds)."""

    dimensions: list[Dimension] = field(default_factory=list)
    choices: dict[int, int] = field(default_factory=dict)  # id(Choice) -> dimension
    lets: dict[str, int] = field(default_factory=dict)  # let name -> dimension, in the network's body
    holders: set[int] = field(default_factory=set)  # ids of nodes holding a choice or a let name
    templates: list[BlockDef] = field(default_factory=list)  # the block templates the network uses


def find_dimensions(defs: Definitions, chosen: str) -> Found:
    found = Found()
    walker = _Walker(defs, found)
    node = defs.networks[chosen]
    if isinstance(node, NetworkInst):
        for arg in node.args:
            walker.expr(arg.value, arg.key)
        walker.hold(node, any(id(a.value) in found.holders for a in node.args))
        family = defs.networks.get(node.base)
        if isinstance(family, NetworkDef):
            walker.network(family)
    else:
        walker.network(node)
    return found


class _Walker:
    def __init__(self, defs: Definitions, found: Found):
        self.defs, self.found = defs, found
        self.names: dict[str, int] = {}  # how often each name was given, for unique ones
        self.lets: dict[str, int] = {}  # the let names in scope (the network being walked)
        self.visited: set[str] = set()

    def hold(self, node: object, holds: bool) -> bool:
        if holds:
            self.found.holders.add(id(node))
        return holds

    def dimension(self, choice: Choice, name: str) -> None:
        self.names[name] = self.names.get(name, 0) + 1
        unique = name if self.names[name] == 1 else f"{name}#{self.names[name]}"
        self.found.choices[id(choice)] = len(self.found.dimensions)
        self.found.dimensions.append(Dimension(unique, tuple(choice.expanded()), choice.span))

    def network(self, net: NetworkDef) -> None:
        params = {p.name for p in net.params or ()}
        for p in net.params or ():
            if p.default is not None:
                self.hold(p, self.expr(p.default, p.name))
        # the names first (a body may use one above its `let`), the dimensions in source order
        lets = [self.let_name(s, params) for s in net.body if s.head == "let"]
        self.lets = {kw.key: -1 for kw in lets}
        held = []
        for stmt in net.body:
            if stmt.head == "let":
                kw = stmt.items[0]
                assert isinstance(kw, KwArg) and isinstance(kw.value, Choice)
                self.lets[kw.key] = len(self.found.dimensions)
                self.dimension(kw.value, kw.key)
            else:
                held.append(self.stmt(stmt, ""))
        self.found.lets = dict(self.lets)
        self.hold(net, any(held) or bool(lets) or any(id(p) in self.found.holders for p in net.params or ()))
        self.lets = {}

    def let_name(self, stmt: Stmt, params: set[str]) -> KwArg:
        if len(stmt.items) != 1 or not isinstance(stmt.items[0], KwArg) or stmt.body is not None:
            raise ArchError("a named choice is `let NAME={values}`", stmt.span, "e.g. let e_mid={4,6}")
        kw = stmt.items[0]
        if not isinstance(kw.value, Choice):
            raise ArchError(f"'{kw.key}' names no choice", kw.value.span, f"write let {kw.key}={{4,6}}")
        if kw.key in self.lets or kw.key in params:
            what = "a parameter" if kw.key in params else "another choice"
            raise ArchError(f"'{kw.key}' is already {what} of this network", kw.key_span, "give it another name")
        self.lets[kw.key] = -1
        return kw

    def stmt(self, stmt: Stmt, path: str) -> bool:
        here = _join(path, stmt.items[0].word if stmt.head == "stage" and stmt.items and
                     isinstance(stmt.items[0], Flag) else stmt.head)  # fmt: skip
        held = [self.item(item, here) for item in stmt.items]
        if stmt.body is not None:
            blocks = stmt.head in _BLOCK_BODIES
            held += [self.stmt_in(s, _join(here, str(i)) if blocks else here, blocks) for i, s in enumerate(stmt.body)]
        return self.hold(stmt, any(held))

    def stmt_in(self, stmt: Stmt, path: str, block: bool) -> bool:
        """A statement of a body: a block (named by its position) or a setting (by its head)."""
        if not block:
            return self.stmt(stmt, path)
        held = [self.item(item, path) for item in stmt.items]
        if stmt.body is not None:
            held += [self.stmt_in(s, _join(path, str(i)), True) for i, s in enumerate(stmt.body)]
        if stmt.head in self.defs.blocks:
            self.template(self.defs.blocks[stmt.head])
        return self.hold(stmt, any(held))

    def template(self, tpl: BlockDef) -> None:
        if tpl.name in self.visited:
            return
        self.visited.add(tpl.name)
        outer, self.lets = self.lets, {}  # a template sees its parameters, not the network's choices
        held = [self.hold(p, self.expr(p.default, _join(tpl.name, p.name))) for p in tpl.params if p.default]
        held += [self.stmt_in(s, _join(tpl.name, str(i)), True) for i, s in enumerate(tpl.body)]
        self.hold(tpl, any(held))
        self.found.templates.append(tpl)
        self.lets = outer

    def item(self, item: object, path: str) -> bool:
        if isinstance(item, ChoiceWord):
            choices = [p for p in item.parts if isinstance(p, Choice)]
            for i, c in enumerate(choices):
                self.dimension(c, _join(path, item.prefix + (f"[{i}]" if len(choices) > 1 else "")))
            return self.hold(item, True)
        if isinstance(item, KwArg):
            return self.hold(item, self.expr(item.value, _join(path, item.key)))
        if isinstance(item, Literal):
            return self.hold(item, self.expr(item.value, path))
        if isinstance(item, Flag):
            if item.word in self.defs.blocks:  # `stem my_block ...`: a template used as an item
                self.template(self.defs.blocks[item.word])
            return self.hold(item, item.word in self.lets)
        return False

    def expr(self, e: Expr, name: str) -> bool:
        if isinstance(e, Choice):
            self.dimension(e, name)
            return self.hold(e, True)
        if isinstance(e, Name):
            return self.hold(e, e.id in self.lets)
        if isinstance(e, BinOp):
            left, right = self.expr(e.left, name), self.expr(e.right, name)
            return self.hold(e, left or right)
        if isinstance(e, Neg):
            return self.hold(e, self.expr(e.operand, name))
        return False


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
