"""Properties over random valid networks: the format round-trips, the passes are idempotent, the
costs add up, and the generated PyTorch model has exactly the reported params and MACs."""

from __future__ import annotations

import itertools

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from archdsl.analysis.cost import network_cost
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_text
from archdsl.ir.pipeline import PIPELINE
from archdsl.language.fmt import format_module
from archdsl.language.loader import load_text
from archdsl.language.lower import lower
from archdsl.language.syntax import parse
from conftest import import_code

ACTS = ["relu", "relu6", "hard_swish", "hard_sigmoid", "swish", "gelu", "gelu_tanh", "identity"]
KERNELS = [3, 5, 7]


KINDS = ["conv", "ds", "dsa", "ib", "extra_dw", "convnext", "ffn", "uib", "fused_ib", "mqa", "mhsa", "ghost"]


@st.composite
def blocks(draw, stride_budget: int, padding: str) -> str:
    # mobileone merges its branches only under symmetric padding (a located error otherwise)
    kind = draw(st.sampled_from(KINDS + ["mobileone"] if padding == "symmetric" else KINDS))
    k = draw(st.sampled_from(KERNELS))
    if kind in ("mqa", "mhsa"):  # attention keeps the spatial size (no query stride here: it must divide it)
        opts = [kind, f"h{draw(st.sampled_from([1, 2, 4]))}", f"d{draw(st.sampled_from([8, 16]))}"]
        opts += draw(st.sampled_from([[], ["v2"], [f"k{k}", "v2"], ["value_dim=24"]]))
        opts.append(f"c{draw(st.sampled_from([8, 16, 24]))}")
        if draw(st.booleans()):
            opts.append("layer_scale=1e-5")
        return " ".join(opts)
    if stride_budget > 0 and draw(st.integers(0, 5)) == 0:  # a stride-2 unit may change the width
        return f"shuffle_v2 s2 c{draw(st.sampled_from([8, 16, 24]))}"
    stride = 2 if kind != "ffn" and stride_budget > 0 and draw(st.booleans()) else 1
    opts = [kind]
    if kind == "extra_dw":
        opts.append(f"k{k}/{draw(st.sampled_from(KERNELS))}")
    elif kind == "uib":
        kernels = [draw(st.sampled_from([0, *KERNELS])) for _ in range(3)]
        opts.append("k" + "/".join(map(str, kernels if any(kernels) else [0, 3, 0])))
    elif kind != "ffn":
        opts.append(f"k{k}")
    if stride == 2:
        opts.append("s2")
    if kind in ("ib", "extra_dw", "convnext", "ffn", "uib", "fused_ib", "ghost"):
        opts.append(draw(st.sampled_from(["e1", "e2", "e3", "e4.5", "mid=24", "mid=13"])))
    if kind == "mobileone":
        if draw(st.booleans()):
            opts[1] = "k1"
        opts.append(draw(st.sampled_from(["branches=1", "branches=3", "dw"])))
    if "dw" not in opts:  # a depthwise block keeps its input channels
        opts.append(f"c{draw(st.sampled_from([8, 16, 24, 40]))}")
    if kind not in ("conv", "dsa") and draw(st.booleans()):
        opts.append("se0.25")
    if draw(st.booleans()):
        opts.append(f"act={draw(st.sampled_from(ACTS))}")
    if kind == "uib" and draw(st.booleans()):
        opts.append("layer_scale=1e-5")
    if draw(st.integers(0, 3)) == 0:
        opts.append("x2")
    return " ".join(opts)


@st.composite
def networks(draw) -> str:
    size = draw(st.integers(17, 48))
    padding = draw(st.sampled_from(["symmetric", "same"]))
    lines = [
        "network rand {",
        f"  input {size}x{draw(st.integers(17, 48))}x3",
        f"  classes {draw(st.sampled_from([10, 1000]))}",
        f"  width {draw(st.sampled_from(['0.5', '0.75', '1.0', '1.3']))}",
        f"  depth {draw(st.sampled_from(['1.0', '1.5']))}",
        "  defaults {",
        f"    act {draw(st.sampled_from(ACTS))}",
        f"    norm batchnorm eps={draw(st.sampled_from(['1e-5', '1e-3']))}",
        f"    se base={draw(st.sampled_from(['in', 'mid', 'out']))} divisor={draw(st.sampled_from([1, 4, 8]))} gate=hard_sigmoid",
        f"    padding {padding}",
        "  }",
        f"  stem conv k3 s2 c{draw(st.sampled_from([8, 16]))}",
    ]
    budget = 2  # stride-2 blocks allowed after the stem, so a 17x17 input keeps a 3x3 map
    for i in range(draw(st.integers(1, 3))):
        lines.append(f"  stage s{i} {{")
        for _ in range(draw(st.integers(1, 3))):
            block = draw(blocks(budget, padding))
            budget -= " s2" in block
            lines.append("    " + block)
        lines.append("  }")
    head = (
        ["pool avg"] + ([f"conv k1 c{draw(st.sampled_from([32, 64]))}"] if draw(st.booleans()) else []) + ["classifier"]
    )
    lines += ["  head {", *("    " + h for h in head), "  }", "}"]
    return "\n".join(lines) + "\n"


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(networks())
def test_format_round_trips(text):
    formatted = format_module(parse(text))
    assert parse(formatted) == parse(text)
    assert format_module(parse(formatted)) == formatted


@SETTINGS
@given(networks())
def test_compiling_is_deterministic_and_the_spec_unchanged_by_the_passes(text):
    spec = lower(load_text(text, "rand.arch"))
    before = spec.model_dump()
    for step in PIPELINE:
        step(spec)
    assert spec.model_dump() == before
    assert compile_text(text, "rand.arch").model_dump() == compile_text(text, "rand.arch").model_dump()


_counter = itertools.count()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(networks())
def test_generated_model_has_the_reported_params_and_macs(tmp_path, text):
    net = compile_text(text, "rand.arch")
    module = import_code(get_backend("torch").emit(net), f"rand{next(_counter)}", tmp_path)
    model = module.build_model().eval()
    cost = network_cost(net)
    assert sum(p.numel() for p in model.parameters()) == cost.params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, *net.input_shape))
    assert out.shape == (1, net.classes)
    assert counter.get_total_flops() == 2 * cost.macs
