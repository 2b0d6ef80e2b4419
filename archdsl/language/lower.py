"""Lower the chosen network of a loaded spec to a `NetworkSpec`.

Picks the network (by name, or the file's only concrete one), binds a family's parameters,
interprets the network's settings, `defaults`, `stem`, `stage` and `head` statements, and
hands block statements to `lower_block`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ArchError, ArchErrors, Span, UsageError, add_note, did_you_mean
from ..ir.nodes import (
    ACTIVATIONS,
    BlockSpec,
    Defaults,
    DepthScaling,
    NetworkSpec,
    Rounding,
    SEDefaults,
    StageSpec,
    WidthScaling,
)
from .evaluate import Env, InASpace, Value, as_float, as_int, as_symbol, evaluate, in_a_space, item_value
from .loader import Definitions
from .lower_metadata import lower_metadata, refuse_strings
from .lower_preprocess import lower_preprocess
from .lower_statement import lower_blocks, noted
from .syntax import Flag, KwArg, NetworkDef, NetworkInst, Stmt
from .vocabulary import DEFAULT_SETTINGS, ENDPOINT, NETWORK_SETTINGS, WORDS


def choose_network(defs: Definitions, name: str | None) -> str:
    """The network to compile: `name`, else the main file's only concrete network."""
    if name is not None:
        if name not in defs.networks:
            raise UsageError(f"no network named '{name}' in {defs.main.file}", None, did_you_mean(name, defs.networks))
        return name
    concrete = concrete_in(defs)
    stem = Path(defs.main.file).stem
    if len(concrete) == 1:
        return concrete[0]
    if stem in concrete:
        return stem
    if not concrete:
        families = [i.name for i in defs.main.items if isinstance(i, NetworkDef)]
        hint = (f"instantiate a family: network my_net = {families[0]}(...)") if families else None
        raise ArchError(f"{defs.main.file} defines no concrete network", None, hint)
    raise ArchError(
        f"{defs.main.file} defines several networks", None, "choose one with --network: " + ", ".join(concrete)
    )


def concrete_in(defs: Definitions) -> list[str]:
    """Networks of the main file that compile as they are: plain ones and family instances."""
    items = [i for i in defs.main.items if isinstance(i, (NetworkDef, NetworkInst))]
    return [n.name for n in items if isinstance(n, NetworkInst) or n.params is None]


def lower(defs: Definitions, name: str | None = None) -> NetworkSpec:
    chosen = choose_network(defs, name)
    node = defs.networks[chosen]
    env: dict[str, Value] = {}
    if isinstance(node, NetworkInst):
        family = defs.networks.get(node.base)
        if not isinstance(family, NetworkDef) or family.params is None:
            raise ArchError(f"'{node.base}' is not a network family", node.base_span,
                            did_you_mean(node.base, [n for n, d in defs.networks.items() if isinstance(d, NetworkDef) and d.params is not None]))  # fmt: skip
        # A mistake in the family's body is located there; a note names the member being built.
        where = node.span
        note = f"in network '{node.name}' = {node.base}(...) at {where.file}:{where.line}:{where.col}"
        try:
            lowering = _NetworkLowering(defs, _bind(family, node))
            spec = lowering.run(chosen, node.name_span, family.body, defs.source_hash)
        except (ArchError, ArchErrors) as e:
            add_note(e, note, used_at=node.span)
            raise
        return _noted_spec(spec, note, where)
    for p in node.params or ():
        if p.default is None:
            raise ArchError(f"parameter '{p.name}' has no default", p.span, "give it one, or instantiate the family")
        env[p.name] = evaluate(p.default, env)
    return _NetworkLowering(defs, env).run(chosen, node.name_span, node.body, defs.source_hash)


def _noted_spec(spec: NetworkSpec, note: str, used_at: Span) -> NetworkSpec:
    """`spec` with every block and stage span carrying `note`, for the errors the passes find."""

    def stage(s: StageSpec) -> StageSpec:
        blocks = tuple(noted(b, note, used_at) for b in s.blocks)
        span = s.span.noted(note, used_at) if s.span is not None else None
        return s.model_copy(update={"blocks": blocks, "span": span})

    return spec.model_copy(
        update={"stem": stage(spec.stem), "head": stage(spec.head), "stages": tuple(map(stage, spec.stages))}
    )


