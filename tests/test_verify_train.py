"""Training-time equivalence (issue 18, point 4): `archdsl verify --train` takes one training
step in PyTorch and in Keras on the same weights and batch and compares the loss, each block's
output, every gradient, the updated weights and the BatchNorm running statistics, block by
block. Every spec agrees at a small resolution; a Keras BatchNorm that updates its running
variance as Keras' own layer does, or one whose gradient is wrong, is caught and placed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from archdsl.analysis.layers import network_tensors
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.stochastic_depth import without_stochastic_layers
from archdsl.runtimes.runners import tensor_outputs, train_step
from archdsl.runtimes.verify_train import batch, compare_steps, compare_tensors, gradient_errors, verify_train
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, ROOT, covering_specs, small_net

QUANTITIES = ["loss", "outputs", "gradients", "weights after", "running stats"]


def _weights(net, tmp_path) -> str:
    path = str(tmp_path / "w.safetensors")
    save_weights(init_weights(net, 0), path)
    return path


# The classifiers: a dense-prediction network refuses a training step (tests/test_dense_heads.py).
# A wrong gradient or statistic comes from a construct's code: the covering specs hold them all.
CLASSIFIERS = covering_specs(
    [p for p in CONCRETE_SPECS if p.stem not in ("ssdlite320_mnv3_large", "lraspp_mnv3_large")]
)


@pytest.mark.parametrize("spec", CLASSIFIERS, ids=lambda p: p.name)
def test_one_training_step_agrees_in_torch_and_keras(spec, tmp_path):
    # 64x64: every spec's smallest map still holds 4 values per channel at batch 4, enough for
    # BatchNorm's batch statistics to be well conditioned (see verify_train's docstring).
    net = compile_file(spec, resolution=(64, 64))
    [report] = verify_train(net, ["torch", "keras"], _weights(net, tmp_path), 0, 1e-5, 4, 0.1)
    assert [q.name for q in report.quantities] == QUANTITIES
    assert report.ok, [q for q in report.quantities if not q.ok]
    counts = {q.name: q.count for q in report.quantities}
    statistics = [t.key for t in network_tensors(net) if t.key.endswith((".running_mean", ".running_var"))]
    assert counts["running stats"] == len(statistics) > 0
    # every block's output, and a pair's second tensor (an octave pair's low part, a map's tokens)
    assert counts["gradients"] == counts["weights after"] > counts["outputs"] == len(tensor_outputs(net))
    assert len(tensor_outputs(net)) >= len(net.blocks())


SPEC = small_net("ib k3 e4 c24 se0.25; mobileone k3 c24 branches=2")


def _steps(tmp_path, keras_code=lambda code: code):  # type: ignore[no-untyped-def]
    """Both frameworks' step on SPEC, the Keras code passed through `keras_code` (a mutant)."""
    net = compile_text(SPEC, "n.arch")
    weights = _weights(net, tmp_path)
    x, labels = batch(net, 4, 0)
    torch_step = train_step("torch")(get_backend("torch").emit(net), net, weights, x, labels, 0.1, "float64")
    code = keras_code(get_backend("keras").emit(net))
    keras_step = train_step("keras")(code, net, weights, x, labels, 0.1, "float64")
    return {q.name: q for q in compare_steps(net, "torch", torch_step, "keras", keras_step, 1e-5).quantities}


def test_keras_own_running_variance_update_is_caught_at_the_first_batchnorm(tmp_path):
    mutant = "variance * (1.0 - keep)"  # Keras' BatchNormalization: the biased batch variance
    found = _steps(tmp_path, lambda code: code.replace("unbiased * (1.0 - keep)", mutant))
    assert not found["running stats"].ok and found["running stats"].first_divergence == "stem.0"
    assert all(found[q].ok for q in QUANTITIES if q != "running stats")  # only the statistics differ
    assert found["running stats"].worst > 1e-4


def test_a_wrong_gradient_is_caught_where_the_forward_pass_agrees(tmp_path):
    original = "y = ops.batch_normalization(x, mean, variance,"
    mutant = "y = ops.batch_normalization(x, mean, ops.stop_gradient(variance),"

    def wrong(code: str) -> str:
        assert original in code
        return code.replace(original, mutant)

    found = _steps(tmp_path, wrong)
    assert found["loss"].ok and found["outputs"].ok and found["running stats"].ok
    assert not found["gradients"].ok and not found["weights after"].ok
    assert found["gradients"].first_divergence == "stem.0"


def test_the_unmutated_small_spec_agrees(tmp_path):
    found = _steps(tmp_path)
    assert all(q.ok for q in found.values()), found


def test_dropout_and_drop_path_are_off_for_the_check_and_nothing_else_changes():
    text = small_net("ib k3 e4 c16").replace(
        "  classes 10\n", "  classes 10\n  defaults { drop_path 0.2 linear; dropout 0.3 }\n"
    )
    net = compile_text(text, "n.arch")
    rates = [getattr(b, f, 0.0) for b in net.blocks() for f in ("drop_path", "dropout")]
    assert any(rates)
    quiet = without_stochastic_layers(net)
    assert not any(getattr(b, f, 0.0) for b in quiet.blocks() for f in ("drop_path", "dropout"))
    strip = {"drop_path", "dropout"}
    assert [b.model_dump(exclude=strip) for b in quiet.blocks()] == [b.model_dump(exclude=strip) for b in net.blocks()]


