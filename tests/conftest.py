"""Shared test helpers: compile specs, import generated code, find the reference fixtures."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest

# Every IR node the tests build is validated against its schema (the CLI skips that: see ir.py).
os.environ["ARCHDSL_VALIDATE_IR"] = "1"

from archdsl.cli.generated_tree import has_concrete_network  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# Spec files that define a network to compile (a family-only file is a library).
CONCRETE_SPECS = sorted(p for p in SPECS.glob("*.arch") if has_concrete_network(p))
FIXTURES = Path(os.environ.get("ARCHDSL_FIXTURES", ROOT.parent / "shared" / "reference" / "fixtures"))


def _construct(value: object) -> object:
    """What a layer field says about the code that runs it, not about the sizes: flags and names
    as they are, a count as whether it is above 1 (a stride, groups, dilation), a tuple of ints as
    its length, evenness and whether any is above 1 (asymmetric padding, rectangular kernels)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value > 1
    if isinstance(value, float):
        return value != 0
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ("ints", len(value), len(set(value)) <= 1, any(v > 1 for v in value))
        return tuple(_construct(v) for v in value)
    return type(value).__name__


@functools.cache
def _constructs(path: Path) -> tuple[frozenset, int]:
    """A spec's constructs, and its number of layers (what its slow tests' time grows with)."""
    from archdsl.analysis.layers import network_layers
    from archdsl.blocks import kind_of
    from archdsl.compiler import compile_file

    net = compile_file(path)
    fields = [
        (type(layer).__name__, tuple(sorted((k, _construct(v)) for k, v in vars(layer).items() if k != "path")))
        for layer in network_layers(net)
    ]
    return frozenset([*fields, *(("kind", kind_of(b).name) for b in net.blocks())]), len(fields)


def covering_specs(specs: list[Path] = CONCRETE_SPECS) -> list[Path]:
    """The concrete specs that between them use every construct any spec uses (each layer type
    with every flag, activation, norm, stride, grouping, dilation and padding shape it appears
    with; every block kind), chosen greedily for the most new constructs per layer. The slowest
    every-spec tests (torch.compile, CoreML conversion, training steps) run on these; the
    block-by-block agreement of every backend runs on every spec. A spec that brings a new
    construct joins by itself. Among `specs`, the concrete ones by default."""
    constructs = {p: _constructs(p) for p in specs}
    left, chosen = set().union(*(c for c, _ in constructs.values())), []
    while left:
        best = max(specs, key=lambda p: len(constructs[p][0] & left) / constructs[p][1])
        chosen.append(best)
        left -= constructs[best][0]
    return sorted(chosen)


COVERING_SPECS = covering_specs()


def every_spec_at(*sizes: tuple[int, int]) -> list:
    """(spec, size) parameters: every spec at the first size, the covering specs at the others
    too (an odd size puts the same constructs through odd maps)."""
    return [pytest.param(p, size, id=f"{p.stem}-{size[0]}x{size[1]}") for p in CONCRETE_SPECS
            for i, size in enumerate(sizes) if i == 0 or p in COVERING_SPECS]  # fmt: skip


