"""The IR: frozen pydantic models, in two layers.

`NetworkSpec` is what a spec says after lowering: stages of `BlockSpec`s with their options,
defaults not yet applied, repeats not expanded, widths not scaled. The passes in `passes/`
turn it, step by step, into a `Network`: every block resolved into explicit layers with input
and output channels, spatial sizes, explicit paddings, activations and norm epsilons, and a
stable dotted path that names it in every backend and in the canonical weight file.

Spans are kept for error reporting and excluded from dumps: compare IRs via `model_dump()`.

Nodes are built with `Node.make`. Every value in them has already been checked, with a located
error, by the lowering and the passes, so the compiler builds them without pydantic's validation
(its first use alone costs a tenth of a compile). With ARCHDSL_VALIDATE_IR=1, as the test suite
runs, `make` validates every node against its schema instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from typing_extensions import Self

Act = Literal["relu", "relu6", "hard_swish", "hard_sigmoid", "swish", "gelu", "gelu_tanh", "sigmoid", "identity"]
ACTIVATIONS: tuple[str, ...] = Act.__args__  # type: ignore[attr-defined]
HW = tuple[int, int]
Padding = tuple[int, int, int, int]  # top, bottom, left, right


_VALIDATE = os.environ.get("ARCHDSL_VALIDATE_IR") == "1"


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    span: Any = Field(default=None, exclude=True, repr=False)

    @classmethod
    def make(cls, **fields: Any) -> Self:
        """The node, validated only under ARCHDSL_VALIDATE_IR=1 (see the module docstring)."""
        return cls(**fields) if _VALIDATE else cls.model_construct(**fields)

    def settings(self) -> dict[str, Any]:
        """The fields' values, span excluded; unlike `model_dump`, nested nodes stay nodes."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "span"}


class Norm(Node):
    """BatchNorm with its epsilon and (PyTorch-convention) momentum, always explicit."""

    kind: Literal["batchnorm"] = "batchnorm"
    eps: float = 1e-5
    momentum: float = 0.1


class SEConfig(Node):
    """How a block's squeeze-excite width and functions are chosen (they differ by family):
    reduced = make_divisible(base channels x ratio, divisor, round_limit)."""

    base: Literal["in", "mid", "out"] = "mid"  # channels the ratio multiplies
    divisor: int = 8
    round_limit: float = 0.9
    act: Act = "relu"
    gate: Act = "hard_sigmoid"


class Rounding(Node):
    """make_divisible(v, divisor, min_value=divisor, round_limit)."""

    divisor: int = 8
    round_limit: float = 0.9


class SEDefaults(Node):
    """SE settings a network or stage gives; None = inherit (field by field)."""

    base: Literal["in", "mid", "out"] | None = None
    divisor: int | None = None
    round_limit: float | None = None
    act: Act | None = None
    gate: Act | None = None


class Defaults(Node):
    """Settings a network or a stage gives to the blocks inside it; None = inherit, field by field."""

    act: Act | None = None
    use_norm: bool | None = None  # False: `norm none`
    eps: float | None = None
    momentum: float | None = None  # PyTorch convention
    se: SEDefaults = SEDefaults.model_construct()
    padding: Literal["symmetric", "same"] | None = None
    layer_scale: float | None = None


# ---- spec level ----------------------------------------------------------------------------


class BlockSpec(Node):
    """One block statement, as written; which options a kind accepts is in `vocabulary.py`."""

    kind: str
    variant: str | None = None  # the uib instantiation as written (ib, extra_dw, ...)
    repeat: int = 1  # of the block, or of its whole group
    group: str | None = None  # blocks from one template use repeat together (`pair ... x3`)
    kernel: tuple[int, ...] | None = None  # uib family: (start, mid, end), 0 = absent
    stride: int = 1
    expand: float | None = None
    mid: int | None = None
    out: int | None = None
    groups: int | None = None  # 0: depthwise (groups = input channels)
    branches: int = 1  # mobileone: parallel k x k conv+BN branches
    heads: int | None = None  # attention: query heads
    key_dim: int | None = None  # attention: per head; the value dim too unless value_dim is given
    value_dim: int | None = None
    kv_stride: int = 1  # attention: key/value downsampling (depthwise k x k, stride v, + BN)
    query_stride: int = 1  # attention: query downsampling (avg pool + BN; bilinear upsample after)
    reduce_groups: int | None = None  # shuffle_v1: groups of the first 1x1 conv (default: g)
    include_pad: bool = False  # pool: count padded zeros in an average
    se: float | None = None
    act: Act | None = None
    use_norm: bool | None = None  # `norm=batchnorm` / `norm=none`; None = inherit
    eps: float | None = None
    norm: Norm | None = None  # resolved by apply_defaults
    bias: bool = False
    skip: bool | None = None  # None: residual wherever shapes allow
    fixed: bool = False  # channels not scaled by the width multiplier
    layer_scale: float | None = None
    drop_path: float = 0.0
    dropout: float = 0.0
    mode: Literal["avg", "max"] | None = None
    padding: Literal["symmetric", "same"] | None = None
    se_config: SEConfig | None = None
    option_spans: Any = Field(default=None, exclude=True, repr=False)  # option name -> Span
    # filled by the passes
    path: str = ""
    pad_mode: Literal["symmetric", "same"] = "symmetric"

    def at(self, *options: str) -> Any:
        """The span of the first of `options` the block was given, else the block's own."""
        for name in options:
            if self.option_spans and name in self.option_spans:
                return self.option_spans[name]
        return self.span


