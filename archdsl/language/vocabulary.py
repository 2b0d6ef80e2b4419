"""The words of the language: block kinds, the options each accepts, and their spellings.

An option is written either compactly as letters plus a number (`k3`, `s2`, `e4`, `c96`, `x2`,
`se0.25`, `k5/3`) or as `key=expression`; flags are bare words (`skip`, `bias`). The lowering
consults these tables, errors and editors read their meanings; each block kind declares its
words and the options they take in its own module (`archdsl/blocks/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..blocks import WORDS  # the block kinds as written -> (kind, word)
from ..limits import MAX_CHANNELS, MAX_KERNEL

__all__ = ["COMPACT", "DEFAULT_SETTINGS", "ENDPOINT", "FLAGS", "KWARGS", "NETWORK_SETTINGS", "WORDS", "OptionWord"]

# Compact options: letters followed by a number (`k` also takes a/b/c kernel lists).
COMPACT = ("se", "k", "s", "e", "c", "x", "g", "h", "d", "v")


@dataclass(frozen=True)
class OptionWord:
    """A keyword option: the BlockSpec field it sets, its value type, what it means (in errors
    and for editors) and the largest value it takes where it gives a size directly."""

    field: str
    type: str  # int, channels, float, kernel, act, norm, padding, aa, stride_at
    meaning: str
    limit: int = 1 << 20


# Keyword options (written compactly too where COMPACT has them). Kernel forms are handled apart.
KWARGS: dict[str, OptionWord] = {
    "k": OptionWord("kernel", "kernel", "kernel size (k<start>/<mid>[/<end>] in the UIB family)"),
    "s": OptionWord("stride", "int", "stride", 64),
    "e": OptionWord("expand", "float", "expansion ratio"),
    "c": OptionWord("out", "channels", "output channels", MAX_CHANNELS),
    "x": OptionWord("repeat", "int", "repeat count", 256),
    "g": OptionWord("groups", "int", "groups"),
    "se": OptionWord("se", "float", "SE ratio"),
    "mid": OptionWord("mid", "channels", "mid channels", MAX_CHANNELS),
    "act": OptionWord("act", "act", "activation"),
    "norm": OptionWord("norm", "norm", "norm (batchnorm or none)"),
    "eps": OptionWord("eps", "float", "norm epsilon"),
    "layer_scale": OptionWord("layer_scale", "float", "layer scale"),
    "drop_path": OptionWord("drop_path", "float", "drop-path rate"),
    "dropout": OptionWord("dropout", "float", "dropout rate"),
    "alpha": OptionWord("alpha", "float", "low-frequency share of the output channels (Octave convolution)"),
    "alpha_mid": OptionWord("alpha_mid", "float", "low-frequency share of the expanded channels (Octave convolution)"),
    "count": OptionWord("token_count", "int", "token count (Mobile-Former)", 1024),
    "dim": OptionWord("token_dim", "int", "token width (Mobile-Former)", MAX_CHANNELS),
    "e_dw2": OptionWord("expand_dw2", "float", "expansion of mf_down's second depthwise conv (0: convs only)"),
    "former_heads": OptionWord("former_heads", "int", "the Former's self-attention heads (Mobile-Former)", 1024),
    "padding": OptionWord("padding", "padding", "padding (symmetric or same)"),
    "aa": OptionWord("aa", "aa", "anti-aliased downsampling (blur)"),
    "gs": OptionWord("group_size", "int", "channels per group of the depthwise convs", MAX_CHANNELS),
    "stride_at": OptionWord("stride_at", "stride_at", "the depthwise conv that takes the stride (start, mid or end)"),
    "dilation": OptionWord("dilation", "int", "dilation of the k x k convs (atrous)", 64),
    "anchors": OptionWord("anchors", "int", "anchor boxes per position of each map", 64),
    "branches": OptionWord("branches", "int", "branch count", 64),
    "h": OptionWord("heads", "int", "head count", 1024),
    "d": OptionWord("key_dim", "int", "key dim", MAX_CHANNELS),
    "v": OptionWord("kv_stride", "int", "key/value stride", 64),
    "value_dim": OptionWord("value_dim", "int", "value dim", MAX_CHANNELS),
    "query_stride": OptionWord("query_stride", "int", "query stride", 64),
    "reduce_groups": OptionWord("reduce_groups", "int", "groups"),
    "k_start": OptionWord("k_start", "int", "start kernel", MAX_KERNEL),
    "k_mid": OptionWord("k_mid", "int", "mid kernel", MAX_KERNEL),
    "k_end": OptionWord("k_end", "int", "end kernel", MAX_KERNEL),
}

# Flags: bare words -> (the BlockSpec fields they set, what they mean).
FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "skip": ({"skip": True}, "a residual (an error where shapes differ)"),
    "noskip": ({"skip": False}, "no residual"),
    "bias": ({"bias": True}, "the conv has a bias"),
    "fixed": ({"fixed": True}, "channels not scaled by the width multiplier"),
    "dw": ({"groups": 0}, "depthwise: one group per input channel"),
    "avg": ({"mode": "avg"}, "average pooling"),
    "max": ({"mode": "max"}, "max pooling"),
    "count_pad": ({"include_pad": True}, "padded zeros count in the average"),
}

# The flag any stem or stage block (and any stage) takes: its output is a feature endpoint.
ENDPOINT = "out"

NETWORK_SETTINGS = ("input", "classes", "width", "depth", "rho", "resolution", "output_stride", "preprocess",
                    "metadata", "defaults", "stem", "stage", "head")  # fmt: skip
DEFAULT_SETTINGS = ("act", "norm", "se", "padding", "layer_scale", "drop_path", "dropout")
