"""Importing timm checkpoints: every tensor found under its timm name with its exact shape, and
problems reported by name; with the reference fixtures, the imported networks reproduce the
logits timm computed, in every backend."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.analysis.layers import network_tensors
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.importers.timm import _modules, import_timm, timm_key
from archdsl.runtimes.runners import runner
from archdsl.runtimes.weights import init_weights
from conftest import FIXTURES, SPECS

# spec -> the fixture made from the timm model it reproduces
CHECKPOINTS = {
    "mnv4_conv_s": "mobilenetv4_conv_small",
    "mnv3_small": "mobilenetv3_small_100",
    "mobileone_s0": "mobileone_s0",
    "mnv4_hybrid_m_075": "mobilenetv4_hybrid_medium_075",
}


@pytest.mark.parametrize("backend", ["torch", "keras", "coreml"])
@pytest.mark.parametrize("spec", sorted(CHECKPOINTS))
def test_imported_checkpoint_reproduces_the_reference_logits(spec, backend, tmp_path):
    ckpt, io = FIXTURES / f"{CHECKPOINTS[spec]}.safetensors", FIXTURES / f"{CHECKPOINTS[spec]}.io.npz"
    if not ckpt.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    from archdsl.cli import main as cli

    weights = tmp_path / "w.safetensors"
    assert (
        cli.main(["import-weights", str(SPECS / f"{spec}.arch"), "--from", "timm", str(ckpt), "-o", str(weights)]) == 0
    )
    net = compile_file(SPECS / f"{spec}.arch")
    data = np.load(io)
    run, source = runner(backend)
    # PyTorch and Keras in float64: the random-init hybrid's saturated attention makes its float32
    # logits depend on the CPU's summation order (13% apart on one Xeon, 1e-5 on another), while
    # float64 reproduces timm's within 2.1e-5 everywhere. CoreML's evaluator stays float32.
    precision = {"dtype": "float64"} if backend in ("torch", "keras") else {}
    outputs = run(get_backend(source).emit(net), net, str(weights), data["input"].astype(np.float32), **precision)
    logits = outputs[net.head.blocks[-1].path]
    ref = data["logits"]
    assert np.max(np.abs(logits - ref)) / max(1.0, np.max(np.abs(ref))) <= 1e-4


def _as_timm(spec: str, names_from: str = "uir") -> tuple:
    """A synthetic timm checkpoint for a spec: its canonical weights under timm's names."""
    net = compile_file(SPECS / f"{spec}.arch")
    weights = init_weights(net, 0)
    # timm's naming is told apart per block, by the names present: mark every block as `uir` or not
    blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(net.stages) for j in range(len(stage.blocks))]
    modules = _modules(net, {f"{b}.pw_exp.conv.weight": None for b in blocks} if names_from == "uir" else {})
    return net, weights, {timm_key(k, modules): v for k, v in weights.items()}