# Figures copied from the reference (timm 1.0.31, shared/reference/timm_facts.json):
# spec -> (timm model, params, MACs = FlopCounterMode flops / 2 at the default input).
REFERENCE = {
    "mnv1": ("mobilenetv1_100", 4_231_976, 568_740_352, 224),
    "mnv2": ("mobilenetv2_100", 3_504_872, 300_774_272, 224),
    "mnv3_large": ("mobilenetv3_large_100", 5_483_032, 216_589_760, 224),
    "mnv3_small": ("mobilenetv3_small_100", 2_542_856, 56_510_400, 224),
    "efficientnet_lite0": ("efficientnet_lite0", 4_652_008, 385_187_552, 224),
    "tf_efficientnet_lite0": ("tf_efficientnet_lite0", 4_652_008, 385_187_552, 224),
    "efficientnet_lite1": ("tf_efficientnet_lite1", 5_416_680, 600_185_232, 240),
    "efficientnet_lite2": ("tf_efficientnet_lite2", 6_092_072, 859_736_272, 260),
    "efficientnet_lite3": ("tf_efficientnet_lite3", 8_197_096, 1_607_554_544, 300),
    "efficientnet_lite4": ("tf_efficientnet_lite4", 13_006_568, 3_943_564_112, 380),
    "mnv4_conv_s": ("mobilenetv4_conv_small", 3_774_024, 186_005_568, 224),
    "mnv4_conv_m": ("mobilenetv4_conv_medium", 9_715_512, 1_080_244_224, 256),
    "mnv4_conv_blur_m": ("mobilenetv4_conv_blur_medium", 9_715_512, 1_202_577_600, 224),
    "mnv4_conv_l": ("mobilenetv4_conv_large", 32_590_864, 6_376_220_672, 384),
    "mnv4_hybrid_m": ("mobilenetv4_hybrid_medium", 11_074_648, 1_271_183_360, 256),
    "mnv4_hybrid_l": ("mobilenetv4_hybrid_large", 37_764_624, 7_711_877_120, 384),
    "ghostnet_100": ("ghostnet_100", 5_182_508, 141_150_512, 224),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0 (torchvision)", 2_278_604, 144_907_992, 224),
    "mobileone_s0": ("mobileone_s0", 5_293_272, 1_051_935_232, 224),
    "mobileone_s1": ("mobileone_s1", 4_825_192, 830_062_080, 224),
    "mobileone_s2": ("mobileone_s2", 7_884_648, 1_304_027_392, 224),
    "mobileone_s3": ("mobileone_s3", 10_170_600, 1_902_112_768, 224),
    "mobileone_s4": ("mobileone_s4", 14_951_248, 2_986_802_432, 224),
    "ssdlite320_mnv3_large": ("ssdlite320_mobilenet_v3_large (torchvision)", 3_440_060, 583_171_904, 320),
    "lraspp_mnv3_large": ("lraspp_mobilenet_v3_large (torchvision)", 3_221_538, 2_086_219_688, 520),
    # Octave convolution's MobileNets: the official Gluon definitions (facebookresearch/OctConv
    # utils/gluon/utils/mobilenetv{1,2}.py) built in MXNet 1.9.1, params and conv MACs read off
    # the shape-inferred graph. Their README's FLOPs count more: OCTAVE_README_FLOPS.
    "oct_mnv1_075": ("OctConv mobilenet_v1_075, ratio 0.375 (Gluon)", 2_585_560, 211_379_016, 224),
    "oct_mnv1_100": ("OctConv mobilenet_v1_100, ratio 0.5 (Gluon)", 4_231_976, 318_167_680, 224),
    "oct_mnv2_100": ("OctConv mobilenet_v2_100, ratio 0.375 (Gluon)", 3_505_960, 254_031_408, 224),
    "oct_mnv2_1125": ("OctConv mobilenet_v2_1125, ratio 0.5 (Gluon)", 4_243_006, 292_764_600, 224),
    # Mobile-Former: the authors' implementation (AAboys/MobileFormer), torch FlopCounterMode / 2.
    "mobile_former_26m": ("mobile_former_26m (AAboys/MobileFormer)", 3_232_788, 23_550_208, 224),
    "mobile_former_294m": ("mobile_former_294m (AAboys/MobileFormer)", 11_422_648, 286_732_160, 224),
    "mobile_former_508m": ("mobile_former_508m (AAboys/MobileFormer)", 13_976_976, 498_467_680, 224),
}
# The OctConv README's rounded #FLOPs (millions), from the MXNet counter it credits (Ldpe2G's
# CalFlops): conv MACs, plus per average pool its output elements x window, a conv bias per
# output element, and `Activation("relu")` layers (MobileNetV1's stem only) and global pools
# (MobileNetV2's only) per input element.
OCTAVE_README_FLOPS = {"oct_mnv1_075": 213, "oct_mnv1_100": 321, "oct_mnv2_100": 256, "oct_mnv2_1125": 295}


