"""Lower one block statement (or a use of a user-defined block template) to `BlockSpec`s."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..blocks.kind import NEEDS, BlockKind, Word
from ..errors import ArchError, ArchErrors, Span, add_note, did_you_mean
from ..ir.nodes import ACTIVATIONS, BlockSpec
from ..limits import MAX_NUMBER_CHARS
from .evaluate import Env, Value, as_float, as_int, as_symbol, evaluate, in_a_space
from .lower_metadata import refuse_strings
from .repeats import block_rows, repeat_rows
from .syntax import BlockDef, ChoiceWord, Flag, KwArg, Literal, Name, Stmt, number_too_long
from .vocabulary import COMPACT, ENDPOINT, FLAGS, KWARGS, WORDS

_NUMERIC = ("int", "channels", "float", "kernel")
_COMPACT_RE = re.compile("^(" + "|".join(COMPACT) + ")([0-9].*)$")
_NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_MAX_TEMPLATE_DEPTH = 32


def lower_blocks(
    stmt: Stmt, env: Env, templates: Mapping[str, BlockDef], stack: tuple[str, ...] = ()
) -> list[BlockSpec]:
    """The blocks one statement stands for: one block, or a template's blocks."""
    refuse_strings(stmt)  # a template's statements meet no network's check
    if stmt.body is not None:
        raise ArchError(f"'{stmt.head}' takes no '{{ ... }}' body here", stmt.head_span)
    if stmt.head in WORDS:
        return [_lower_kind(stmt, *WORDS[stmt.head], env)]
    if stmt.head in templates:
        return _expand_template(stmt, templates[stmt.head], env, templates, stack)
    if stmt.head == "let":
        raise ArchError("a named choice belongs in the network's body", stmt.head_span,
                        "move this `let` out of the stem, stage, head or block template")  # fmt: skip
    raise ArchError(f"unknown block kind '{stmt.head}'", stmt.head_span, did_you_mean(stmt.head, [*WORDS, *templates]))


@dataclass(frozen=True)
class Option:
    """One option of a block statement: a flag (no value), compact (`e2.3`) or `key=value`."""

    key: str
    value: Value | None  # None for a flag; a compact kernel list stays text ("5/3")
    span: Span  # the whole option
    value_span: Span


# Options that say the same thing two ways, or contradict each other.
_CONFLICTS = ({"skip", "noskip"}, {"avg", "max"}, {"dw", "g"}, {"e", "mid"}, {"k", "k_start"}, {"k", "k_mid"},
              {"k", "k_end"})  # fmt: skip


def _lower_kind(stmt: Stmt, kind: BlockKind, word: Word, env: Env) -> BlockSpec:
    given: dict[str, Option] = {}
    for item in stmt.items:
        opt = _option(item, env)
        key = opt.key
        if key not in word.options and not (key == ENDPOINT and opt.value is None):
            allowed = sorted(word.options)
            hint = did_you_mean(key, allowed) or ("it takes: " + ", ".join(allowed))
            raise ArchError(f"'{stmt.head}' has no option '{key}'", opt.span, hint)
        if key in given:
            raise ArchError(f"option '{key}' given twice", opt.span, "keep one of them")
        for other in next((c - {key} for c in _CONFLICTS if key in c and c - {key} <= given.keys()), ()):
            raise ArchError(f"'{key}' conflicts with '{other}'", opt.span, f"keep either '{other}' or '{key}'")
        given[key] = opt
    endpoint = given.pop(ENDPOINT, None)
    fields = _typed_fields(given)
    if endpoint is not None:
        fields["endpoint"] = True
    if "k" in given:
        fields["kernel"] = _kernels(stmt.head, word, given["k"])
    elif word.kernels == "none":
        fields["kernel"] = (0, 0, 0)
    elif word.kernels == "uib" and {"k_start", "k_mid", "k_end"} & given.keys():
        fields["kernel"] = tuple(fields.pop(k, 0) for k in ("k_start", "k_mid", "k_end"))
    for k in ("k_start", "k_mid", "k_end"):
        fields.pop(k, None)
    _check_required(stmt, word, fields)
    if word.variant is not None:
        fields["variant"] = word.variant
    spans = {key: opt.span for key, opt in given.items()} | ({ENDPOINT: endpoint.span} if endpoint else {})
    return BlockSpec.make(kind=kind.name, span=stmt.span, option_spans=spans, **fields)


