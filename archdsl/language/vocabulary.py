"""The words of the language: block kinds, the options each accepts, and their spellings.

An option is written either compactly as letters plus a number (`k3`, `s2`, `e4`, `c96`, `x2`,
`se0.25`, `k5/3`) or as `key=expression`; flags are bare words (`skip`, `bias`). The lowering
consults these tables; adding a block kind means adding a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_CONV = {"k", "s", "c", "g", "x", "act", "norm", "eps", "bias", "skip", "noskip", "fixed", "dw", "padding"}
_DS = {"k", "s", "c", "x", "se", "act", "norm", "eps", "skip", "noskip", "fixed", "drop_path", "padding"}
_UIB = {
    "k", "s", "e", "mid", "c", "x", "se", "act", "norm", "eps", "skip", "noskip", "fixed",
    "layer_scale", "drop_path", "padding", "k_start", "k_mid", "k_end",
}  # fmt: skip

_ATTENTION = {
    "h", "d", "v", "k", "c", "x", "value_dim", "query_stride", "norm", "eps", "skip", "noskip", "fixed",
    "layer_scale", "drop_path",
}  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """A block kind as written: the IR kind it lowers to and the options it takes."""

    ir_kind: str
    options: frozenset[str]
    summary: str
    # uib family: how the compact kernel maps to (start, mid, end); None = explicit a/b[/c]
    uib_kernels: str | None = None


KINDS: dict[str, Kind] = {
    "conv": Kind("conv", frozenset(_CONV), "conv k x k -> BN -> act"),
    "ds": Kind("ds", frozenset(_DS), "depthwise-separable, linear pointwise, residual when shapes allow"),
    "dsa": Kind("dsa", frozenset(_DS - {"skip", "noskip", "drop_path"}), "MobileNetV1 depthwise-separable: act after pw, no residual"),
    "uib": Kind("uib", frozenset(_UIB), "universal inverted bottleneck, k<start>/<mid>[/<end>]"),
    "ib": Kind("uib", frozenset(_UIB - {"k_start", "k_mid", "k_end"}), "inverted bottleneck (MobileNetV2)", "mid"),
    "extra_dw": Kind("uib", frozenset(_UIB - {"k_start", "k_mid", "k_end"}), "UIB ExtraDW, k<start>/<mid>", "start_mid"),
    "convnext": Kind("uib", frozenset(_UIB - {"k_start", "k_mid", "k_end"}), "UIB ConvNeXt-like, start dw only", "start"),
    "ffn": Kind("uib", frozenset(_UIB - {"k", "k_start", "k_mid", "k_end"}), "UIB FFN, no depthwise", "none"),
    "fused_ib": Kind("fused_ib", frozenset(_UIB - {"k_start", "k_mid", "k_end", "layer_scale"}), "fused IB: full k x k expand, 1x1 project"),
    "mobileone": Kind("mobileone", frozenset({"k", "s", "c", "g", "dw", "x", "branches", "se", "act", "norm", "eps", "noskip", "fixed"}), "MobileOne: k x k conv+BN branches, 1x1 scale branch, identity BN; summed -> [SE] -> act"),
    "ghost": Kind("ghost", frozenset({"k", "s", "e", "mid", "c", "x", "se", "act", "norm", "eps", "fixed", "drop_path"}), "GhostNet bottleneck: ghost module -> [dw, stride] -> [SE] -> linear ghost module, + shortcut"),
    "shuffle_v1": Kind("shuffle_v1", frozenset({"g", "s", "c", "mid", "x", "act", "norm", "eps", "fixed", "reduce_groups"}), "ShuffleNet unit: grouped 1x1 -> shuffle -> dw 3x3 -> grouped 1x1, + input (s1) or concat avg pool (s2)"),
    "shuffle_v2": Kind("shuffle_v2", frozenset({"s", "c", "x", "act", "norm", "eps", "fixed"}), "ShuffleNetV2 unit: split (or two stride-2 branches), 1x1 -> dw 3x3 -> 1x1, concat, channel shuffle"),
    "mqa": Kind("mqa", frozenset(_ATTENTION), "Mobile MQA: pre-BN, multi-query attention (one shared key/value head), layer scale, residual"),
    "mhsa": Kind("mqa", frozenset(_ATTENTION), "multi-head self-attention: as mqa with a key/value head per query head"),
    "pool": Kind("pool", frozenset({"avg", "max", "k", "s", "padding", "count_pad"}), "pooling: global unless k is given"),
    "classifier": Kind("classifier", frozenset({"dropout"}), "flatten -> dropout -> linear to the classes"),
}  # fmt: skip

NETWORK_SETTINGS = ("input", "classes", "width", "depth", "rho", "resolution", "defaults", "stem", "stage", "head")
DEFAULT_SETTINGS = ("act", "norm", "se", "padding", "layer_scale")