class StageSpec(Node):
    name: str
    blocks: tuple[BlockSpec, ...]
    defaults: Defaults = Defaults.model_construct()


class DepthScaling(Node):
    multiplier: float = 1.0
    fix_first_last: bool = False


class WidthScaling(Node):
    multiplier: float = 1.0
    rounding: Rounding = Rounding.model_construct()


class NetworkSpec(Node):
    name: str
    source_hash: str = ""
    input_hw: HW = (224, 224)
    in_channels: int = 3
    classes: int = 1000
    rho: float = 1.0  # resolution multiplier
    resolution: HW | None = None  # explicit resolution, replacing input_hw
    width: WidthScaling = WidthScaling.model_construct()
    depth: DepthScaling = DepthScaling.model_construct()
    defaults: Defaults = Defaults.model_construct()
    stem: StageSpec
    stages: tuple[StageSpec, ...]
    head: StageSpec
    applied: tuple[str, ...] = ()  # passes already run, so each pass is idempotent


# ---- resolved level ------------------------------------------------------------------------


class ConvBnAct(Node):
    """conv k x k (groups) -> [BatchNorm] -> [act]: the unit most blocks are made of."""

    kind: Literal["conv"] = "conv"
    path: str
    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int = 1
    padding: Padding
    bias: bool = False
    norm: Norm | None
    act: Act
    in_hw: HW
    out_hw: HW
    residual: bool = False  # only when used as a block of its own


class SqueezeExcite(Node):
    """x * gate(expand(act(reduce(mean_hw(x))))), both 1x1 convs with bias."""

    kind: Literal["se"] = "se"
    path: str
    channels: int
    reduced: int
    act: Act
    gate: Act
    hw: HW


class DepthwiseSeparable(Node):
    """dw k x k -> BN+act -> [SE] -> pw 1x1 -> BN [+act for the MobileNetV1 form] [+ residual]."""

    kind: Literal["ds"] = "ds"
    path: str
    variant: Literal["ds", "dsa"] = "ds"  # dsa: MobileNetV1's form, act after pw, no residual
    dw: ConvBnAct
    se: SqueezeExcite | None
    pw: ConvBnAct
    residual: bool
    drop_path: float = 0.0


class UniversalInvertedBottleneck(Node):
    """MobileNetV4 UIB: [dw_start] -> expand -> [dw_mid] -> [SE] -> project -> [dw_end]
    -> [layer scale] -> [+ residual]. IB, ConvNeXt, ExtraDW and FFN are its instantiations."""

    kind: Literal["uib"] = "uib"
    path: str
    variant: str  # ib, convnext, extra_dw, ffn, or uib for other combinations
    dw_start: ConvBnAct | None
    expand: ConvBnAct
    dw_mid: ConvBnAct | None
    se: SqueezeExcite | None
    project: ConvBnAct
    dw_end: ConvBnAct | None
    layer_scale: float | None
    residual: bool
    drop_path: float = 0.0


class FusedInvertedBottleneck(Node):
    """Fused IB (EdgeResidual): full k x k expand conv -> [SE] -> 1x1 project [+ residual]."""

    kind: Literal["fused_ib"] = "fused_ib"
    path: str
    expand: ConvBnAct
    se: SqueezeExcite | None
    project: ConvBnAct
    residual: bool
    drop_path: float = 0.0


class GhostModule(Node):
    """GhostNet's ghost module: a 1x1 `primary` conv to ceil(out / 2) channels and a `cheap`
    3x3 depthwise conv of its output, concatenated (primary first) and cut to `out` channels."""

    path: str
    primary: ConvBnAct
    cheap: ConvBnAct
    out: int


class GhostBottleneck(Node):
    """GhostNet bottleneck: ghost module (act) -> [depthwise k x k, stride s, BN] -> [SE] ->
    ghost module (linear) -> + shortcut: the input, or a depthwise k x k (stride s) + BN and a
    1x1 + BN projection where the shapes differ. No activation after the add."""

    kind: Literal["ghost"] = "ghost"
    path: str
    ghost1: GhostModule
    dw: ConvBnAct | None
    se: SqueezeExcite | None
    ghost2: GhostModule
    shortcut_dw: ConvBnAct | None
    shortcut_pw: ConvBnAct | None
    drop_path: float = 0.0


