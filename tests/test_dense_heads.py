"""Dense-prediction heads (`head ssdlite`, `head lraspp`) on feature endpoints: the specs are
torchvision's SSDLite320 and LR-ASPP on MobileNetV3-Large (figures, and the same outputs as a
torch-only rebuild of torchvision's models given the same weights), every backend agrees on
their named outputs, exports name them, and misuse is a located error."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision_heads_reference as tv

from archdsl.cli.main import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.runners import reported_paths
from archdsl.runtimes.verify import verify
from conftest import DETECTOR, REFERENCE, ROOT, SPECS, import_code

SSD, LRASPP = SPECS / "ssdlite320_mnv3_large.arch", SPECS / "lraspp_mnv3_large.arch"
# spec -> (reference builder, its state_dict renamed to archdsl's weight names)
REBUILT = {SSD: (tv.ssdlite320_mobilenet_v3_large, tv.ssdlite_to_archdsl_state),
           LRASPP: (tv.lraspp_mobilenet_v3_large, tv.lraspp_to_archdsl_state)}  # fmt: skip


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random BatchNorm statistics and affine terms, so that every tensor matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("spec", [SSD, LRASPP], ids=lambda p: p.stem)
def test_the_generated_model_is_torchvisions_network(spec, tmp_path):
    """Same weights, same input: the generated PyTorch model gives the rebuilt torchvision model's
    outputs, and both count torchvision's params and MACs."""
    build, rename = REBUILT[spec]
    torch.manual_seed(0)
    reference = _randomised(build(), 0)
    net = compile_file(spec)
    size = net.input_shape[1]
    assert tv.figures(reference, size) == REFERENCE[spec.stem][1:3]
    model = import_code(get_backend("torch").emit(net), spec.stem, tmp_path).build_model().eval()
    model.load_state_dict(rename(reference.state_dict()), strict=True)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        want, got = reference(x), model(x)
    if isinstance(want, dict):
        assert list(got) == list(want) == [name for name, _ in net.outputs()]
        pairs = [(got[k], want[k]) for k in want]
    else:
        pairs = [(got, want)]
    for a, b in pairs:
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_outputs_and_endpoints_of_both_networks():
    ssd, seg = compile_file(SSD), compile_file(LRASPP)
    assert ssd.outputs() == (("bbox_regression", (3234, 4)), ("cls_logits", (3234, 91)))  # 6 anchors x 539 positions
    assert [(e.name, e.channels, e.hw) for e in ssd.endpoints] == [
        ("s5_0", 672, (20, 20)), ("s6", 480, (10, 10)), ("x0", 512, (5, 5)), ("x1", 256, (3, 3)),
        ("x2", 256, (2, 2)), ("x3", 128, (1, 1)),
    ]  # fmt: skip
    assert seg.outputs() == (("out", (21, 520, 520)),)
    assert [(e.name, e.channels, e.hw, e.reduction) for e in seg.endpoints] == [
        ("s2_0", 40, (65, 65), 8), ("s6", 960, (33, 33), 16),
    ]  # fmt: skip
    paths = reported_paths("keras", ssd)
    assert paths[-2:] == ["outputs.bbox_regression", "outputs.cls_logits"] and "head.0" not in paths
    assert reported_paths("tflite", seg) == ["features.s2_0", "features.s6", "outputs.out"]


@pytest.mark.parametrize("spec, size", [(SSD, (160, 160)), (LRASPP, (128, 96))], ids=["ssdlite", "lraspp"])
def test_every_backend_agrees_on_the_heads_outputs(spec, size):
    net = compile_file(spec, resolution=size)
    reports = verify(net, ["torch", "keras", "tflite", "coreml"], None, 0, 1e-4)
    assert all(r.ok for r in reports), [(r.other, r.first_divergence, r.unmatched) for r in reports]


def test_verify_sees_a_head_output_that_is_wrong(monkeypatch):
    """Keras' last upsampling made nearest-neighbour: every block agrees, the output does not."""
    net = compile_file(LRASPP, resolution=(64, 64))
    emit = get_backend("keras").emit
    code = emit(net)
    broken = code.replace('name="head-0-output"', 'name="head-0-output"'.replace("output", "output_"))
    broken = broken.replace('interpolation="bilinear", name="head-0-output_"', 'interpolation="nearest", name="x"')
    assert broken != code
    monkeypatch.setattr(type(get_backend("keras")), "emit", lambda self, n: broken)
    (report,) = verify(net, ["torch", "keras"], None, 0, 1e-4)
    assert not report.ok and report.first_divergence == "outputs.out" and not report.unmatched


def test_keras_on_its_torch_backend_runs_both_heads():
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    for spec in (SSD, LRASPP):
        done = subprocess.run([sys.executable, "-m", "archdsl", "verify", str(spec), "--input", "64x64"],
                              cwd=ROOT, capture_output=True, text=True, env=env)  # fmt: skip
        assert done.returncode == 0 and done.stdout.endswith("all backends agree\n"), done.stderr[-2000:]


