"""The dimensions of a search space: every choice that the chosen network depends on (in its
body, its family's parameters and body, and the block templates it uses), each named by where it
stands (`s1.0.k`, `head.0.act`, `width`), and every `let` choice under its own name.

A dimension is found by identity: the `Choice` node object itself (two choices that read the
same, `k{3,5}` twice, are two decisions). `let e_mid={4,6}` is one decision however many places
name `e_mid`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ArchError, Span
from ..ir.nodes import ACTIVATIONS
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
    Param,
    Stmt,
)
from ..language.vocabulary import FLAGS, NETWORK_SETTINGS, WORDS

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
    choice node and each network's `let` names stand for, the choices nothing can reach (a
    family's default that the member overrides, a template's that every use passes: bound to
    their first value, no dimension), and the nodes that hold any of them (the only ones a
    binding rebuilds)."""

    dimensions: list[Dimension] = field(default_factory=list)
    choices: dict[int, int] = field(default_factory=dict)  # id(Choice) -> dimension
    fixed: dict[int, Num | Name] = field(default_factory=dict)  # id(Choice) -> its value, for the dead ones
    lets: dict[str, int] = field(default_factory=dict)  # let name -> dimension, in the network's body
    holders: set[int] = field(default_factory=set)  # ids of nodes holding a choice or a let name
    templates: list[BlockDef] = field(default_factory=list)  # the block templates the network uses


def find_dimensions(defs: Definitions, chosen: str) -> Found:
    found = Found()
    node = defs.networks[chosen]
    family = defs.networks.get(node.base) if isinstance(node, NetworkInst) else node
    body = family.body if isinstance(family, NetworkDef) else ()
    walker = _Walker(defs, found, _defaulted(defs, body))
    if isinstance(node, NetworkInst):
        for arg in node.args:
            walker.expr(arg.value, arg.key)
        walker.hold(node, any(id(a.value) in found.holders for a in node.args))
        if isinstance(family, NetworkDef):
            walker.network(family, given={a.key for a in node.args})
    else:
        walker.network(node, given=set())
    return found


def _template_uses(stmt: Stmt, defs: Definitions) -> list[tuple[str, set[str]]]:
    """The templates a statement uses, with the parameters it passes: as its kind, or as the kind
    written first in a one-line stem or head (`stem my_block c=16`)."""
    passed = {i.key for i in stmt.items if isinstance(i, KwArg)}
    first = stmt.items[0] if stmt.items and isinstance(stmt.items[0], Flag) else None
    names = [stmt.head, *([first.word] if first is not None and stmt.head in ("stem", "head") else [])]
    return [(n, passed) for n in names if n in defs.blocks]


def _defaulted(defs: Definitions, body: tuple[Stmt, ...]) -> dict[str, set[str]]:
    """Template name -> the parameters some use of it leaves to their default."""
    out: dict[str, set[str]] = {}
    stack = list(body)
    while stack:
        stmt = stack.pop()
        stack += stmt.body or ()
        for name, passed in _template_uses(stmt, defs):
            tpl = defs.blocks[name]
            first_seen = name not in out
            out.setdefault(name, set()).update(p.name for p in tpl.params if p.name not in passed)
            if first_seen:
                stack += tpl.body
    return out


