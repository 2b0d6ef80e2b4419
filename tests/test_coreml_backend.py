"""The CoreML backend: the generated MIL program computes the PyTorch function, checked on Linux
by running the same program op by op with archdsl's reference kernels (CoreML prediction needs
macOS; there the real `predict` is checked too). The evaluator's kernels are tested against
PyTorch, and shown to catch a wrong padding or epsilon in a program."""

from __future__ import annotations

import ast
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.runtimes.mil_eval import UnsupportedOp, run_program
from archdsl.runtimes.runners import load_module, runner
from archdsl.runtimes.verify import compare, verify
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, COVERING_SPECS, SPECS, compile_at, every_spec_at

TOLERANCE = 1e-4
warnings.filterwarnings("ignore", message=".*has not been tested with coremltools.*")


@pytest.mark.parametrize(("path", "size"), every_spec_at((96, 96), (97, 75)))
def test_every_spec_agrees_with_torch_block_by_block(path, size):
    net = compile_at(path, size)
    if net is None:  # an octave spec at a size its pooling does not divide: the error is checked
        return
    (report,) = verify(net, ["torch", "coreml"], None, seed=4, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence}"


def test_mnv4_conv_s_agrees_at_full_resolution():
    (report,) = verify(compile_file(SPECS / "mnv4_conv_s.arch"), ["torch", "coreml"], None, seed=5, tolerance=TOLERANCE)
    assert report.ok and report.relative < TOLERANCE


@pytest.mark.parametrize(
    "old, new",
    [('"stem.0", stride=2, padding=(1, 1, 1, 1)', '"stem.0", stride=2, padding=(0, 2, 0, 2)'),  # TF-style pad
     ('"stem.0", stride=2, padding=(1, 1, 1, 1), eps=1e-05', '"stem.0", stride=2, padding=(1, 1, 1, 1), eps=0.001')],
    ids=["wrong-padding", "wrong-epsilon"],
)  # fmt: skip
def test_the_evaluator_catches_a_wrong_pad_or_epsilon_in_the_program(tmp_path, old, new):
    net = compile_file(SPECS / "mnv3_small.arch", resolution=(64, 64))
    code = get_backend("coreml").emit(net)
    assert old in code
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    x = np.random.default_rng(0).standard_normal((1, *net.input_shape), dtype=np.float32)
    ref = runner("torch")[0](get_backend("torch").emit(net), net, str(weights), x)
    run = runner("coreml")[0]
    assert compare("torch", ref, "coreml", run(code, net, str(weights), x), TOLERANCE).ok
    report = compare("torch", ref, "coreml", run(code.replace(old, new), net, str(weights), x), TOLERANCE)
    assert not report.ok and report.first_divergence == "stem.0"


def _program(build):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    return mb.program(input_specs=[mb.TensorSpec(shape=(1, 6, 9, 8))], opset_version=ct.target.iOS16)(build)