def _bind(family: NetworkDef, inst: NetworkInst) -> dict[str, Value]:
    params = {p.name: p for p in family.params or ()}
    env: dict[str, Value] = {}
    for arg in inst.args:
        if arg.key not in params:
            raise ArchError(
                f"family '{family.name}' has no parameter '{arg.key}'", arg.key_span, did_you_mean(arg.key, params)
            )
        env[arg.key] = evaluate(arg.value, {})
    for p in family.params or ():
        if p.name not in env:
            if p.default is None:
                raise ArchError(f"'{inst.name}' must set parameter '{p.name}' of '{family.name}'", inst.base_span)
            env[p.name] = evaluate(p.default, env)
    return env


class _NetworkLowering:
    def __init__(self, defs: Definitions, env: Env):
        self.defs, self.env = defs, env
        self.errors: list[ArchError] = []
        self.settings: dict[str, Any] = {}
        self.seen: dict[str, Span] = {}
        self.stages: list[StageSpec] = []
        self.stage_names: set[str] = set()  # a set: a spec of many stages must not check in quadratic time
        self.value_spans: dict[str, Span] = {}
        self.preprocess: tuple[Stmt, ...] | None = None

    def run(self, name: str, name_span: Span, body: tuple[Stmt, ...], source_hash: str) -> NetworkSpec:
        for stmt in body:
            try:
                self._statement(stmt)
            except ArchError as e:  # keep going: report every independent mistake at once
                self.errors.append(e)
        if self.errors:
            errors = [e for e in self.errors if isinstance(e, InASpace)][:1] or self.errors
            raise errors[0] if len(errors) == 1 else ArchErrors(errors)
        for required in ("stem", "head"):
            if required not in self.settings:
                raise ArchError(f"network '{name}' has no {required}", name_span, f"add a '{required}' statement")
        if not self.stages:
            raise ArchError(f"network '{name}' has no stages", name_span, "add 'stage <name> { ... }'")
        if self.preprocess is not None:  # after `input`, wherever it was written: it says the channels
            self.settings["preprocess"] = lower_preprocess(
                self.preprocess, self.env, self.settings.get("in_channels", 3)
            )
        spec = NetworkSpec.make(name=name, source_hash=source_hash, stages=tuple(self.stages),
                                setting_spans=dict(self.value_spans), **self.settings)  # fmt: skip
        h, w = spec.resolution or spec.input_hw
        if min(round(h * spec.rho), round(w * spec.rho)) < 1:
            raise ArchError(f"rho {spec.rho:g} leaves nothing of the {h}x{w} input", self.value_spans.get("rho"))
        return spec

    def _once(self, stmt: Stmt) -> None:
        if stmt.head in self.seen:
            first = self.seen[stmt.head]
            raise ArchError(f"'{stmt.head}' is set twice", stmt.head_span, f"first set at line {first.line}")
        self.seen[stmt.head] = stmt.head_span

    def _statement(self, stmt: Stmt) -> None:
        head = stmt.head
        if head != "metadata":
            refuse_strings(stmt)
        if head == "stage":
            self._stage(stmt)
            return
        if head == "let":
            raise in_a_space(stmt.span, "a named choice")
        if head not in NETWORK_SETTINGS:
            hint = did_you_mean(head, NETWORK_SETTINGS)
            if head in self.defs.blocks or head in WORDS:
                hint = "blocks belong inside a stem, stage or head"
            raise ArchError(f"unknown network statement '{head}'", stmt.head_span, hint)
        self._once(stmt)
        if head == "input":
            self._input(stmt)
        elif head == "classes":
            self.settings["classes"] = as_int(self._single(stmt), stmt.items[0].span, "classes", maximum=1 << 20)
        elif head == "width":
            self._width(stmt)
        elif head == "depth":
            self._depth(stmt)
        elif head in ("rho", "resolution"):
            self._resolution(stmt)
        elif head == "preprocess":
            self._no_items(stmt)
            self.preprocess = self._body(stmt)
        elif head == "metadata":
            self._no_items(stmt)
            self.settings["metadata"] = lower_metadata(self._body(stmt))
        elif head == "output_stride":
            self._output_stride(stmt)
        elif head == "defaults":
            self._no_items(stmt)
            self.settings["defaults"] = lower_defaults(self._body(stmt), self.env)
        elif head in ("stem", "head"):
            defaults, blocks = self._section(stmt) if stmt.body is not None else (Defaults.make(), self._blocks(stmt))
            self.settings[head] = StageSpec.make(name=head, blocks=tuple(blocks), defaults=defaults, span=stmt.span)

    def _single(self, stmt: Stmt, allow: tuple[str, ...] = (), keys: tuple[str, ...] = ()) -> Value:
        """The one positional value of a setting; `allow` are its flags, `keys` its `key=` options."""
        keyword_values(stmt, keys, self.env)  # rejects keys the setting does not take
        positional = [
            i for i in stmt.items if not isinstance(i, KwArg) and not (isinstance(i, Flag) and i.word in allow)
        ]
        if len(positional) != 1:
            extra = positional[1] if len(positional) > 1 else None
            hint = did_you_mean(extra.word, allow) if isinstance(extra, Flag) and allow else None
            raise ArchError(f"'{stmt.head}' takes one value", extra.span if extra else stmt.head_span, hint)
        return item_value(positional[0], self.env)  # type: ignore[arg-type]

    def _kwargs(self, stmt: Stmt, allowed: tuple[str, ...]) -> dict[str, tuple[Value, Span]]:
        return keyword_values(stmt, allowed, self.env)

    def _flags(self, stmt: Stmt, allowed: tuple[str, ...]) -> set[str]:
        return {i.word for i in stmt.items if isinstance(i, Flag) and i.word in allowed}

    def _input(self, stmt: Stmt) -> None:
        """`input 224x224x3`, `input 224x224` (3 channels), or `input h=.. w=.. [c=..]`."""
        kw = self._kwargs(stmt, ("h", "w", "c"))
        if any(not isinstance(i, KwArg) for i in stmt.items):
            if kw:
                raise ArchError("give the input as a shape or as h= w= c=, not both", stmt.items[-1].span)
            dims, span = self._single(stmt), stmt.items[0].span
            if not isinstance(dims, tuple) or len(dims) not in (2, 3):
                raise ArchError("input must be a shape such as 224x224x3 (height x width x channels)", span)
            kw = {k: (d, span) for k, d in zip("hwc", dims, strict=False)}  # 2 dims: 3 channels
        if "h" not in kw or "w" not in kw:
            raise ArchError("input needs both h= and w=", stmt.head_span)
        h, w = (as_int(*kw[k], f"input {k}", maximum=16384) for k in ("h", "w"))
        c = as_int(*kw["c"], "input channels", maximum=4096) if "c" in kw else 3
        self.settings["input_hw"], self.settings["in_channels"] = (h, w), c

    def _width(self, stmt: Stmt) -> None:
        value = as_float(
            self._single(stmt, keys=("divisor", "round_limit")), stmt.items[0].span, "width multiplier", high=16.0
        )
        kw = self._kwargs(stmt, ("divisor", "round_limit"))
        rounding = Rounding.make(
            divisor=as_int(*kw["divisor"], "divisor") if "divisor" in kw else 8,
            round_limit=as_float(*kw["round_limit"], "round limit", 0.0, 1.0, low_open=False)
            if "round_limit" in kw
            else 0.9,
        )
        self.settings["width"] = WidthScaling.make(multiplier=value, rounding=rounding, span=stmt.span)

    def _depth(self, stmt: Stmt) -> None:
        value = as_float(self._single(stmt, ("fix_first_last",)), stmt.items[0].span, "depth multiplier", high=16.0)
        self.settings["depth"] = DepthScaling.make(
            multiplier=value, fix_first_last="fix_first_last" in self._flags(stmt, ("fix_first_last",)), span=stmt.span
        )

    def _resolution(self, stmt: Stmt) -> None:
        if "rho" in self.seen and "resolution" in self.seen:
            raise ArchError("give either rho or resolution, not both", stmt.head_span)
        value, span = self._single(stmt), stmt.items[0].span
        self.value_spans[stmt.head] = span
        if stmt.head == "rho":
            self.settings["rho"] = as_float(value, span, "resolution multiplier rho", high=16.0)
        elif isinstance(value, tuple) and len(value) == 2:
            self.settings["resolution"] = tuple(as_int(d, span, "resolution", maximum=16384) for d in value)
        else:
            side = as_int(value, span, "resolution", maximum=16384)
            self.settings["resolution"] = (side, side)

    def _output_stride(self, stmt: Stmt) -> None:
        value, span = self._single(stmt), stmt.items[0].span
        stride = as_int(value, span, "output stride", maximum=1024)
        if stride & (stride - 1):
            raise ArchError(f"output_stride {stride} is not a power of 2", span, "output_stride 8, 16 or 32")
        self.settings["output_stride"], self.value_spans["output_stride"] = stride, span

    def _no_items(self, stmt: Stmt) -> None:
        if stmt.items:
            raise ArchError(f"'{stmt.head}' takes no options", stmt.items[0].span, f"{stmt.head} {{ ... }}")

    def _body(self, stmt: Stmt) -> tuple[Stmt, ...]:
        if stmt.body is None:
            raise ArchError(f"'{stmt.head}' needs a body in braces", stmt.head_span, f"{stmt.head} {{ ... }}")
        return stmt.body

    def _blocks(self, stmt: Stmt) -> list[BlockSpec]:
        if stmt.body is not None:
            self._no_items(stmt)
        if stmt.body is None:  # inline form: `stem conv k3 s2 c32`
            if not stmt.items or not isinstance(stmt.items[0], Flag):
                raise ArchError(
                    f"'{stmt.head}' needs blocks",
                    stmt.head_span,
                    f"{stmt.head} conv k3 s2 c32, or {stmt.head} {{ ... }}",
                )
            first = stmt.items[0]
            inner = Stmt(first.word, stmt.items[1:], None, stmt.span, first.span)
            return lower_blocks(inner, self.env, self.defs.blocks)
        blocks: list[BlockSpec] = []
        for inner in stmt.body:
            try:
                blocks += lower_blocks(inner, self.env, self.defs.blocks)
            except ArchError as e:
                self.errors.append(e)
        return blocks

    def _section(self, stmt: Stmt) -> tuple[Defaults, list[BlockSpec]]:
        """A stage's, stem's or head's braced body: its own defaults (one block at most) and its blocks."""
        defaults = [s for s in self._body(stmt) if s.head == "defaults"]
        if len(defaults) > 1:
            raise ArchError(f"a {stmt.head} has one defaults block", defaults[1].head_span)
        for d in defaults:
            self._no_items(d)
        own = lower_defaults(self._body(defaults[0]), self.env) if defaults else Defaults.make()
        rest = tuple(s for s in self._body(stmt) if s.head != "defaults")
        return own, self._blocks(Stmt(stmt.head, stmt.items, rest, stmt.span, stmt.head_span))

    def _stage(self, stmt: Stmt) -> None:
        items = list(stmt.items)
        endpoint = len(items) == 2 and isinstance(items[1], Flag) and items[1].word == ENDPOINT
        names = [i for i in items[:1] if isinstance(i, Flag)]
        if len(names) != 1 or len(items) != 1 + endpoint:
            span = items[1].span if len(items) > 1 else stmt.head_span
            raise ArchError("a stage needs one name (and `out` where its output is an endpoint)", span,
                            "stage s1 { ... }, or stage s1 out { ... }")  # fmt: skip
        name = names[0].word
        if not name.isidentifier():
            raise ArchError(f"'{name}' is not a valid stage name", names[0].span, "names are letters, digits and '_'")
        if name in self.stage_names:
            raise ArchError(f"stage '{name}' is defined twice", names[0].span)
        errors_before = len(self.errors)
        stage_defaults, blocks = self._section(Stmt(stmt.head, (), self._body(stmt), stmt.span, stmt.head_span))
        if not blocks and len(self.errors) == errors_before:  # not when its blocks were all wrong
            raise ArchError(f"stage '{name}' has no blocks", names[0].span)
        self.stage_names.add(name)
        self.stages.append(StageSpec.make(name=name, blocks=tuple(blocks), defaults=stage_defaults, span=stmt.span,
                                          endpoint=endpoint))  # fmt: skip


