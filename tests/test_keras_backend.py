"""The Keras backend computes the same function as the PyTorch one: every spec, block by block,
on shared canonical weights with randomised BN statistics, at even and odd input sizes; TFLite
export agrees too; and breaking one numerical convention is caught at the block it affects."""

from __future__ import annotations

import ast
import itertools
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_property import networks

from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.runtimes.runners import runner
from archdsl.runtimes.verify import compare, run_backends, verify
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, SPECS, compile_at, every_spec_at, small_net

TOLERANCE = 1e-4
# Reduced inputs keep CI fast; 96 and 97 put even and odd sizes through every stride-2 stage.
SIZES = [(96, 96), (97, 75)]


@pytest.mark.parametrize(("path", "size"), every_spec_at(*SIZES))
def test_every_spec_agrees_with_torch_block_by_block(path, size):
    net = compile_at(path, size)
    if net is None:  # an octave spec at a size its pooling does not divide: the error is checked
        return
    (report,) = verify(net, ["torch", "keras"], None, seed=1, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence}"
    assert report.worst_relative <= TOLERANCE


ATTENTION = """\
network att {
  input 28x20x3
  classes 10
  defaults {
    act gelu
    norm batchnorm eps=1e-3
    padding PAD
  }
  stem conv k3 s2 c16
  stage a {
    mqa h4 d8 v2 c16 layer_scale=0.5
    mqa h2 d8 v2 k5 query_stride=2 c16
    mhsa h2 d8 value_dim=12 c24
    mhsa h2 d4 v2 query_stride=2 c24
    mqa h3 d8 c24
  }
  head {
    pool avg; classifier
  }
}
"""


GHOST_AND_SHUFFLE = """\
network gs {
  input 30x26x3
  classes 10
  defaults {
    act relu
    norm batchnorm eps=1e-3
    se base=mid divisor=4 gate=hard_sigmoid
    padding PAD
  }
  stem conv k3 s2 c16
  stage a {
    ghost k3 mid=20 c15 se0.25
    ghost k5 s2 mid=30 c15
    ghost k3 e2 c24
  }
  stage b {
    shuffle_v2 s2 c24
    shuffle_v2 c24 x2
  }
  head {
    pool avg; classifier
  }
}
"""


# attention: kv stride 2 (14x10 -> 7x5), query stride 2, multi-query and multi-head, a value_dim of
# its own; ghost: odd widths (a concatenation cut to 15 of 16 channels), a stride-1 projection
# shortcut (15 -> 24); shuffle units of both strides at odd sizes
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("backend", ["keras", "coreml"])
@pytest.mark.parametrize("spec, seed", [(ATTENTION, 3), (GHOST_AND_SHUFFLE, 4)], ids=["attention", "ghost_shuffle"])
def test_every_variant_of_the_newer_blocks_agrees_with_torch(spec, seed, backend, padding):
    net = compile_text(spec.replace("PAD", padding))
    (report,) = verify(net, ["torch", backend], None, seed=seed, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence}"


def test_mnv4_conv_s_agrees_at_its_full_resolution():
    (report,) = verify(compile_file(SPECS / "mnv4_conv_s.arch"), ["torch", "keras"], None, seed=2, tolerance=TOLERANCE)
    assert report.ok and report.relative < TOLERANCE


@pytest.mark.parametrize("spec, size", [("mnv4_conv_s", (224, 224)), ("mnv3_large", (97, 97))])
def test_tflite_export_agrees_with_torch(spec, size):
    net = compile_file(SPECS / f"{spec}.arch", resolution=size)
    (report,) = verify(net, ["torch", "tflite"], None, seed=3, tolerance=TOLERANCE)
    assert report.ok and report.relative < TOLERANCE


_count = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_agree(text):
    net = compile_text(text, f"rand{next(_count)}.arch")
    (report,) = verify(net, ["torch", "keras"], None, seed=0, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence}\n{text}"