# Small networks and checkpoints in timm's names, written out by hand from timm's module layout
# (efficientnet builder: `cn` conv/bn1; `ds` conv_dw/bn1/se/conv_pw/bn2; `ir` conv_pw/bn1/
# conv_dw/bn2/se/conv_pwl/bn3; `uir` dw_start/pw_exp/dw_mid/pw_proj, each .conv and .bn, and
# layer_scale.gamma; conv_stem/bn1, conv_head with bn2 (EfficientNet) or norm_head (MobileNetV4),
# classifier), not from archdsl's own naming table. Rows: timm module, our module, what it is.
TIMM_IR = """\
network eff {
  input 32x32x3
  classes 10
  defaults {
    se base=mid divisor=1
  }
  stem conv k3 s2 c16
  stage a {
    ds k3 c16 se0.25
  }
  stage b {
    ib k3 s2 e4 c24
    ib k5 e3 c24 se0.25
  }
  head {
    conv k1 c64
    pool avg
    classifier
  }
}
"""
TIMM_IR_MODULES = [
    ("conv_stem", "stem.0.conv", ("conv", 16, 3, 3)), ("bn1", "stem.0.bn", ("bn", 16)),
    ("blocks.0.0.conv_dw", "stages.0.blocks.0.dw.conv", ("conv", 16, 1, 3)),
    ("blocks.0.0.bn1", "stages.0.blocks.0.dw.bn", ("bn", 16)),
    ("blocks.0.0.se.conv_reduce", "stages.0.blocks.0.se.reduce", ("conv_bias", 4, 16, 1)),
    ("blocks.0.0.se.conv_expand", "stages.0.blocks.0.se.expand", ("conv_bias", 16, 4, 1)),
    ("blocks.0.0.conv_pw", "stages.0.blocks.0.pw.conv", ("conv", 16, 16, 1)),
    ("blocks.0.0.bn2", "stages.0.blocks.0.pw.bn", ("bn", 16)),
    ("blocks.1.0.conv_pw", "stages.1.blocks.0.expand.conv", ("conv", 64, 16, 1)),
    ("blocks.1.0.bn1", "stages.1.blocks.0.expand.bn", ("bn", 64)),
    ("blocks.1.0.conv_dw", "stages.1.blocks.0.dw_mid.conv", ("conv", 64, 1, 3)),
    ("blocks.1.0.bn2", "stages.1.blocks.0.dw_mid.bn", ("bn", 64)),
    ("blocks.1.0.conv_pwl", "stages.1.blocks.0.project.conv", ("conv", 24, 64, 1)),
    ("blocks.1.0.bn3", "stages.1.blocks.0.project.bn", ("bn", 24)),
    ("blocks.1.1.conv_pw", "stages.1.blocks.1.expand.conv", ("conv", 72, 24, 1)),
    ("blocks.1.1.bn1", "stages.1.blocks.1.expand.bn", ("bn", 72)),
    ("blocks.1.1.conv_dw", "stages.1.blocks.1.dw_mid.conv", ("conv", 72, 1, 5)),
    ("blocks.1.1.bn2", "stages.1.blocks.1.dw_mid.bn", ("bn", 72)),
    ("blocks.1.1.se.conv_reduce", "stages.1.blocks.1.se.reduce", ("conv_bias", 18, 72, 1)),
    ("blocks.1.1.se.conv_expand", "stages.1.blocks.1.se.expand", ("conv_bias", 72, 18, 1)),
    ("blocks.1.1.conv_pwl", "stages.1.blocks.1.project.conv", ("conv", 24, 72, 1)),
    ("blocks.1.1.bn3", "stages.1.blocks.1.project.bn", ("bn", 24)),
    ("conv_head", "head.0.conv", ("conv", 64, 24, 1)), ("bn2", "head.0.bn", ("bn", 64)),
    ("classifier", "head.2.fc", ("linear", 10, 64)),
]  # fmt: skip
TIMM_UIR = """\
network mnv4ish {
  input 32x32x3
  classes 10
  stem conv k3 s2 c16
  stage a {
    conv k3 s2 c24
  }
  stage b {
    extra_dw k3/5 s2 e2 c32
    ffn e2 c32 layer_scale=0.5
  }
  head {
    pool avg
    conv k1 c64
    classifier
  }
}
"""
TIMM_UIR_MODULES = [
    ("conv_stem", "stem.0.conv", ("conv", 16, 3, 3)), ("bn1", "stem.0.bn", ("bn", 16)),
    ("blocks.0.0.conv", "stages.0.blocks.0.conv", ("conv", 24, 16, 3)),
    ("blocks.0.0.bn1", "stages.0.blocks.0.bn", ("bn", 24)),
    ("blocks.1.0.dw_start.conv", "stages.1.blocks.0.dw_start.conv", ("conv", 24, 1, 3)),
    ("blocks.1.0.dw_start.bn", "stages.1.blocks.0.dw_start.bn", ("bn", 24)),
    ("blocks.1.0.pw_exp.conv", "stages.1.blocks.0.expand.conv", ("conv", 48, 24, 1)),
    ("blocks.1.0.pw_exp.bn", "stages.1.blocks.0.expand.bn", ("bn", 48)),
    ("blocks.1.0.dw_mid.conv", "stages.1.blocks.0.dw_mid.conv", ("conv", 48, 1, 5)),
    ("blocks.1.0.dw_mid.bn", "stages.1.blocks.0.dw_mid.bn", ("bn", 48)),
    ("blocks.1.0.pw_proj.conv", "stages.1.blocks.0.project.conv", ("conv", 32, 48, 1)),
    ("blocks.1.0.pw_proj.bn", "stages.1.blocks.0.project.bn", ("bn", 32)),
    ("blocks.1.1.pw_exp.conv", "stages.1.blocks.1.expand.conv", ("conv", 64, 32, 1)),
    ("blocks.1.1.pw_exp.bn", "stages.1.blocks.1.expand.bn", ("bn", 64)),
    ("blocks.1.1.pw_proj.conv", "stages.1.blocks.1.project.conv", ("conv", 32, 64, 1)),
    ("blocks.1.1.pw_proj.bn", "stages.1.blocks.1.project.bn", ("bn", 32)),
    ("blocks.1.1.layer_scale", "stages.1.blocks.1.layer_scale", ("gamma", 32)),
    ("conv_head", "head.1.conv", ("conv", 64, 32, 1)), ("norm_head", "head.1.bn", ("bn", 64)),
    ("classifier", "head.2.fc", ("linear", 10, 64)),
]  # fmt: skip