def keyword_values(stmt: Stmt, allowed: tuple[str, ...], env: Env) -> dict[str, tuple[Value, Span]]:
    """The `key=value` items of a statement, evaluated; an unknown key is an error."""
    out = {}
    for i in stmt.items:
        if isinstance(i, KwArg):
            if i.key not in allowed:
                raise ArchError(f"'{stmt.head}' has no option '{i.key}'", i.key_span, did_you_mean(i.key, allowed))
            out[i.key] = (evaluate(i.value, env), i.value.span)
    return out


_DEFAULT_KEYS = {"norm": ("eps", "momentum"), "se": ("base", "divisor", "round_limit", "act", "gate")}


def lower_defaults(body: tuple[Stmt, ...], env: Env) -> Defaults:
    out: dict[str, Any] = {}
    for stmt in body:
        if stmt.head not in DEFAULT_SETTINGS:
            raise ArchError(f"unknown default '{stmt.head}'", stmt.head_span, did_you_mean(stmt.head, DEFAULT_SETTINGS))
        if stmt.head in out or (stmt.head == "norm" and "use_norm" in out):
            raise ArchError(f"default '{stmt.head}' is set twice", stmt.head_span)
        kw = keyword_values(stmt, _DEFAULT_KEYS.get(stmt.head, ()), env)
        pos = [i for i in stmt.items if not isinstance(i, KwArg)]
        if stmt.head == "se":
            if pos:
                raise ArchError(
                    "the SE ratio belongs on blocks", pos[0].span, "write se0.25 on the blocks; here: se base=mid ..."
                )
            out["se"] = _se_defaults(kw)
            continue
        if stmt.head == "drop_path" and len(pos) == 2 and isinstance(pos[1], Flag) and pos[1].word == "linear":
            out["drop_path_linear"], pos = True, pos[:1]  # `drop_path 0.2 linear`: timm's schedule
        if len(pos) != 1:
            hint = "drop_path <rate> [linear]" if stmt.head == "drop_path" else None
            raise ArchError(f"default '{stmt.head}' takes one value", stmt.head_span, hint)
        value, span = item_value(pos[0], env), pos[0].span  # type: ignore[arg-type]
        if stmt.head == "act":
            out["act"] = as_symbol(value, span, "activation", ACTIVATIONS)
        elif stmt.head == "padding":
            out["padding"] = as_symbol(value, span, "padding", ("symmetric", "same"))
        elif stmt.head == "layer_scale":
            out["layer_scale"] = as_float(value, span, "layer scale")
        elif stmt.head in ("drop_path", "dropout"):
            out[stmt.head] = as_float(value, span, f"{stmt.head} rate", 0.0, 1.0, low_open=False, high_open=True)
        else:
            out["use_norm"] = as_symbol(value, span, "norm", ("batchnorm", "none")) == "batchnorm"
            if not out["use_norm"] and kw:
                raise ArchError("norm none takes no settings", next(iter(kw.values()))[1])
            if "eps" in kw:
                out["eps"] = as_float(*kw["eps"], "norm epsilon")
            if "momentum" in kw:
                out["momentum"] = as_float(*kw["momentum"], "norm momentum", 0.0, 1.0)
    return Defaults.make(**out)


def _se_defaults(kw: dict[str, tuple[Value, Span]]) -> SEDefaults:
    fields: dict[str, Any] = {}
    if "base" in kw:
        fields["base"] = as_symbol(*kw["base"], "SE base", ("in", "mid", "out", "mid_over_e"))
    if "divisor" in kw:
        fields["divisor"] = as_int(*kw["divisor"], "SE divisor")
    if "round_limit" in kw:
        fields["round_limit"] = as_float(*kw["round_limit"], "SE round limit", 0.0, 1.0, low_open=False)
    for key in ("act", "gate"):
        if key in kw:
            fields[key] = as_symbol(*kw[key], f"SE {key}", ACTIVATIONS)
    return SEDefaults.make(**fields)
