"""The words of the language: block kinds, the options each accepts, and their spellings.

An option is written either compactly as letters plus a number (`k3`, `s2`, `e4`, `c96`, `x2`,
`se0.25`, `k5/3`) or as `key=expression`; flags are bare words (`skip`, `bias`). The lowering
consults these tables; each block kind declares its words and options in its own module.
"""

from __future__ import annotations

from ..blocks import WORDS  # the block kinds as written -> (kind, word): declared in archdsl/blocks/

__all__ = ["COMPACT", "DEFAULT_SETTINGS", "FLAGS", "KWARGS", "NETWORK_SETTINGS", "WORDS"]

# Compact options: letters followed by a number (`k` also takes a/b/c kernel lists).
COMPACT = ("se", "k", "s", "e", "c", "x", "g", "h", "d", "v")

# Keyword options: name -> (BlockSpec field, value type). Kernel forms are handled apart.
KWARGS: dict[str, tuple[str, str]] = {
    "k": ("kernel", "kernel"),
    "s": ("stride", "int"),
    "e": ("expand", "float"),
    "c": ("out", "channels"),
    "x": ("repeat", "int"),
    "g": ("groups", "int"),
    "se": ("se", "float"),
    "mid": ("mid", "channels"),
    "act": ("act", "act"),
    "norm": ("norm", "norm"),
    "eps": ("eps", "float"),
    "layer_scale": ("layer_scale", "float"),
    "drop_path": ("drop_path", "float"),
    "dropout": ("dropout", "float"),
    "padding": ("padding", "padding"),
    "branches": ("branches", "int"),
    "h": ("heads", "int"),
    "d": ("key_dim", "int"),
    "v": ("kv_stride", "int"),
    "value_dim": ("value_dim", "int"),
    "query_stride": ("query_stride", "int"),
    "reduce_groups": ("reduce_groups", "int"),
    "k_start": ("k_start", "int"),
    "k_mid": ("k_mid", "int"),
    "k_end": ("k_end", "int"),
}

FLAGS = ("skip", "noskip", "bias", "fixed", "dw", "avg", "max", "count_pad")

NETWORK_SETTINGS = ("input", "classes", "width", "depth", "rho", "resolution", "defaults", "stem", "stage", "head")
DEFAULT_SETTINGS = ("act", "norm", "se", "padding", "layer_scale")
