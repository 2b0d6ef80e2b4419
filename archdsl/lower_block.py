"""Lower one block statement (or a use of a user-defined block template) to `BlockSpec`s."""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import ArchError, Span, did_you_mean
from .evaluate import Env, Value, as_float, as_int, as_symbol, evaluate
from .ir import ACTIVATIONS, BlockSpec
from .repeats import block_rows, repeat_rows
from .syntax import BlockDef, Flag, KwArg, Literal, Name, Stmt
from .vocabulary import COMPACT, FLAGS, KINDS, KWARGS, Kind

_NUMERIC = ("int", "channels", "float", "kernel")
_COMPACT_RE = re.compile("^(" + "|".join(COMPACT) + ")([0-9].*)$")
_NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_MAX_TEMPLATE_DEPTH = 32


def lower_blocks(
    stmt: Stmt, env: Env, templates: Mapping[str, BlockDef], stack: tuple[str, ...] = ()
) -> list[BlockSpec]:
    """The blocks one statement stands for: one block, or a template's blocks."""
    if stmt.body is not None:
        raise ArchError(f"'{stmt.head}' takes no '{{ ... }}' body here", stmt.head_span)
    if stmt.head in KINDS:
        return [_lower_kind(stmt, KINDS[stmt.head], env)]
    if stmt.head in templates:
        return _expand_template(stmt, templates[stmt.head], env, templates, stack)
    raise ArchError(f"unknown block kind '{stmt.head}'", stmt.head_span, did_you_mean(stmt.head, [*KINDS, *templates]))


# Options that say the same thing two ways, or contradict each other.
_CONFLICTS = ({"skip", "noskip"}, {"avg", "max"}, {"dw", "g"}, {"e", "mid"}, {"k", "k_start"}, {"k", "k_mid"},
              {"k", "k_end"})  # fmt: skip


def _lower_kind(stmt: Stmt, kind: Kind, env: Env) -> BlockSpec:
    given: dict[str, tuple[Any, Span]] = {}
    for item in stmt.items:
        key, raw, span = _option(item, env)
        if key not in kind.options:
            allowed = sorted(kind.options)
            hint = did_you_mean(key, allowed) or ("it takes: " + ", ".join(allowed))
            raise ArchError(f"'{stmt.head}' has no option '{key}'", span, hint)
        if key in given:
            raise ArchError(f"option '{key}' given twice", span, "keep one of them")
        for other in next((c - {key} for c in _CONFLICTS if key in c and c - {key} <= given.keys()), ()):
            raise ArchError(f"'{key}' conflicts with '{other}'", span, f"keep either '{other}' or '{key}'")
        given[key] = (raw, span)
    fields = _typed_fields(given)
    if "k" in given:
        fields["kernel"] = _kernels(stmt.head, kind, *given["k"])
    elif kind.uib_kernels == "none":
        fields["kernel"] = (0, 0, 0)
    elif kind.ir_kind == "uib" and {"k_start", "k_mid", "k_end"} & given.keys():
        fields["kernel"] = tuple(fields.pop(k, 0) for k in ("k_start", "k_mid", "k_end"))
    for k in ("k_start", "k_mid", "k_end"):
        fields.pop(k, None)
    _check_required(stmt, kind, fields)
    if kind.ir_kind == "uib" and stmt.head != "uib":
        fields["variant"] = stmt.head
    spans = {key: span for key, (_, span) in given.items()}
    return BlockSpec(kind=kind.ir_kind, span=stmt.span, option_spans=spans, **fields)


def _option(item: Any, env: Env) -> tuple[str, Any, Span]:
    """(option name, raw value, span) of one item; flags carry True."""
    if isinstance(item, KwArg):
        value = evaluate(item.value, env)
        if isinstance(item.value, Name) and item.value.id not in env and KWARGS.get(item.key, ("", ""))[1] in _NUMERIC:
            name = item.value.id
            hint = did_you_mean(name, env) if env else None
            if _COMPACT_RE.match(name):
                hint = f"'{name}' reads as the value of '{item.key}='; is a value missing after '{item.key}='?"
            raise ArchError(f"unknown parameter '{name}'", item.value.span, hint)
        return item.key, (value, item.value.span), item.key_span
    if isinstance(item, Literal):
        raise ArchError("a value needs an option name", item.span, "write options as k3, s2, c96 or key=value")
    assert isinstance(item, Flag)
    if item.word in FLAGS:
        return item.word, True, item.span
    m = _COMPACT_RE.match(item.word)
    if m:
        return m.group(1), (m.group(2), item.span), item.span
    return item.word, True, item.span


