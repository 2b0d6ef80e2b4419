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
from typing import TYPE_CHECKING, Any, Literal

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
        """The node, validated only under ARCHDSL_VALIDATE_IR=1 (see the module docstring).
        Otherwise what `model_construct` makes, without its per-field alias handling (the IR has no
        aliases): a network has thousands of nodes, and a sweep builds thousands of networks."""
        if _VALIDATE:
            return cls(**fields)
        plan = _PLANS.get(cls) or _plan(cls)
        values = {name: fields[name] if name in fields else default() for name, default in plan}
        if not fields.keys() <= values.keys():
            raise TypeError(f"{cls.__name__} has no field {sorted(fields.keys() - values.keys())[0]!r}")
        node = cls.__new__(cls)
        object.__setattr__(node, "__dict__", values)
        object.__setattr__(node, "__pydantic_fields_set__", set(fields))
        object.__setattr__(node, "__pydantic_extra__", None)
        object.__setattr__(node, "__pydantic_private__", None)
        return node

    def settings(self) -> dict[str, Any]:
        """The fields' values, span excluded; unlike `model_dump`, nested nodes stay nodes."""
        return {name: getattr(self, name) for name in type(self).model_fields if name != "span"}


_PLANS: dict[type, list[tuple[str, Any]]] = {}


def _plan(cls: type[Node]) -> list[tuple[str, Any]]:
    """Each field of a node class in order, with what makes its default (a required field's
    raises, as pydantic's validation would)."""

    def required(name: str) -> Any:
        def missing() -> Any:
            raise TypeError(f"{cls.__name__} needs {name!r}")

        return missing

    plan = []
    for name, field in cls.model_fields.items():
        if field.is_required():
            plan.append((name, required(name)))
        elif field.default_factory is not None:
            plan.append((name, field.default_factory))
        else:
            plan.append((name, lambda v=field.default: v))
    _PLANS[cls] = plan
    return plan


class Norm(Node):
    """BatchNorm with its epsilon and (PyTorch-convention) momentum, always explicit."""

    kind: Literal["batchnorm"] = "batchnorm"
    eps: float = 1e-5
    momentum: float = 0.1


class SEConfig(Node):
    """How a block's squeeze-excite width and functions are chosen (they differ by family):
    reduced = make_divisible(base channels x ratio, divisor, round_limit)."""

    # channels the ratio multiplies; mid_over_e: the mid channels with the ratio divided by the
    # block's expansion (timm's se_from_exp=False: EfficientNet's SE on the block input)
    base: Literal["in", "mid", "out", "mid_over_e"] = "mid"
    divisor: int = 8
    round_limit: float = 0.9
    act: Act = "relu"
    gate: Act = "hard_sigmoid"


# Per-channel mean and std of [0, 1] pixels, by name: (mean, std).
PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # timm's IMAGENET_DEFAULT_MEAN / _STD
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # timm's IMAGENET_INCEPTION_*: pixels to [-1, 1]
}


class Preprocess(Node):
    """How images are prepared for the network (timm's `pretrained_cfg`): resized with
    `interpolation` so that the centre crop of share `crop_pct` is the input size, scaled to
    [0, 1], then (x - mean) / std per channel."""

    mean: tuple[float, ...] = PRESETS["imagenet"][0]
    std: tuple[float, ...] = PRESETS["imagenet"][1]
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    crop_pct: float = 0.875


def default_preprocess(channels: int) -> Preprocess:
    """ImageNet's statistics for an RGB input; none (mean 0, std 1) for other inputs."""
    return Preprocess.make() if channels == 3 else Preprocess.make(mean=(0.0,) * channels, std=(1.0,) * channels)


class Metadata(Node):
    """Text the deployment formats carry with the model (CoreML's author, license, short
    description and version; ONNX's doc_string and metadata_props); None where the spec is
    silent. Checked printable and bounded by the lowering; backends still quote it."""

    author: str | None = None
    license: str | None = None
    description: str | None = None
    version: str | None = None


class Rounding(Node):
    """make_divisible(v, divisor, min_value=divisor, round_limit)."""

    divisor: int = 8
    round_limit: float = 0.9