@pytest.mark.parametrize(
    "breakage, first_block",
    [
        # Keras' own BatchNormalization epsilon (1e-3) instead of the spec's 1e-5
        (("    if eps is not None:\n        x = BatchNorm(epsilon=eps,", "    if eps is not None:\n        x = BatchNorm("), "stem.0"),
        # TF 'same' padding instead of explicit symmetric zeros: differs at the first stride-2 conv
        (('        x = layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"{name}-pad")(x)\n', "        pass\n"), "stem.0"),
        # hard_sigmoid with Keras 2's 0.2x + 0.5 cut-offs
        (("return ops.relu6(x + 3.0) / 6.0", "return ops.clip(0.2 * x + 0.5, 0.0, 1.0)"), "stages.0.blocks.0"),
    ],
    ids=["keras-default-bn-eps", "no-explicit-padding", "keras2-hard-sigmoid"],
)  # fmt: skip
def test_breaking_a_convention_is_caught_at_the_first_affected_block(tmp_path, breakage, first_block):
    net = compile_file(SPECS / "mnv3_small.arch", resolution=(64, 64))
    code = get_backend("keras").emit(net)
    old, new = breakage
    assert old in code
    broken = code.replace(old, new)
    if "ZeroPadding2D" in old:
        broken = broken.replace('padding="valid"', 'padding="same"')
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    x = np.random.default_rng(0).standard_normal((1, *net.input_shape), dtype=np.float32)
    ref = runner("torch")[0](get_backend("torch").emit(net), net, str(weights), x)
    good = runner("keras")[0](code, net, str(weights), x)
    bad = runner("keras")[0](broken, net, str(weights), x)
    assert compare("torch", ref, "keras", good, TOLERANCE).ok
    report = compare("torch", ref, "keras", bad, TOLERANCE)
    assert not report.ok and report.first_divergence == first_block


def test_verify_command_reports_and_exits_nonzero_on_mismatch(monkeypatch, capsys):
    from archdsl.cli import main as cli
    from archdsl.codegen import keras as keras_backend

    assert cli.main(["verify", str(SPECS / "mnv1.arch"), "--input", "64x64"]) == 0
    assert "all backends agree" in capsys.readouterr().out
    monkeypatch.setitem(keras_backend.ACT, "relu6", "ops.relu")  # a wrong activation in the generated code
    assert cli.main(["verify", str(SPECS / "mnv1.arch"), "--input", "64x64"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH torch vs keras: first divergence at block stages.0.blocks.0" in out  # first values over 6


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_generated_keras_imports_only_keras(path):
    tree = ast.parse(get_backend("keras").emit(compile_file(path)))  # what the emitter writes now
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= {"__future__", "keras"}
    lazy = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} - top
    lazy |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} - top
    # inside load_weights and save_weights only: the weight file's format, and the standard library
    assert lazy - set(sys.stdlib_module_names) == {"numpy", "safetensors", "safetensors.numpy"}


def test_run_backends_uses_one_input_and_one_weight_file_for_all(tmp_path, monkeypatch):
    """Catches: a fresh input (or weight file) per backend: every run is recorded, and the outputs
    are compared by value, not only by their key sets."""
    from archdsl.runtimes import verify as verify_module

    net = compile_text(small_net("ds k3 c16 se0.25"), "n.arch")
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 5), weights)
    seen = []  # (backend, weight file, input) of every run
    real = verify_module.runner

    def recording(name):  # type: ignore[no-untyped-def]
        run, backend = real(name)

        def recorded(code, network, path, x):  # type: ignore[no-untyped-def]
            seen.append((name, path, x.copy()))
            return run(code, network, path, x)

        return recorded, backend

    monkeypatch.setattr(verify_module, "runner", recording)
    outs = run_backends(net, ["torch", "keras"], str(weights), seed=5)
    assert [(name, path) for name, path, _ in seen] == [("torch", str(weights)), ("keras", str(weights))]
    assert seen[0][2].shape == (1, *net.input_shape) and np.array_equal(seen[0][2], seen[1][2])
    assert list(outs["torch"]) == list(outs["keras"]) == [b.path for b in net.blocks()]
    assert compare("torch", outs["torch"], "keras", outs["keras"], TOLERANCE).ok  # same input: same values
    again, other = (run_backends(net, ["torch"], str(weights), seed=s)["torch"]["head.1"] for s in (5, 6))
    assert np.array_equal(again, outs["torch"]["head.1"]) and not np.allclose(other, again)  # the seed's input


def test_layer_scale_and_identity_se_build_with_the_spec_values():
    text = (
        "network t {\n  input 32x32x3\n  defaults {\n    se act=identity gate=identity\n  }\n  stem conv k3 c8\n"
        "  stage a {\n    ib k3 e2 c8 se0.25 layer_scale=1e-5\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"
    )
    net = compile_text(text)
    from archdsl.runtimes.runners import load_module

    runner("keras")  # quiets TensorFlow
    model = load_module(get_backend("keras").emit(net), "ls").build_model()
    gamma = model.get_layer("stages-0-blocks-0-layer_scale").get_weights()[0]
    assert np.allclose(gamma, 1e-5)
    (report,) = verify(net, ["torch", "keras"], None, seed=0, tolerance=TOLERANCE)
    assert report.ok