@pytest.mark.parametrize("groups, stride, pad", [(1, 1, (1, 1, 1, 1)), (2, 2, (0, 1, 2, 0)), (6, 2, (1, 1, 1, 1))])
def test_conv_kernel_matches_torch(groups, stride, pad):
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((6, 6 // groups, 3, 3), dtype=np.float32), rng.standard_normal(6, dtype=np.float32)
    x = rng.standard_normal((1, 6, 9, 8), dtype=np.float32)
    prog = _program(lambda image: mb.conv(x=image, weight=w, bias=b, strides=[stride] * 2, pad_type="custom",
                                          pad=list(pad), groups=groups, name="y"))  # fmt: skip
    got = run_program(prog, {"image": x})["y"]
    t, b_, left, r = pad
    want = F.conv2d(
        F.pad(torch.from_numpy(x), (left, r, t, b_)), torch.from_numpy(w), torch.from_numpy(b), stride, groups=groups
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_pool_and_activation_kernels_match_torch():
    from coremltools.converters.mil import Builder as mb

    x = np.random.default_rng(1).standard_normal((1, 6, 9, 8), dtype=np.float32) * 4

    def build(image):
        mb.max_pool(x=image, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1], name="max")
        mb.avg_pool(x=image, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
                    exclude_padding_from_average=True, name="avg")  # fmt: skip
        mb.gelu(x=image, mode="EXACT", name="gelu")
        mb.gelu(x=image, mode="TANH_APPROXIMATION", name="gelu_tanh")
        mb.sigmoid_hard(x=image, alpha=1.0 / 6.0, beta=0.5, name="hsig")
        return mb.silu(x=image, name="silu")

    out = run_program(_program(build), {"image": x})
    t = torch.from_numpy(x)
    want = {
        "max": F.max_pool2d(t, 3, 2, 1),
        "avg": F.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
        "gelu": F.gelu(t),
        "gelu_tanh": F.gelu(t, approximate="tanh"),
        "hsig": F.hardsigmoid(t),
        "silu": F.silu(t),
    }
    for name, value in want.items():
        np.testing.assert_allclose(out[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_attention_kernels_match_torch():
    from coremltools.converters.mil import Builder as mb

    x = np.random.default_rng(2).standard_normal((1, 6, 9, 8), dtype=np.float32)
    y = np.random.default_rng(3).standard_normal((1, 1, 8, 5), dtype=np.float32)

    def build(image):
        mb.softmax(x=image, axis=-1, name="softmax")
        mb.matmul(x=image, y=y, name="matmul")  # the batch dims of y broadcast over 6 heads
        mb.transpose(x=image, perm=[0, 2, 3, 1], name="transpose")
        return mb.upsample_bilinear(x=image, scale_factor_height=2, scale_factor_width=3, align_corners=False,
                                    half_pixel_centers=True, name="up")  # fmt: skip

    out = run_program(_program(build), {"image": x})
    t = torch.from_numpy(x)
    want = {
        "softmax": t.softmax(-1),
        "matmul": t @ torch.from_numpy(y),
        "transpose": t.permute(0, 2, 3, 1),
        "up": F.interpolate(t, size=(18, 24), mode="bilinear", align_corners=False),
    }
    for name, value in want.items():
        np.testing.assert_allclose(out[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_token_kernels_match_torch():
    """Mobile-Former's ops: LayerNorm over the last axis, a linear layer on (1, count, dim)
    tokens, element-wise maximum and subtraction, and BatchNorm of a rank-3 (N, C, L) tensor."""
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 9, 8), dtype=np.float32) * 3
    g, b, wt, bias = (rng.standard_normal(s, dtype=np.float32) for s in ((8,), (8,), (5, 8), (5,)))
    stats = [rng.standard_normal(6, dtype=np.float32) for _ in range(3)] + [rng.uniform(0.5, 2, 6).astype(np.float32)]

    def build(image):
        tokens = mb.reshape(x=image, shape=[1, 54, 8], name="tokens")
        mb.layer_norm(x=tokens, axes=[-1], gamma=g, beta=b, epsilon=1e-5, name="ln")
        mb.linear(x=tokens, weight=wt, bias=bias, name="linear")
        mb.maximum(x=image, y=mb.sub(x=image, y=1.0, name="sub"), name="max")
        rows = mb.reshape(x=image, shape=[1, 6, -1], name="rows")
        return mb.batch_norm(x=rows, mean=stats[0], variance=stats[3], gamma=stats[1], beta=stats[2], epsilon=1e-5,
                             name="bn")  # fmt: skip

    out = run_program(_program(build), {"image": x})
    t = torch.from_numpy(x)
    tokens = t.reshape(1, 54, 8)
    mean, gamma, beta, var = (torch.from_numpy(s) for s in stats)
    want = {
        "ln": F.layer_norm(tokens, (8,), torch.from_numpy(g), torch.from_numpy(b), 1e-5),
        "linear": F.linear(tokens, torch.from_numpy(wt), torch.from_numpy(bias)),
        "max": torch.maximum(t, t - 1.0),
        "bn": F.batch_norm(t.reshape(1, 6, -1), mean, var, gamma, beta, eps=1e-5),
    }
    for name, value in want.items():
        np.testing.assert_allclose(out[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_an_op_without_a_reference_kernel_raises():
    from coremltools.converters.mil import Builder as mb

    with pytest.raises(UnsupportedOp, match="'tanh'"):
        run_program(_program(lambda image: mb.tanh(x=image, name="y")), {"image": np.zeros((1, 6, 9, 8), np.float32)})


# coremltools' conversion passes see the ops each construct gives: the covering specs hold them all.
@pytest.mark.parametrize("path", COVERING_SPECS, ids=lambda p: p.stem)
def test_every_construct_exports_an_ml_program_that_loads(path, tmp_path):
    import coremltools as ct

    from archdsl.analysis.cost import network_cost
    from archdsl.cli import main as cli

    out = tmp_path / f"{path.stem}.mlpackage"
    assert cli.main(["export", str(path), "--backend", "coreml", "--random-weights", "-o", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # nothing else left behind
    net = compile_file(path)
    spec = ct.models.MLModel(str(out), skip_model_load=True).get_spec()
    assert [(i.name, list(i.type.multiArrayType.shape)) for i in spec.description.input] == [
        ("image", [1, *net.input_shape])
    ]
    outputs = [(o.name, list(o.type.multiArrayType.shape)) for o in spec.description.output]
    assert outputs == [(name, [1, *shape]) for name, shape in net.outputs()]
    meta = spec.description.metadata.userDefined
    cost = network_cost(net)
    assert (meta["archdsl.network"], meta["archdsl.source_hash"]) == (net.name, net.source_hash)
    assert (meta["archdsl.params"], meta["archdsl.macs"]) == (str(cost.params), str(cost.macs))
    assert spec.WhichOneof("Type") == "mlProgram"


@pytest.mark.skipif(sys.platform != "darwin", reason="CoreML prediction needs macOS (MLModel.predict); on Linux the same "
                    "MIL program is checked op by op with the reference evaluator in the tests above")  # fmt: skip
def test_coreml_predict_agrees_with_torch(tmp_path):
    net = compile_file(SPECS / "mnv4_conv_s.arch")
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    x = np.random.default_rng(0).standard_normal((1, *net.input_shape), dtype=np.float32)
    module = load_module(get_backend("coreml").emit(net), "predict_check")
    logits = module.convert(str(weights)).predict({"image": x})["logits"]
    ref = runner("torch")[0](get_backend("torch").emit(net), net, str(weights), x)["head.2"]
    assert np.max(np.abs(logits - ref)) / max(1.0, np.max(np.abs(ref))) <= TOLERANCE


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_generated_coreml_imports_only_coremltools(path):
    tree = ast.parse(get_backend("coreml").emit(compile_file(path)))  # what the emitter writes now
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert {m.split(".")[0] for m in top} <= {"__future__", "coremltools"}
    lazy = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} - top
    assert lazy <= {"safetensors.numpy"}  # the weight loader; archdsl's evaluator runs the program from outside