def _typed_fields(given: dict[str, tuple[Any, Span]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    eps: float | None = None
    for key, (raw, _) in given.items():
        if key == "k":
            continue
        if key in FLAGS:
            out.update(_flag_field(key))
            continue
        value, vspan = raw
        value = _number_text(value, vspan)
        field, typ = KWARGS[key]
        if typ == "int":
            out[field] = as_int(value, vspan, _WHAT[key], minimum=0 if key.startswith("k_") else 1)
        elif typ == "channels":
            out[field] = as_int(value, vspan, _WHAT[key])
        elif typ == "float":
            if key == "eps":
                eps = as_float(value, vspan, "norm epsilon")
            else:
                out[field] = _float_option(key, value, vspan)
        elif typ == "act":
            out[field] = as_symbol(value, vspan, "activation", ACTIVATIONS)
        elif typ == "norm":
            out["use_norm"] = as_symbol(value, vspan, "norm", ("batchnorm", "none")) == "batchnorm"
        elif typ == "padding":
            out[field] = as_symbol(value, vspan, "padding", ("symmetric", "same"))
    if eps is not None:  # an epsilon asks for a norm, even where the defaults say `norm none`
        if out.get("use_norm") is False:
            raise ArchError("eps given with norm=none", given["eps"][1])
        out["eps"], out["use_norm"] = eps, True
    return out


def _flag_field(key: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        "skip": {"skip": True}, "noskip": {"skip": False}, "bias": {"bias": True},
        "fixed": {"fixed": True}, "dw": {"groups": 0}, "avg": {"mode": "avg"}, "max": {"mode": "max"},
    }  # fmt: skip
    return fields[key]


def _float_option(key: str, value: Value, span: Span) -> float:
    if key == "se":
        return as_float(value, span, "SE ratio", 0.0, 1.0)
    if key in ("drop_path", "dropout"):
        return as_float(value, span, _WHAT[key], 0.0, 1.0, low_open=False)
    return as_float(value, span, _WHAT[key])


def _number_text(value: Value, span: Span) -> Value:
    """Compact options carry text (`2.3` of `e2.3`); keyword options are already evaluated."""
    if isinstance(value, str) and _NUMBER_RE.match(value):
        return float(value) if "." in value else int(value)
    if isinstance(value, str) and span.end_col - span.col > len(value) and not value.isidentifier():
        raise ArchError(f"malformed number '{value}'", span)
    return value


def _kernels(head: str, kind: Kind, raw: Any, span: Span) -> tuple[int, ...]:
    value, vspan = raw
    if isinstance(value, str) and "/" in value:
        parts = value.split("/")
        if not all(p.isdigit() for p in parts):
            raise ArchError(f"malformed kernel list '{value}'", vspan, "write kernels as k3 or k5/3")
        ks = tuple(int(p) for p in parts)
    else:
        ks = (as_int(_number_text(value, vspan), vspan, "kernel", minimum=0),)
    expected = {None: (1,), "mid": (1,), "start_mid": (1, 2), "start": (1,), "none": ()}
    counts = (2, 3) if kind.ir_kind == "uib" and kind.uib_kernels is None else expected[kind.uib_kernels]
    if len(ks) not in counts:
        forms = {1: "k3", 2: "k<start>/<mid>", 3: "k<start>/<mid>/<end>"}
        raise ArchError(
            f"'{head}' takes {' or '.join(str(c) for c in counts)} kernel size(s), got {len(ks)}",
            vspan,
            "write " + " or ".join(forms[c] for c in counts),
        )
    if (kind.ir_kind != "uib" or kind.uib_kernels is not None) and min(ks) < 1:
        hint = f"'{head}' without a depthwise conv is an 'ffn'" if kind.ir_kind == "uib" else None
        raise ArchError("kernel must be at least 1", vspan, hint)
    if kind.uib_kernels == "mid":
        ks = (0, ks[0], 0)
    elif kind.uib_kernels == "start_mid":
        ks = (ks[0], ks[-1], 0)
    elif kind.uib_kernels == "start":
        ks = (ks[0], 0, 0)
    elif kind.ir_kind == "uib" and len(ks) == 2:
        ks = (*ks, 0)
    return ks


def _check_required(stmt: Stmt, kind: Kind, fields: dict[str, Any]) -> None:
    needs_out = kind.ir_kind in ("conv", "ds", "dsa", "uib", "fused_ib")
    if needs_out and "out" not in fields:
        raise ArchError(f"'{stmt.head}' needs its output channels", stmt.head_span, "add c<channels>, e.g. c96")
    if kind.ir_kind in ("conv", "ds", "dsa", "fused_ib") and "kernel" not in fields:
        raise ArchError(f"'{stmt.head}' needs a kernel size", stmt.head_span, "add k<size>, e.g. k3")
    if kind.ir_kind == "uib" and "kernel" not in fields:
        raise ArchError(f"'{stmt.head}' needs kernel sizes", stmt.head_span, "e.g. k3 (ib) or k5/3 (uib, extra_dw)")
    if kind.ir_kind in ("uib", "fused_ib") and ("expand" in fields) == ("mid" in fields):
        both = "expand" in fields
        raise ArchError(
            f"'{stmt.head}' needs {'either' if both else 'an'} expansion e<ratio> {'or' if both else 'or'} mid=<channels>"
            + (", not both" if both else ""),
            stmt.head_span,
        )
    if kind.ir_kind == "pool" and "mode" not in fields:
        raise ArchError("pool needs a mode", stmt.head_span, "write 'pool avg' or 'pool max'")


def _expand_template(stmt: Stmt, tpl: BlockDef, env: Env, templates: Mapping[str, BlockDef],
                     stack: tuple[str, ...]) -> list[BlockSpec]:  # fmt: skip
    if tpl.name in stack or len(stack) > _MAX_TEMPLATE_DEPTH:
        raise ArchError(f"block '{tpl.name}' uses itself", stmt.head_span, " -> ".join((*stack, tpl.name)))
    params = {p.name: p for p in tpl.params}
    bound: dict[str, Value] = {}
    repeat = 1
    for item in stmt.items:
        key, raw, span = _option(item, env)
        if key == "x" and "x" not in params:
            repeat = as_int(_number_text(*raw), raw[1], "repeat count")
            continue
        if key not in params:
            raise ArchError(f"block '{tpl.name}' has no parameter '{key}'", span, did_you_mean(key, params))
        if raw is True:
            raise ArchError(f"parameter '{key}' needs a value", span, f"write {key}=<value>")
        if key in bound:
            raise ArchError(f"parameter '{key}' given twice", span)
        bound[key] = _number_text(*raw)
    for p in tpl.params:
        if p.name not in bound:
            if p.default is None:
                raise ArchError(
                    f"block '{tpl.name}' needs parameter '{p.name}'", stmt.head_span, f"add {p.name}=<value>"
                )
            bound[p.name] = evaluate(p.default, bound)
    inner: list[BlockSpec] = []
    for statement in tpl.body:
        inner += lower_blocks(statement, bound, templates, (*stack, tpl.name))
    rows = block_rows(inner)  # the template's own rows (blocks, nested template uses), expanded in place
    blocks = repeat_rows(rows, [row[0].repeat for row in rows])
    group = f"{stmt.span.line}:{stmt.span.col}"
    return [b.model_copy(update={"repeat": repeat, "group": group}) for b in blocks]


_WHAT = {
    "s": "stride", "e": "expansion ratio", "c": "output channels", "x": "repeat count", "g": "groups",
    "mid": "mid channels", "layer_scale": "layer scale", "drop_path": "drop-path rate", "dropout": "dropout rate",
    "k_start": "start kernel", "k_mid": "mid kernel", "k_end": "end kernel",
}  # fmt: skip