class SEDefaults(Node):
    """SE settings a network or stage gives; None = inherit (field by field)."""

    base: Literal["in", "mid", "out", "mid_over_e"] | None = None
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
    drop_path: float | None = None  # stochastic depth of every block with a residual
    drop_path_linear: bool | None = None  # True: timm's schedule, rate x i / N over the N stage blocks
    dropout: float | None = None  # the classifier's


# ---- spec level ----------------------------------------------------------------------------


class BlockSpec(Node):
    """One block statement, as written; which options a kind accepts is in its module in
    `archdsl/blocks/`."""

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
    drop_path: float | None = None  # None: the defaults' (0 without any); set by the passes
    dropout: float | None = None
    mode: Literal["avg", "max"] | None = None
    padding: Literal["symmetric", "same"] | None = None
    aa: Literal["blur"] | None = None  # anti-aliased downsampling of the strided conv
    group_size: int | None = None  # UIB family: channels per group of the depthwise convs (1: depthwise)
    stride_at: Literal["start", "mid", "end"] | None = None  # UIB family: the depthwise conv taking the stride
    dilation: int = 1  # of the block's k x k convs (atrous); `output_stride` multiplies it
    endpoint: bool = False  # `out`: the block's output is a feature endpoint
    anchors: int | None = None  # ssdlite: anchor boxes per position
    alpha: float | None = None  # an octave block: the low-frequency share of its output channels
    alpha_mid: float | None = None  # an octave ib: that of its expanded channels (default: alpha)
    token_count: int | None = None  # `tokens`: Mobile-Former's global tokens, how many
    token_dim: int | None = None  # and their width
    expand_dw2: float | None = None  # mf_down: the second depthwise conv's expansion (0: no bridge, convs only)
    former_heads: int | None = None  # mf, mf_down: the Former's self-attention heads (default 4)
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
    endpoint: bool = False  # `stage NAME out`: its last block's output is a feature endpoint


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
    output_stride: int | None = None  # later strides become dilations (timm's rule, for DeepLab-style heads)
    preprocess: Preprocess | None = None  # None: language.lower_preprocess.default_preprocess
    metadata: Metadata | None = None  # None: no `metadata` section (Metadata() in the Network)
    width: WidthScaling = WidthScaling.model_construct()
    depth: DepthScaling = DepthScaling.model_construct()
    defaults: Defaults = Defaults.model_construct()
    stem: StageSpec
    stages: tuple[StageSpec, ...]
    head: StageSpec
    applied: tuple[str, ...] = ()  # passes already run, so each pass is idempotent
    setting_spans: Any = Field(default=None, exclude=True, repr=False)  # setting name -> Span of its value


# ---- resolved level ------------------------------------------------------------------------


class BlockNode(Node):
    """A resolved block: its kind (the registry's key, `archdsl/blocks/`) and its dotted path.
    Each kind's node class lives in its module there; conv and pool nodes, which other blocks
    contain as layers, live here."""

    kind: str
    path: str


class ConvBnAct(BlockNode):
    """conv k x k (groups) -> [BatchNorm] -> [act]: the unit most blocks are made of."""

    kind: Literal["conv"] = "conv"
    path: str
    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int = 1
    dilation: int = 1
    padding: Padding
    bias: bool = False
    norm: Norm | None
    act: Act
    in_hw: HW
    out_hw: HW
    residual: bool = False  # only when used as a block of its own
    # `blur`: the conv runs at stride 1 (`padding` is for that) and, after its BatchNorm and act,
    # a fixed 3x3 binomial depthwise filter takes `stride` (timm's `aa_layer='blurpc'`).
    aa: Literal["blur"] | None = None

    @property
    def conv_stride(self) -> int:
        return 1 if self.aa else self.stride

    @property
    def conv_hw(self) -> HW:
        """The conv's own output size (before the blur)."""
        if not self.aa:
            return self.out_hw
        top, bottom, left, right = self.padding
        span = self.dilation * (self.kernel - 1)
        return (self.in_hw[0] + top + bottom - span, self.in_hw[1] + left + right - span)


class SqueezeExcite(Node):
    """x * gate(expand(act(reduce(mean_hw(x))))), both 1x1 convs with bias."""

    kind: Literal["se"] = "se"
    path: str
    channels: int
    reduced: int
    act: Act
    gate: Act
    hw: HW


class Pool(BlockNode):
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
    low: int = 0  # global pooling of an octave pair: the low part's channels, pooled and put after
    in_hw: HW
    out_hw: HW