def _option(item: Any, env: Env) -> Option:
    if isinstance(item, KwArg):
        value = evaluate(item.value, env)
        if (
            isinstance(item.value, Name)
            and item.value.id not in env
            and item.key in KWARGS
            and KWARGS[item.key].type in _NUMERIC
        ):
            name = item.value.id
            hint = did_you_mean(name, env) if env else None
            if _COMPACT_RE.match(name):
                hint = f"'{name}' reads as the value of '{item.key}='; is a value missing after '{item.key}='?"
            raise ArchError(f"unknown parameter '{name}'", item.value.span, hint)
        return Option(item.key, value, item.key_span, item.value.span)
    if isinstance(item, ChoiceWord):
        raise in_a_space(item.span)
    if isinstance(item, Literal):
        raise ArchError("a value needs an option name", item.span, "write options as k3, s2, c96 or key=value")
    assert isinstance(item, Flag)
    if item.word in COMPACT:
        raise ArchError(f"'{item.word}' needs a value", item.span, f"write {item.word}<value> or {item.word}=<value>")
    if item.word in KWARGS and item.word not in FLAGS:  # `dropout` alone: an option without its value
        raise ArchError(f"'{item.word}' needs a value", item.span, f"write {item.word}=<value>")
    m = _COMPACT_RE.match(item.word)
    if item.word in FLAGS or not m:
        return Option(item.word, None, item.span, item.span)
    key, text = m.group(1), m.group(2)
    if len(text) > MAX_NUMBER_CHARS:
        raise number_too_long(item.span, len(text))
    if _NUMBER_RE.match(text):
        return Option(key, float(text) if "." in text else int(text), item.span, item.span)
    if key == "k" and "/" in text:
        return Option(key, text, item.span, item.span)
    raise ArchError(f"malformed number '{text}' in '{item.word}'", item.span)


def _typed_fields(given: dict[str, Option]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    eps: float | None = None
    for key, opt in given.items():
        if key == "k":
            continue
        if key in FLAGS:
            out.update(FLAGS[key][0])
            continue
        value, vspan = opt.value, opt.value_span
        assert value is not None
        word = KWARGS[key]
        field, typ = word.field, word.type
        if typ == "int":
            minimum = 0 if key.startswith("k_") or key == "x" else 1  # x0: the row is absent (in a family)
            out[field] = as_int(value, vspan, word.meaning, minimum=minimum, maximum=word.limit)
        elif typ == "channels":
            out[field] = as_int(value, vspan, word.meaning, maximum=word.limit)
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
        elif typ == "aa":
            out[field] = as_symbol(value, vspan, "anti-aliasing", ("blur",))
        elif typ == "stride_at":
            out[field] = as_symbol(value, vspan, "depthwise conv", ("start", "mid", "end"))
    if eps is not None:  # an epsilon asks for a norm, even where the defaults say `norm none`
        if out.get("use_norm") is False:
            raise ArchError("eps given with norm=none", given["eps"].span)
        out["eps"], out["use_norm"] = eps, True
    return out


def _float_option(key: str, value: Value, span: Span) -> float:
    if key == "se":
        return as_float(value, span, "SE ratio", 0.0, 1.0, low_open=False)  # 0: no SE (useful in a family)
    what = KWARGS[key].meaning
    if key in ("drop_path", "dropout"):
        return as_float(value, span, what, 0.0, 1.0, low_open=False, high_open=True)
    if key == "e":
        return as_float(value, span, what, 0.0, 64.0)
    if key == "e_dw2":  # 0: an mf_down block of convs alone
        return as_float(value, span, what, 0.0, 64.0, low_open=False)
    if key in ("alpha", "alpha_mid"):  # 0: an octave block without a low-frequency output
        return as_float(value, span, what, 0.0, 1.0, low_open=False, high_open=True)
    return as_float(value, span, what)


# How many kernel sizes `k` takes, and how they map to (start, mid, end) for the UIB family.
_KERNEL_COUNTS = {"one": (1,), "uib": (2, 3), "mid": (1,), "start_mid": (1, 2), "start": (1,), "none": ()}
_UIB_LAYOUT = {"mid": lambda ks: (0, ks[0], 0), "start_mid": lambda ks: (ks[0], ks[-1], 0),
               "start": lambda ks: (ks[0], 0, 0), "uib": lambda ks: (*ks, 0)[:3]}  # fmt: skip


def _kernels(head: str, word: Word, opt: Option) -> tuple[int, ...]:
    value, vspan = opt.value, opt.value_span
    assert value is not None  # a bare `k` is rejected when the option is read
    if isinstance(value, str) and "/" in value:
        parts = value.split("/")
        if not all(p.isdigit() for p in parts):
            raise ArchError(f"malformed kernel list '{value}'", vspan, "write kernels as k3 or k5/3")
        ks = tuple(int(p) for p in parts)
    else:
        ks = (as_int(value, vspan, "kernel", minimum=0),)
    counts = _KERNEL_COUNTS[word.kernels]
    if len(ks) not in counts:
        forms = {1: "k3", 2: "k<start>/<mid>", 3: "k<start>/<mid>/<end>"}
        raise ArchError(
            f"'{head}' takes {' or '.join(str(c) for c in counts)} kernel size(s), got {len(ks)}",
            vspan,
            "write " + " or ".join(forms[c] for c in counts),
        )
    if word.kernels != "uib" and min(ks) < 1:  # only the explicit UIB form may leave a conv out (0)
        hint = f"'{head}' without a depthwise conv is an 'ffn'" if word.kernels in _UIB_LAYOUT else None
        raise ArchError("kernel must be at least 1", vspan, hint)
    return _UIB_LAYOUT[word.kernels](ks) if word.kernels in _UIB_LAYOUT else ks


# What a statement must give (a kind's `needs`): the field that gives it, the error and the hint.
_NEEDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "out": (("out",), "'{head}' needs its output channels", "add c<channels>, e.g. c96"),
    "kernel": (("kernel",), "'{head}' needs a kernel size", "add k<size>, e.g. k3"),
    "kernels": (("kernel",), "'{head}' needs kernel sizes", "e.g. k3 (ib) or k5/3 (uib, extra_dw)"),
    "expansion": (("expand", "mid"), "'{head}' needs an expansion", "add e<ratio> or mid=<channels>"),
    "heads": (("heads", "key_dim"), "'{head}' needs its heads and key dim", "add h<heads> d<dim>, e.g. h4 d64"),
    "mode": (("mode",), "{head} needs a mode", "write 'pool avg' or 'pool max'"),
}