class _Walker:
    def __init__(self, defs: Definitions, found: Found, defaulted: dict[str, set[str]]):
        self.defs, self.found, self.defaulted = defs, found, defaulted
        self.names: dict[str, int] = {}  # how often each name was given, for unique ones
        self.lets: dict[str, int] = {}  # the let names in scope (the network being walked)
        self.used: set[str] = set()  # the let names used
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

    def default(self, p: Param, name: str, live: bool) -> bool:
        """A parameter's default: its choices dimensions where some use takes the default, fixed
        to their first value where none does."""
        assert p.default is not None
        if live:
            return self.hold(p, self.expr(p.default, name))
        dead = [e for e in _walk(p.default) if isinstance(e, Choice)]
        for c in dead:
            self.found.fixed[id(c)] = c.expanded()[0]
        return self.hold(p, bool(dead) and all(self.hold(e, True) for e in _walk(p.default) if _holds_choice(e)))

    def network(self, net: NetworkDef, given: set[str]) -> None:
        params = {p.name for p in net.params or ()}
        held = [self.default(p, p.name, p.name not in given) for p in net.params or () if p.default is not None]
        # the names first (a body may use one above its `let`), the dimensions in source order
        lets = [self.let_name(s, params) for s in net.body if s.head == "let"]
        self.lets = {kw.key: -1 for kw in lets}
        for stmt in net.body:
            if stmt.head == "let":
                kw = stmt.items[0]
                assert isinstance(kw, KwArg) and isinstance(kw.value, Choice)
                self.lets[kw.key] = len(self.found.dimensions)
                self.dimension(kw.value, kw.key)
            else:
                held.append(self.stmt(stmt))
        for kw in lets:
            if kw.key not in self.used:
                raise ArchError(f"the named choice '{kw.key}' is used nowhere", kw.key_span,
                                f"use it (e={kw.key}) or remove it: a decision nothing depends on is no dimension")  # fmt: skip
        self.found.lets = dict(self.lets)
        self.hold(net, any(held) or bool(lets))
        self.lets = {}

    def let_name(self, stmt: Stmt, params: set[str]) -> KwArg:
        if len(stmt.items) != 1 or not isinstance(stmt.items[0], KwArg) or stmt.body is not None:
            raise ArchError("a named choice is `let NAME = {values}`", stmt.span, "e.g. let e_mid = {4,6}")
        kw = stmt.items[0]
        if not isinstance(kw.value, Choice):
            raise ArchError(f"'{kw.key}' names no choice", kw.value.span, f"write let {kw.key} = {{4,6}}")
        if kw.key in self.lets or kw.key in params:
            what = "a parameter" if kw.key in params else "another choice"
            raise ArchError(f"'{kw.key}' is already {what} of this network", kw.key_span, "give it another name")
        if kw.key in WORDS or kw.key in self.defs.blocks or kw.key in FLAGS or kw.key in ACTIVATIONS or \
                kw.key in NETWORK_SETTINGS or kw.key == "let":  # fmt: skip
            raise ArchError(f"'{kw.key}' is a word of the language", kw.key_span, "give the choice another name")
        self.lets[kw.key] = -1
        return kw

    def stmt(self, stmt: Stmt) -> bool:
        """A statement of the network's body: a setting, or a stem, stage or head."""
        here = (
            stmt.items[0].word if stmt.head == "stage" and stmt.items and isinstance(stmt.items[0], Flag) else stmt.head
        )
        if stmt.head in _BLOCK_BODIES and stmt.body is None:  # `stem conv k3 s2 c16`: its one block
            return self.hold(stmt, self.items(stmt, _join(here, "0")))
        held = [self.items(stmt, here)]
        if stmt.body is not None:
            held.append(self.body(stmt.body, here, blocks=stmt.head in _BLOCK_BODIES))
        return self.hold(stmt, any(held))

    def body(self, stmts: tuple[Stmt, ...], path: str, blocks: bool) -> bool:
        """A body's statements: blocks named by their position among the blocks, settings (and a
        stage's `defaults`) by their head."""
        held, index = [], 0
        for s in stmts:
            if blocks and s.head != "defaults":
                held.append(self.hold(s, self.items(s, _join(path, str(index)))))
                index += 1
            else:
                here = _join(path, s.head)
                held.append(
                    self.hold(s, any([self.items(s, here), s.body is not None and self.body(s.body, here, False)]))
                )
        return any(held)

    def items(self, stmt: Stmt, path: str) -> bool:
        held = any([self.item(item, path) for item in stmt.items])
        for name, _ in _template_uses(stmt, self.defs):  # after its own choices: source order
            self.template(self.defs.blocks[name])
        return held

    def template(self, tpl: BlockDef) -> None:
        if tpl.name in self.visited:
            return
        self.visited.add(tpl.name)
        outer, self.lets = self.lets, {}  # a template sees its parameters, not the network's choices
        live = self.defaulted.get(tpl.name, set())
        held = [self.default(p, _join(tpl.name, p.name), p.name in live) for p in tpl.params if p.default]
        held.append(self.body(tpl.body, tpl.name, blocks=True))
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
            return self.hold(item, self.let_use(item.word))
        return False

    def let_use(self, name: str) -> bool:
        if name in self.lets:
            self.used.add(name)
            return True
        return False

    def expr(self, e: Expr, name: str) -> bool:
        if isinstance(e, Choice):
            self.dimension(e, name)
            return self.hold(e, True)
        if isinstance(e, Name):
            return self.hold(e, self.let_use(e.id))
        if isinstance(e, BinOp):
            left, right = self.expr(e.left, name), self.expr(e.right, name)
            return self.hold(e, left or right)
        if isinstance(e, Neg):
            return self.hold(e, self.expr(e.operand, name))
        return False


def _walk(e: Expr) -> list[Expr]:
    """An expression and every expression in it."""
    if isinstance(e, BinOp):
        return [e, *_walk(e.left), *_walk(e.right)]
    if isinstance(e, Neg):
        return [e, *_walk(e.operand)]
    return [e]


def _holds_choice(e: Expr) -> bool:
    return any(isinstance(x, Choice) for x in _walk(e))


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