class ShuffleUnit(Node):
    """ShuffleNetV2 unit. Stride 1: split the channels in halves, the second through pw1 -> dw
    -> pw2, concatenated after the untouched first half. Stride 2: both branches see the whole
    input, the side one through `down_dw` -> `down_pw`, both halve the size. Then the channels
    are shuffled across the two halves (interleaved)."""

    kind: Literal["shuffle_v2"] = "shuffle_v2"
    path: str
    down_dw: ConvBnAct | None
    down_pw: ConvBnAct | None
    pw1: ConvBnAct
    dw: ConvBnAct
    pw2: ConvBnAct


class MobileOneBlock(Node):
    """MobileOne (Vasu et al., 2023): the sum of `branches` k x k conv+BN, a 1x1 conv+BN `scale`
    branch (when k > 1) and a BN of the input, `identity` (when shapes allow), then [SE] -> act.
    The deploy form merges them all into one k x k conv with a bias, the only branch left."""

    kind: Literal["mobileone"] = "mobileone"
    path: str
    branches: tuple[ConvBnAct, ...]  # `<path>.conv_kxk.<i>`; the deploy form's one is `<path>.reparam`
    scale: ConvBnAct | None  # `<path>.conv_scale`
    identity: Norm | None  # BatchNorm of the input, `<path>.identity`
    se: SqueezeExcite | None
    act: Act  # after the sum and SE (the deploy form without SE moves it into its conv)

    @property
    def first(self) -> ConvBnAct:
        return self.branches[0]


class Pool(Node):
    """Pooling: global (output 1x1) or windowed with explicit padding."""

    kind: Literal["pool"] = "pool"
    path: str
    mode: Literal["avg", "max"]
    is_global: bool
    kernel: int = 1
    stride: int = 1
    padding: Padding = (0, 0, 0, 0)
    include_pad: bool = False  # average pooling: padded zeros count in the mean (PyTorch's default)
    channels: int
    in_hw: HW
    out_hw: HW


class ShuffleV1Unit(Node):
    """ShuffleNet (V1) unit: grouped 1x1 `reduce` (+ act) -> channel shuffle (`groups`) -> 3x3
    depthwise `dw` (stride s) -> grouped 1x1 `expand`; stride 1: + input; stride 2: concatenated
    after a 3x3 average pool of the input (`shortcut`, padding counted); then act."""

    kind: Literal["shuffle_v1"] = "shuffle_v1"
    path: str
    reduce: ConvBnAct
    groups: int
    dw: ConvBnAct
    expand: ConvBnAct
    shortcut: Pool | None
    act: Act


class MobileAttention(Node):
    """MobileNetV4 Mobile MQA: pre-BN -> attention -> [layer scale] -> [+ input]. Multi-query
    (`kv_heads` 1: one key and value head shared by every query head) or plain multi-head
    (`kv_heads = heads`). Keys and values may be downsampled (depthwise conv + BN each), queries
    too (avg pool + BN, then a bilinear upsample before the output projection). Channels split
    into heads head-major (channel = head * dim + j); no projection has a bias."""

    kind: Literal["mqa"] = "mqa"
    path: str
    variant: Literal["mqa", "mhsa"]
    norm: Norm | None  # the pre-norm, `<path>.norm`
    channels: int
    hw: HW
    heads: int
    kv_heads: int
    key_dim: int
    value_dim: int
    query_pool: Pool | None  # `<path>.query_pool`, with `query_norm` after it
    query_norm: Norm | None
    query: ConvBnAct  # 1x1 projections: `<path>.query`, `.key`, `.value`, `.output`
    key_down: ConvBnAct | None
    key: ConvBnAct
    value_down: ConvBnAct | None
    value: ConvBnAct
    output: ConvBnAct
    layer_scale: float | None
    residual: bool
    drop_path: float = 0.0


class Classifier(Node):
    """flatten -> [dropout, inert in eval] -> Linear(cin, classes) with bias."""

    kind: Literal["classifier"] = "classifier"
    path: str
    cin: int
    classes: int
    dropout: float = 0.0


Block = Annotated[
    Union[
        ConvBnAct,
        DepthwiseSeparable,
        UniversalInvertedBottleneck,
        FusedInvertedBottleneck,
        MobileOneBlock,
        MobileAttention,
        GhostBottleneck,
        ShuffleUnit,
        ShuffleV1Unit,
        Pool,
        Classifier,
    ],
    Field(discriminator="kind"),
]


class Stage(Node):
    name: str
    path: str
    blocks: tuple[Block, ...]


class Network(Node):
    """A fully resolved network: what cost models and backends read."""

    name: str
    source: str  # the spec file, as given on the command line
    source_hash: str
    input_shape: tuple[int, int, int]  # C, H, W
    classes: int
    width: float
    depth: float
    stem: Stage
    stages: tuple[Stage, ...]
    head: Stage

    def all_stages(self) -> tuple[Stage, ...]:
        return (self.stem, *self.stages, self.head)

    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for s in self.all_stages() for b in s.blocks)
