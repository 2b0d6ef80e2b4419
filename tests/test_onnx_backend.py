"""The ONNX backend: the generated graph computes the PyTorch function, run in ONNX Runtime and
compared block by block on every spec (train and deploy forms, odd sizes); exported models pass
onnx's checker with full shape inference; the code imports only onnx (and NumPy, its arrays)."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest

from archdsl.cli.main import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.runtimes.runners import load_module, runner
from archdsl.runtimes.runners.onnx_runner import session
from archdsl.runtimes.verify import compare, verify
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, ROOT, SPECS, compile_at, every_spec_at

TOLERANCE = 1e-4


@pytest.mark.parametrize(("path", "size"), every_spec_at((96, 96), (97, 75)))
def test_every_spec_agrees_with_torch_block_by_block(path, size):
    net = compile_at(path, size)
    if net is None:  # an octave spec at a size its pooling does not divide: the error is checked
        return
    (report,) = verify(net, ["torch", "onnx"], None, seed=4, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence} {report.unmatched}"


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_every_deploy_form_agrees_with_torch(path):
    net = compile_file(path, resolution=(96, 96), deploy=True)
    (report,) = verify(net, ["torch", "onnx"], None, seed=5, tolerance=TOLERANCE)
    assert report.ok, f"first divergence at {report.first_divergence} {report.unmatched}"


def test_mnv4_hybrid_m_agrees_at_full_resolution():
    (report,) = verify(compile_file(SPECS / "mnv4_hybrid_m.arch"), ["torch", "onnx"], None, 6, TOLERANCE)
    assert report.ok and report.relative < TOLERANCE


def test_onnx_runtime_catches_a_wrong_pad_in_the_graph(tmp_path):
    net = compile_file(SPECS / "mnv3_small.arch", resolution=(64, 64))
    code = get_backend("onnx").emit(net)
    old = 'conv_bn_act(g, x, "stem.0", stride=2, padding=(1, 1, 1, 1)'
    assert old in code
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    x = np.random.default_rng(0).standard_normal((1, *net.input_shape), dtype=np.float32)
    ref = runner("torch")[0](get_backend("torch").emit(net), net, str(weights), x)
    run = runner("onnx")[0]
    assert compare("torch", ref, "onnx", run(code, net, str(weights), x), TOLERANCE).ok
    wrong = run(code.replace(old, old.replace("(1, 1, 1, 1)", "(0, 2, 0, 2)")), net, str(weights), x)
    report = compare("torch", ref, "onnx", wrong, TOLERANCE)
    assert not report.ok and report.first_divergence == "stem.0"


def _export(spec, out, *extra: str) -> int:
    return cli(["export", str(spec), "--backend", "onnx", "--random-weights", "-o", str(out), *extra])


def test_export_writes_a_checked_model_that_runs(tmp_path, capsys):
    import onnx

    spec = SPECS / "mnv4_conv_s.arch"
    assert _export(spec, tmp_path / "m.onnx") == 0
    assert "wrote" in capsys.readouterr().err and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    assert [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output] == [
        ("logits", [1, 1000])
    ]
    net = compile_file(spec)
    assert {p.key: p.value for p in model.metadata_props}["archdsl.source_hash"] == net.source_hash
    # the file computes what the generated code does with the same (seed 0) weights
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    x = np.random.default_rng(1).standard_normal((1, *net.input_shape), dtype=np.float32)
    (logits,) = session(onnx.load(str(tmp_path / "m.onnx"))).run(None, {"image": x})
    built = load_module(get_backend("onnx").emit(net), "export_check").build_model(str(weights))
    np.testing.assert_array_equal(logits, session(built).run(None, {"image": x})[0])


def test_export_to_stdout_and_of_a_backbone(tmp_path):
    import onnx

    done = subprocess.run([sys.executable, "-m", "archdsl", "export", "specs/lraspp_mnv3_large.arch", "--backend",
                           "onnx", "--random-weights", "--features", "-o", "-"], cwd=ROOT, capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    model = onnx.load_from_string(done.stdout)
    assert [o.name for o in model.graph.output] == ["s2_0", "s6"]
    assert b"wrote stdout" in done.stderr


def test_dense_heads_export_their_named_outputs(tmp_path, capsys):
    import onnx

    assert _export(SPECS / "ssdlite320_mnv3_large.arch", tmp_path / "ssd.onnx") == 0
    shapes = [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim])
              for o in onnx.load(str(tmp_path / "ssd.onnx")).graph.output]  # fmt: skip
    assert shapes == [("bbox_regression", [1, 3234, 4]), ("cls_logits", [1, 3234, 91])]
    capsys.readouterr()


def test_quantize_and_precision_are_refused(capsys):
    assert _export(SPECS / "mnv1.arch", "x.onnx", "--quantize", "fp16") == 2
    assert "--quantize is for tflite; onnx exports float32" in capsys.readouterr().err
    assert _export(SPECS / "mnv1.arch", "x.onnx", "--precision", "fp16") == 2


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_generated_onnx_imports_only_onnx(path):
    tree = ast.parse(get_backend("onnx").emit(compile_file(path)))
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert {m.split(".")[0] for m in top} <= {"__future__", "onnx", "numpy"}
    lazy = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} - top
    assert lazy <= {"safetensors.numpy"}  # the weight loader


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_every_value_has_a_static_shape_and_the_file_is_ir_8(path, tmp_path):
    """Full shape inference leaves no dimension unknown (execution providers that compile the
    graph, NNAPI's or CoreML's, need them), and the file loads in runtimes that read IR 8."""

    net = compile_file(path, resolution=(64, 64))
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), weights)
    model = load_module(get_backend("onnx").emit(net), f"static_{path.stem}").build_model(str(weights))
    assert model.ir_version == 8
    values = [*model.graph.value_info, *model.graph.output]
    assert len(values) == len(model.graph.node)  # every node's output
    unknown = [v.name for v in values if any(not d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    assert unknown == []


def test_export_is_deterministic_byte_for_byte(tmp_path, capsys):
    for name in ("a.onnx", "b.onnx"):
        assert _export(SPECS / "shufflenet_v1_g3.arch", tmp_path / name, "--deploy") == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    capsys.readouterr()
