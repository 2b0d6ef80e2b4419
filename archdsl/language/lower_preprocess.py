"""Lower a network's `preprocess { ... }`: how images are prepared for it (what timm's
`pretrained_cfg` and Keras applications' `preprocess_input` say), read by the generated models
and by the exports that take images."""

from __future__ import annotations

from typing import Any

from ..errors import ArchError, did_you_mean
from ..ir.nodes import PRESETS, Preprocess
from .evaluate import Env, as_float, as_symbol, item_value
from .syntax import Flag, KwArg, Stmt

SETTINGS = ("mean", "std", "interpolation", "crop_pct")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def lower_preprocess(body: tuple[Stmt, ...], env: Env, channels: int) -> Preprocess:
    out: dict[str, Any] = {}
    for stmt in body:
        if stmt.head not in SETTINGS:
            raise ArchError(
                f"unknown preprocess setting '{stmt.head}'", stmt.head_span, did_you_mean(stmt.head, SETTINGS)
            )
        if stmt.head in out:
            raise ArchError(f"'{stmt.head}' is set twice", stmt.head_span)
        if stmt.body is not None or any(isinstance(i, KwArg) for i in stmt.items) or not stmt.items:
            raise ArchError(f"'{stmt.head}' takes values", stmt.head_span, _HINTS[stmt.head])
        values = [(item_value(i, env), i.span) for i in stmt.items]  # type: ignore[arg-type]
        if stmt.head in ("interpolation", "crop_pct"):
            if len(values) != 1:
                raise ArchError(f"'{stmt.head}' takes one value", stmt.items[1].span, _HINTS[stmt.head])
            value, span = values[0]
            out[stmt.head] = (as_symbol(value, span, "interpolation", INTERPOLATIONS) if stmt.head == "interpolation"
                              else as_float(value, span, "crop share", 0.0, 1.0))  # fmt: skip
            continue
        if len(values) == 1 and isinstance(stmt.items[0], Flag) and isinstance(values[0][0], str):
            preset = as_symbol(values[0][0], values[0][1], f"{stmt.head} preset", tuple(PRESETS))
            out[stmt.head] = PRESETS[preset][stmt.head == "std"]
        else:
            low = 0.0 if stmt.head == "std" else -1e6  # a mean may be anything; a std divides
            out[stmt.head] = tuple(as_float(v, s, f"{stmt.head} value", low, 1e6, low_open=stmt.head == "std")
                                   for v, s in values)  # fmt: skip
        if len(out[stmt.head]) != channels:
            raise ArchError(f"{stmt.head} has {len(out[stmt.head])} values for {channels} input channels",
                            stmt.head_span, f"give one value per channel, e.g. {_HINTS[stmt.head]}")  # fmt: skip
    missing = [s for s in ("mean", "std") if s not in out]
    if channels != 3 and missing:  # ImageNet's statistics are for RGB
        raise ArchError(f"a {channels}-channel input needs its {missing[0]} given", body[0].span if body else None,
                        f"add '{missing[0]} ...', one value per channel")  # fmt: skip
    return Preprocess.make(**out)


_HINTS = {"mean": "mean 0.485 0.456 0.406, or mean imagenet", "std": "std 0.229 0.224 0.225, or std imagenet",
          "interpolation": "interpolation bicubic (or bilinear, nearest)", "crop_pct": "crop_pct 0.875"}  # fmt: skip