def compile_at(path: Path, size: tuple[int, int], **options):  # type: ignore[no-untyped-def]
    """`compile_file` at `size`; None for an octave spec at a size its 2x2 pooling does not divide
    all the way down (the official definitions cannot run there either): that is a located
    error, checked here, where the every-spec tests try odd sizes."""
    from archdsl.compiler import compile_file
    from archdsl.errors import ArchError

    if path.stem in OCTAVE_README_FLOPS and (size[0] % 32 or size[1] % 32):
        with pytest.raises(ArchError, match="average-pools .* which does not divide it"):
            compile_file(path, resolution=size, **options)
        return None
    return compile_file(path, resolution=size, **options)


# The deploy form where it differs from BatchNorm folding alone (timm `reparameterize_model`):
# spec -> (params, MACs).
REFERENCE_DEPLOY = {
    "mobileone_s0": (2_078_504, 275_110_400),
    "mobileone_s1": (4_764_840, 825_057_024),
    "mobileone_s2": (7_808_168, 1_298_426_496),
    "mobileone_s3": (10_078_312, 1_895_790_592),
    "mobileone_s4": (14_838_352, 2_979_269_760),
}


# A small valid network. `BLOCK` is on line 7 at column 5 (so a column there is 4 + the 1-based
# position in the block's text) and `HEAD` on line 10 at column 5: tests put what they probe there.
SMALL_NET = """\
network n {
  input 32x32x3
  classes 10
  stem conv k3 s2 c16
  stage a {
    ib k3 e4 c16
    BLOCK
  }
  head {
    HEAD
  }
}
"""


# A small detector: two endpoints (16x16 and 8x8) and an SSDLite head with 4 anchors.
DETECTOR = """\
network n {
  input 64x64x3
  classes 5
  stem conv k3 s2 c16
  stage a out {
    ib k3 s2 e4 c24
  }
  stage b out {
    ib k3 s2 e4 c32
  }
  head ssdlite anchors=4
}
"""


# A search space (docs/language.md section 16): 432 candidates, seven dimensions, one `let`.
SPACE = """\
block pair(e=4) {
  ib k{3,5} e=e c32
  ib k3 e=e c32
}

network tiny {
  input 64x64x3
  classes 10
  width {0.75,1.0}
  let e_mid = {4,6}
  defaults {
    act {relu,hard_swish}
  }
  stem conv k3 s2 c16
  stage s1 {
    uib k{0,3,5}/{0,3,5} s2 e=e_mid c24
    ib k3 e=e_mid c24 x{1..3}
  }
  stage s2 {
    pair e=e_mid
  }
  head {
    pool avg
    classifier
  }
}
"""


def small_net(block: str = "", head: str = "pool avg; classifier") -> str:
    """`SMALL_NET` with `block` in its stage (none: the line is left out) and `head`."""
    text = SMALL_NET.replace("HEAD", head)
    return text.replace("BLOCK", block) if block else text.replace("    BLOCK\n", "")


def import_code(code: str, name: str, tmp_path: Path):
    """Import generated source text as a module."""
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"gen_{name}_{abs(hash(str(tmp_path)))}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torch_module(tmp_path):
    """Compile spec text or a spec path to PyTorch and import it."""
    from archdsl.codegen.registry import get_backend
    from archdsl.compiler import compile_file, compile_text

    def build(spec: str | Path, name: str = "net"):
        net = compile_file(spec) if isinstance(spec, Path) else compile_text(spec, "test.arch")
        return net, import_code(get_backend("torch").emit(net), name, tmp_path)

    return build