def _tensor_shapes(what: tuple) -> dict[str, tuple[int, ...]]:
    """A module's tensors in PyTorch layout: (cout, cin per group, k, k) convs, (out, in) linears."""
    kind, *dims = what
    if kind == "bn":
        return {t: (dims[0],) for t in ("weight", "bias", "running_mean", "running_var")}
    if kind == "gamma":
        return {"gamma": (dims[0],)}
    if kind == "linear":
        return {"weight": tuple(dims), "bias": (dims[0],)}
    cout, cin, k = dims
    return {"weight": (cout, cin, k, k), **({"bias": (cout,)} if kind == "conv_bias" else {})}


def _timm_checkpoint(modules: list) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Random tensors under timm's names (with timm's num_batches_tracked), and timm name -> ours."""
    rng = np.random.default_rng(0)
    state, ours = {}, {}
    for timm_module, our_module, what in modules:
        for tensor, shape in _tensor_shapes(what).items():
            value = rng.standard_normal(shape).astype(np.float32)
            state[f"{timm_module}.{tensor}"] = np.abs(value) + 0.5 if tensor == "running_var" else value
            ours[f"{timm_module}.{tensor}"] = f"{our_module}.{tensor}"
        if what[0] == "bn":
            state[f"{timm_module}.num_batches_tracked"] = np.array(7, dtype=np.int64)
    return state, ours


# timm's anti-aliased blocks (`aa_layer='blurpc'`, as mobilenetv4_conv_blur_medium) keep their
# module names: the BlurPool is a stateless `aa` module beside the conv, so the checkpoint is the same.
TIMM_UIR_BLUR = TIMM_UIR.replace("conv k3 s2 c24", "conv k3 s2 c24 aa=blur").replace("s2 e2 c32", "s2 e2 c32 aa=blur")


@pytest.mark.parametrize(
    "spec, modules",
    [(TIMM_IR, TIMM_IR_MODULES), (TIMM_UIR, TIMM_UIR_MODULES), (TIMM_UIR_BLUR, TIMM_UIR_MODULES)],
    ids=["ir", "uir", "uir-blur"],
)
def test_a_timm_named_checkpoint_imports_each_tensor_to_its_place(spec, modules, tmp_path):
    """Catches: a wrong entry in the timm naming table (e.g. bn1 and bn2 of an `ir` block swapped,
    which have one shape): the checkpoint is written from timm's layout, not from that table, so
    unlike a round trip through the table it needs no fixtures and can fail."""
    from safetensors.numpy import load_file

    from archdsl.cli import main as cli
    from archdsl.runtimes.weights import save_weights

    state, ours = _timm_checkpoint(modules)
    (tmp_path / "n.arch").write_text(spec)
    save_weights(state, tmp_path / "timm.safetensors")
    argv = ["import-weights", str(tmp_path / "n.arch"), "--from", "timm", str(tmp_path / "timm.safetensors")]
    assert cli.main([*argv, "-o", str(tmp_path / "w.safetensors")]) == 0
    imported = load_file(str(tmp_path / "w.safetensors"))
    net = compile_text(spec, "n.arch")
    assert sorted(imported) == sorted(ours.values()) == sorted(t.key for t in network_tensors(net))
    wrong = [theirs for theirs, key in ours.items() if not np.array_equal(imported[key], state[theirs])]
    assert not wrong, f"landed elsewhere: {wrong}"


def test_problems_are_reported_by_name():
    net, _, state = _as_timm("mnv4_conv_s")
    del state["blocks.2.1.dw_mid.bn.running_var"]
    state["blocks.3.0.pw_proj.conv.weight"] = np.zeros((128, 576, 3, 3), np.float32)
    state["head.extra"] = np.zeros(3, np.float32)
    with pytest.raises(ArchError) as exc:
        import_timm(net, state)
    text = exc.value.message
    assert "3 problems" in text
    assert (
        "missing: stages.2.blocks.1.dw_mid.bn.running_var (192,) (timm name blocks.2.1.dw_mid.bn.running_var)" in text
    )
    assert (
        "shape: stages.3.blocks.0.project.conv.weight needs (128, 576, 1, 1), timm blocks.3.0.pw_proj.conv.weight has (128, 576, 3, 3)"
        in text
    )  # noqa: E501
    assert "unused: head.extra (3,)" in text


def test_ghostnet_tensors_get_timm_names_and_shapes():
    # names and shapes of timm's ghostnet_100 state dict (timm/models/ghostnet.py, v1)
    expected = {
        "conv_stem.weight": (16, 3, 3, 3),
        "blocks.1.0.ghost1.primary_conv.0.weight": (24, 16, 1, 1),
        "blocks.1.0.ghost1.cheap_operation.0.weight": (24, 1, 3, 3),
        "blocks.1.0.conv_dw.weight": (48, 1, 3, 3),
        "blocks.1.0.shortcut.0.weight": (16, 1, 3, 3),
        "blocks.1.0.shortcut.3.running_var": (24,),
        "blocks.3.0.se.conv_reduce.weight": (20, 72, 1, 1),
        "blocks.6.3.shortcut.2.weight": (112, 80, 1, 1),  # a stride-1 projection: 80 -> 112 channels
        "blocks.8.3.ghost2.cheap_operation.1.weight": (80,),
        "blocks.9.0.conv.weight": (960, 160, 1, 1),
        "blocks.9.0.bn1.running_mean": (960,),
        "conv_head.bias": (1280,),
        "classifier.weight": (1000, 1280),
    }
    net = compile_file(SPECS / "ghostnet_100.arch")
    modules = _modules(net, {})
    names = {timm_key(t.key, modules): t.shape for t in network_tensors(net)}
    assert None not in names and len(names) == len(network_tensors(net)) == 432  # timm's 512 less num_batches_tracked
    assert {k: names.get(k) for k in expected} == expected
    assert not any("blocks.0.0.shortcut" in k or "blocks.0.0.conv_dw" in k for k in names)  # identity, stride 1


SMALL = """\
network n {
  input 32x32x3
  classes 10
  STEM
  stage a {
    ib k3 e4 c16
    BLOCK
  }
  head {
    HEAD
  }
}
"""


def _small(stem: str = "stem conv k3 s2 c16", block: str = "", head: str = "pool avg; classifier"):
    return compile_text(SMALL.replace("STEM", stem).replace("BLOCK", block).replace("HEAD", head), "n.arch")


# id -> (the spec's variation, the block the error names, the line of that block)
UNMAPPED = {
    "empty-stem": ({"stem": "stem { }"}, "its stem is empty", 4),
    "second-stem-conv": ({"stem": "stem { conv k3 s2 c16; conv k3 c16 }"}, "stem.1 (a conv block)", 4),
    "stem-not-a-conv": ({"stem": "stem ds k3 s2 c16"}, "stem.0 (a ds block)", 4),
    "shuffle-in-a-stage": ({"block": "shuffle_v2 c16"}, "stages.0.blocks.1 (a shuffle_v2 block)", 7),
    "mobileone-in-a-stage": ({"block": "mobileone k3 c16"}, "stages.0.blocks.1 (a mobileone block)", 7),
    "two-head-convs": ({"head": "conv k1 c32; conv k1 c64; pool avg; classifier"}, "head.1 (a conv block)", 10),
    "ib-in-the-head": ({"head": "ib k3 e2 c16; pool avg; classifier"}, "head.0 (a uib block)", 10),
    "second-mobileone-stem": (
        {"stem": "stem { mobileone k3 s2 c16; mobileone k3 c16 }", "block": "mobileone k3 c16"},
        "stem.1 (a mobileone block)",
        4,
    ),
}


@pytest.mark.parametrize("change, where, line", UNMAPPED.values(), ids=UNMAPPED.keys())
def test_a_layer_timm_has_no_name_for_is_a_located_error(change, where, line):
    net = _small(**change)
    weights = init_weights(net, 0)
    with pytest.raises(ArchError) as exc:
        import_timm(net, {f"x.{k}": v for k, v in weights.items()})
    assert exc.value.message.startswith("cannot import timm weights into n: ") and where in exc.value.message
    assert exc.value.span is not None and exc.value.span.line == line


def test_the_command_line_names_an_empty_stem(tmp_path, capsys):
    from archdsl.cli import main as cli
    from archdsl.runtimes.weights import save_weights

    spec, ckpt, out = tmp_path / "n.arch", tmp_path / "timm.safetensors", tmp_path / "w.safetensors"
    spec.write_text(SMALL.replace("STEM", "stem { }").replace("BLOCK", "").replace("HEAD", "pool avg; classifier"))
    net, _, state = _as_timm("mnv4_conv_s")
    save_weights(state, ckpt)
    assert cli.main(["import-weights", str(spec), "--from", "timm", str(ckpt), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:4:3: error: cannot import timm weights into n: its stem is empty" in err
    assert "Traceback" not in err and not out.exists()


def test_checkpoint_dtypes_are_converted_or_named():
    net, weights, state = _as_timm("mnv4_conv_s")
    half = {k: v.astype(np.float64) for k, v in state.items()}
    assert all(np.array_equal(import_timm(net, half)[k], weights[k]) for k in weights)  # float64 holds float32 exactly
    state["conv_stem.weight"] = state["conv_stem.weight"].astype(np.int8)
    state["bn1.running_var"] = -state["bn1.running_var"]
    state["blocks.0.0.conv.weight"] = np.full_like(state["blocks.0.0.conv.weight"], np.nan)
    with pytest.raises(ArchError) as exc:
        import_timm(net, state, {"conv_stem.weight": "I8"}, "checkpoint 'c.safetensors'")
    text = exc.value.message
    assert text.startswith("checkpoint 'c.safetensors' does not fit mnv4_conv_s (3 problems): ")
    assert "dtype: stem.0.conv.weight needs floats, timm conv_stem.weight is I8" in text
    assert "negative: timm bn1.running_var, a running variance, has values below 0" in text
    assert "non-finite: timm blocks.0.0.conv.weight holds NaN or Inf" in text