def _check_required(stmt: Stmt, word: Word, fields: dict[str, Any]) -> None:
    depthwise = fields.get("groups") == 0  # keeps its input channels unless told otherwise
    for need in NEEDS:
        if need not in word.needs or (need == "out" and depthwise):
            continue
        given, message, hint = _NEEDS[need]
        missing = not all(f in fields for f in given) if need == "heads" else not any(f in fields for f in given)
        if missing:
            raise ArchError(message.format(head=stmt.head), stmt.head_span, hint)


def _expand_template(stmt: Stmt, tpl: BlockDef, env: Env, templates: Mapping[str, BlockDef],
                     stack: tuple[str, ...]) -> list[BlockSpec]:  # fmt: skip
    if tpl.name in stack:
        raise ArchError(f"block '{tpl.name}' uses itself", stmt.head_span, " -> ".join((*stack, tpl.name)))
    if len(stack) > _MAX_TEMPLATE_DEPTH:
        raise ArchError(f"blocks nest more than {_MAX_TEMPLATE_DEPTH} deep", stmt.head_span, " -> ".join(stack))
    params = {p.name: p for p in tpl.params}
    bound: dict[str, Value] = {}
    repeat = 1
    for item in stmt.items:
        opt = _option(item, env)
        key = opt.key
        if key == "x" and "x" not in params:
            assert opt.value is not None  # a bare `x` is rejected when the option is read
            repeat = as_int(opt.value, opt.value_span, "repeat count", minimum=0, maximum=KWARGS["x"].limit)
            continue
        if key not in params:
            raise ArchError(f"block '{tpl.name}' has no parameter '{key}'", opt.span, did_you_mean(key, params))
        if opt.value is None:
            raise ArchError(f"parameter '{key}' needs a value", opt.span, f"write {key}=<value>")
        if key in bound:
            raise ArchError(f"parameter '{key}' given twice", opt.span)
        bound[key] = opt.value
    # A mistake inside the template is located in its definition; a note says which use it was.
    note = f"in block '{tpl.name}' used at {stmt.span.file}:{stmt.span.line}:{stmt.span.col}"
    try:
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
    except (ArchError, ArchErrors) as e:
        add_note(e, note, used_at=stmt.span)
        raise
    group = f"{stmt.span.line}:{stmt.span.col}"
    return [noted(b, note, stmt.span, repeat=repeat, group=group) for b in blocks]


def noted(block: BlockSpec, note: str, used_at: Span, **update: Any) -> BlockSpec:
    """`block` (with `update`), its spans carrying one more note: errors the passes find in it
    then say where the template or family that holds it was used (`used_at`)."""
    if block.span is not None:
        update["span"] = block.span.noted(note, used_at)
    if block.option_spans:
        update["option_spans"] = {key: span.noted(note, used_at) for key, span in block.option_spans.items()}
    return block.model_copy(update=update)