def test_exports_name_the_heads_outputs(tmp_path, capsys):
    import tensorflow as tf

    from archdsl.runtimes.runners import load_module
    from archdsl.runtimes.weights import init_weights, save_weights

    spec = tmp_path / "ssd.arch"
    spec.write_text(SSD.read_text().replace("input 320x320x3", "input 96x96x3"))
    assert (
        cli(["export", str(spec), "--backend", "tflite", "--random-weights", "-o", str(tmp_path / "ssd.tflite")]) == 0
    )
    runner = tf.lite.Interpreter(model_path=str(tmp_path / "ssd.tflite")).get_signature_runner()
    out = runner(image=np.zeros((1, 96, 96, 3), np.float32))
    net = compile_file(spec)
    assert {k: v.shape for k, v in out.items()} == {name: (1, *shape) for name, shape in net.outputs()}
    weights = tmp_path / "w.safetensors"
    save_weights(init_weights(net, 0), str(weights))
    program = load_module(get_backend("coreml").emit(net), "ssd_coreml").build_program(str(weights))
    assert [v.name for v in program.functions["main"].outputs] == ["bbox_regression", "cls_logits"]
    capsys.readouterr()


def test_a_dense_network_refuses_a_training_step(capsys):
    assert cli(["verify", str(LRASPP), "--train", "--input", "64x64"]) == 2
    err = capsys.readouterr().err
    assert "dense-prediction head (lraspp)" in err and "Traceback" not in err


HEADLESS = DETECTOR  # two endpoints, 16x16 and 8x8, and an SSDLite head


@pytest.mark.parametrize("old, new, message", [
    ("head ssdlite anchors=4", "head ssdlite", "ssdlite needs the anchors per position"),
    ("stage a out {", "stage a {", "lraspp reads two feature endpoints, low and high: the network has 1"),
    ("head ssdlite anchors=4", "head {\n    conv k1 c8\n    ssdlite anchors=4\n  }", "the head's only block"),
    ("    ib k3 s2 e4 c32\n", "    ib k3 s2 e4 c32\n    ssdlite anchors=2\n", "the head's only block"),
    ("head ssdlite anchors=4", "head ssdlite anchors=4 c8", "'ssdlite' has no option 'c'"),
], ids=["anchors", "lraspp-count", "not-alone", "in-a-stage", "option"])  # fmt: skip
def test_misplaced_or_incomplete_heads_are_located_errors(old, new, message):
    text = HEADLESS.replace(old, new)
    if "lraspp" in message:
        text = text.replace("head ssdlite anchors=4", "head lraspp c16")
    assert text != HEADLESS
    with pytest.raises(ArchError) as e:
        compile_text(text, "n.arch")
    assert message in str(e.value) and e.value.span is not None


def test_without_endpoints_ssdlite_is_an_error_and_a_small_net_compiles():
    with pytest.raises(ArchError, match="it has none"):
        compile_text(HEADLESS.replace(" out {", " {"), "n.arch")
    net = compile_text(HEADLESS, "n.arch")
    rows = 4 * (16 * 16 + 8 * 8)  # 4 anchors on the 16x16 and 8x8 maps
    assert net.outputs() == (("bbox_regression", (rows, 4)), ("cls_logits", (rows, 5)))


def test_the_torch_model_splits_into_endpoints_and_head(torch_module):
    """forward = forward_head(forward_features(x)), forward_features gives the endpoints, and the
    feature extractor has no head; a weight file of the whole network loads into it."""
    net, module = torch_module(HEADLESS)
    model = module.build_model().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        whole, split = model(x), model.forward_head(features)
    assert [tuple(f.shape) for f in features] == [(2, e.channels, *e.hw) for e in net.endpoints]
    assert list(whole) == ["bbox_regression", "cls_logits"]
    for k in whole:
        torch.testing.assert_close(whole[k], split[k])
    backbone = module.build_model(features_only=True).eval()
    assert not hasattr(backbone, "head") and [f["name"] for f in backbone.feature_info] == ["a", "b"]
    assert not any(k.startswith("head.") for k in backbone.state_dict())


def test_lraspp_predicts_at_the_size_of_the_input_it_is_given(torch_module):
    net, module = torch_module(LRASPP.read_text().replace("input 520x520x3", "input 128x128x3"), "seg")
    model = module.build_model().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 128)).shape == (1, 21, 128, 128)
        assert model(torch.randn(1, 3, 96, 80)).shape == (1, 21, 96, 80)  # not the spec's size: the input's


def test_skip_classifier_leaves_out_only_the_layers_sized_by_the_classes(torch_module, tmp_path):
    """Fine-tuning a detector for other classes: the boxes and the backbone load, the scores do not."""
    from safetensors.torch import load_file

    from archdsl.runtimes.weights import init_weights, save_weights

    net, module = torch_module(HEADLESS)
    assert tuple(f"head.0.scores.{i}.pw" for i in range(2)) == module.CLASS_LAYERS
    trained = tmp_path / "trained.safetensors"
    save_weights(init_weights(net, 3), str(trained))  # random weights and BatchNorm statistics
    _, other = torch_module(HEADLESS.replace("classes 5", "classes 7"), "seven")
    fresh = other.build_model()
    own = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith(module.CLASS_LAYERS)}
    other.load_weights(fresh, str(trained), skip_classifier=True)
    state, saved = fresh.state_dict(), load_file(str(trained))
    assert all(torch.equal(state[k], v) for k, v in own.items()) and len(own) == 4  # 2 maps x weight, bias
    assert all(torch.equal(state[k], v) for k, v in saved.items() if not k.startswith(module.CLASS_LAYERS))