def test_the_deploy_form_agrees_and_has_no_statistics_to_compare(tmp_path):
    net = deploy_form(compile_text(SPEC, "n.arch"))
    weights = str(tmp_path / "w.safetensors")
    save_weights(init_weights(net, 0), weights)
    [report] = verify_train(net, ["torch", "keras"], weights, 0, 1e-5, 4, 0.1)
    found = {q.name: q for q in report.quantities}
    assert report.ok and found["running stats"].count == 0 and found["gradients"].count > 0
    empty = compare_tensors("gradients", {}, {}, ["stem.0"], 1e-5)
    assert not empty.ok and empty.unmatched == ("nothing to compare",)


def test_stochastic_layers_of_a_spec_do_not_stop_it_agreeing(tmp_path):
    text = SPEC.replace("  classes 10\n", "  classes 10\n  defaults { drop_path 0.3; dropout 0.5 }\n")
    net = compile_text(text, "n.arch")
    [report] = verify_train(net, ["torch", "keras"], _weights(net, tmp_path), 1, 1e-5, 4, 0.1)
    assert report.ok


def test_compare_tensors_reports_what_one_side_lacks_and_mismatched_shapes():
    ref = {"a.blocks.0.w": np.ones(3), "a.blocks.0.v": np.ones(2), "a.blocks.1.w": np.ones(2)}
    other = {"a.blocks.0.w": np.ones(3), "a.blocks.0.v": np.ones(3)}
    q = compare_tensors("weights", ref, other, ["a.blocks.0", "a.blocks.1"], 1e-5)
    assert not q.ok and q.first_divergence is None
    assert q.unmatched == ("a.blocks.1.w only in one backend", "a.blocks.0.v: shapes (2,) and (3,)")


def test_gradients_are_compared_at_their_own_scale_floored_by_the_largest():
    ref = {"b.0.big": np.array([1.0, -2.0]), "b.1.small": np.array([1e-2, 0.0]), "b.2.zero": np.zeros(2)}
    error = gradient_errors(ref)
    assert error(ref["b.1.small"], np.array([1.1e-2, 0.0])) == pytest.approx(0.1)  # its own scale: 10% off
    assert error(ref["b.2.zero"], np.array([1e-12, 0.0])) == pytest.approx(1e-12 / 2e-3)  # rounding noise
    assert error(ref["b.2.zero"], np.array([1e-3, 0.0])) == pytest.approx(0.5)  # not noise
    assert error(ref["b.0.big"], np.array([np.nan, 0.0])) == float("inf")
    paths = ["b.0", "b.1", "b.2"]
    other = {**ref, "b.1.small": np.array([1.1e-2, 0.0])}
    q = compare_tensors("gradients", ref, other, paths, 1e-5, error)
    assert (q.first_divergence, q.worst_block, q.worst) == ("b.1", "b.1", pytest.approx(0.1))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_reports_every_quantity_and_refuses_a_backend_that_cannot_train(tmp_path):
    spec = tmp_path / "n.arch"
    spec.write_text(SPEC)
    done = _cli("verify", str(spec), "--train", "--float32", "--batch", "3", "--lr", "0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "one training step in float32, batch 3x3x32x32, cross-entropy, SGD lr 0.05" in done.stdout
    for name in QUANTITIES:
        assert f"  {name:<15}" in done.stdout
    assert "(tolerance 0.001)" in done.stdout and done.stdout.endswith("the training step agrees in every backend\n")
    refused = _cli("verify", str(spec), "--train", "--backends", "torch,tflite")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "backend 'tflite' cannot train" in refused.stderr and "runs inference only" in refused.stderr
    too_small = _cli("verify", str(spec), "--train", "--batch", "1")
    assert too_small.returncode == 2 and "--batch" in too_small.stderr


# Keras' torch backend: the same generated code, inference and a training step. Keras' type
# promotion off TensorFlow computes some ops (the mean of average pooling) in float32 even on
# float64 tensors, so agreement there is about 1e-6, within the default tolerance.
@pytest.mark.parametrize("spec", ["mnv3_small", "mnv4_hybrid_m", "shufflenet_v1_g3", "mobileone_s0", "ghostnet_100"])
def test_keras_on_its_torch_backend_agrees_in_inference_and_training(spec):
    """`archdsl verify` and `verify --train`, in one process (one import of Keras on torch)."""
    args = ["verify", f"specs/{spec}.arch", "--input", "64x64"]
    code = (f"import sys, keras\nfrom archdsl.cli.main import main\nprint(keras.backend.backend(), flush=True)\n"
            f"sys.exit(main({args!r}) or main({[*args, '--train']!r}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    inference, training = done.stdout.split("all backends agree\n")
    assert inference.startswith("torch\n") and training.endswith("the training step agrees in every backend\n")
