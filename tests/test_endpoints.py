"""Feature endpoints (`out` on a block or a stage): the network as a backbone. Checked in the
language (names, repeats, reductions, located errors), in the PyTorch feature extractor against
the full model's own block outputs, its timm-style `feature_info` and what it leaves out, in
every backend and export (named outputs), and in `verify`, which compares every endpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from archdsl.analysis.cost import block_cost
from archdsl.analysis.report import backbone_cost, cost_json
from archdsl.cli.main import main as cli
from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.runners import reported_paths
from archdsl.runtimes.verify import verify
from archdsl.runtimes.weights import init_weights, save_weights

BACKBONE = """\
network bb {
  input 64x48x3
  classes 10
  stem conv k3 s2 c16 out
  stage a out {
    ib k3 s2 e4 c24 x2
  }
  stage b {
    ib k3 s2 e4 c32 x3 out
    ds k5 c32
  }
  stage c out {
    ib k3 s2 e4 c48 se0.25
    ds k3 c48
  }
  stage d {
    ib k3 s2 e4 c64
  }
  head {
    conv k1 c96
    pool avg
    classifier
  }
}
"""


def test_endpoints_are_named_by_stage_and_taken_after_the_last_copy():
    net = compile_text(BACKBONE)
    got = [(e.name, e.path, e.channels, e.hw, e.reduction) for e in net.endpoints]
    assert got == [
        ("stem", "stem.0", 16, (32, 24), 2),
        ("a", "stages.0.blocks.1", 24, (16, 12), 4),
        ("b_2", "stages.1.blocks.2", 32, (8, 6), 8),  # x3: the third copy, not the stage's last block
        ("c", "stages.2.blocks.1", 48, (4, 3), 16),
    ]
    # the backbone's cost is every block up to the last endpoint: stage d and the head are not in it
    blocks = net.blocks()
    assert backbone_cost(net).macs == sum(
        block_cost(b).macs for b in blocks[: blocks.index(net.stages[2].blocks[1]) + 1]
    )
    assert cost_json(net)["endpoints"][3] == {"name": "c", "path": "stages.2.blocks.1", "channels": 48, "hw": [4, 3],
                                              "reduction": 16}  # fmt: skip


def test_output_stride_keeps_the_reduction_of_later_endpoints():
    net = compile_text(BACKBONE.replace("  classes 10\n", "  classes 10\n  output_stride 8\n"))
    assert [(e.name, e.hw, e.reduction) for e in net.endpoints][-2:] == [("b_2", (8, 6), 8), ("c", (8, 6), 8)]


def _models(torch_module, tmp_path, text=BACKBONE):
    net, module = torch_module(text)
    save_weights(init_weights(net, 0), tmp_path / "w.safetensors")
    full = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors")).eval()
    backbone = module.load_weights(module.build_model(features_only=True), str(tmp_path / "w.safetensors")).eval()
    return net, module, full, backbone


def test_the_torch_backbone_returns_the_full_models_block_outputs(torch_module, tmp_path):
    net, _, full, backbone = _models(torch_module, tmp_path)
    seen = {}
    for e in net.endpoints:
        full.get_submodule(e.path).register_forward_hook(lambda _m, _i, y, name=e.name: seen.__setitem__(name, y))
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        full(x)
        features = backbone(x)
    assert [f.shape[1:] for f in features] == [(e.channels, *e.hw) for e in net.endpoints]
    for e, f in zip(net.endpoints, features, strict=True):
        assert torch.equal(f, seen[e.name]), e.name
    assert backbone.feature_info == [{"name": e.name, "module": e.path, "num_chs": e.channels, "reduction": e.reduction}
                                     for e in net.endpoints] == full.feature_info  # fmt: skip


def test_the_torch_backbone_has_nothing_after_the_last_endpoint(torch_module, tmp_path):
    net, module, full, backbone = _models(torch_module, tmp_path)
    assert not hasattr(backbone, "head") and len(backbone.stages) == 3 and len(backbone.stages[2].blocks) == 2
    assert sum(p.numel() for p in backbone.parameters()) == backbone_cost(net).params
    # its weights are the full model's, under the same names; a backbone's own file loads back
    own = full.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in backbone.state_dict().items())
    module.save_weights(backbone, str(tmp_path / "backbone.safetensors"))
    again = module.load_weights(module.build_model(features_only=True), str(tmp_path / "backbone.safetensors"))
    assert again.state_dict().keys() == backbone.state_dict().keys()
    with pytest.raises(KeyError, match="missing"):  # but it is not the whole network
        module.load_weights(module.build_model(), str(tmp_path / "backbone.safetensors"))


def test_a_stem_endpoint_alone_keeps_only_the_stem(torch_module, tmp_path):
    text = BACKBONE.replace("stage a out", "stage a").replace(" x3 out", " x3").replace("stage c out", "stage c")
    net, _, full, backbone = _models(torch_module, tmp_path, text)
    assert [e.name for e in net.endpoints] == ["stem"] and len(backbone.stages) == 0
    x = torch.randn(1, *net.input_shape)
    with torch.no_grad():
        (y,) = backbone(x)
    assert torch.equal(y, full.stem(x))


def test_verify_compares_every_endpoint_in_every_backend_and_the_deploy_form(tmp_path, capsys):
    net = compile_text(BACKBONE)
    expected = ["features.stem", "features.a", "features.b_2", "features.c"]
    assert reported_paths("tflite", net) == [*expected, "head.2"]  # the logits last, as the report reads them
    assert reported_paths("keras", net)[-5:] == [*expected, "head.2"]
    spec = tmp_path / "bb.arch"
    spec.write_text(BACKBONE)
    for deploy in ([], ["--deploy"]):
        assert cli(["verify", str(spec), "--backends", "torch,keras,tflite,coreml", *deploy]) == 0
        assert "all backends agree" in capsys.readouterr().out


def test_verify_sees_a_backbone_that_returns_the_wrong_tensor(tmp_path, monkeypatch):
    """A feature extractor whose endpoints are swapped is a mismatch, though every block agrees."""
    from archdsl.codegen.registry import get_backend

    net = compile_text(BACKBONE)
    emit = get_backend("keras").emit
    swapped = emit(net).replace('features["a"] = x', 'features["a"] = shortcut')
    assert swapped != emit(net)
    monkeypatch.setattr(type(get_backend("keras")), "emit", lambda self, n: swapped)
    (report,) = verify(net, ["torch", "keras"], None, 0, 1e-4)
    assert not report.ok and report.first_divergence == "features.a" and not report.unmatched


def _export_features(spec, backend: str, out) -> int:
    return cli(["export", str(spec), "--backend", backend, "--features", "--random-weights", "-o", str(out)])


def test_exports_have_one_named_output_per_endpoint(tmp_path):
    import coremltools as ct
    import tensorflow as tf

    spec = tmp_path / "bb.arch"
    spec.write_text(BACKBONE)
    assert _export_features(spec, "tflite", tmp_path / "bb.tflite") == 0
    runner = tf.lite.Interpreter(model_path=str(tmp_path / "bb.tflite")).get_signature_runner()
    out = runner(image=np.zeros((1, 64, 48, 3), np.float32))
    net = compile_text(BACKBONE)
    assert {k: v.shape for k, v in out.items()} == {e.name: (1, *e.hw, e.channels) for e in net.endpoints}
    assert _export_features(spec, "coreml", tmp_path / "bb.mlpackage") == 0
    described = ct.models.MLModel(str(tmp_path / "bb.mlpackage"), skip_model_load=True).get_spec().description
    assert [o.name for o in described.output] == [e.name for e in net.endpoints]


def test_export_features_without_endpoints_is_refused(tmp_path, capsys):
    spec = tmp_path / "plain.arch"
    spec.write_text(BACKBONE.replace(" out", ""))
    assert _export_features(spec, "tflite", tmp_path / "x.tflite") == 2
    assert "no feature endpoints" in capsys.readouterr().err and not (tmp_path / "x.tflite").exists()


def test_cost_json_says_nothing_of_endpoints_a_network_has_none_of(capsys, tmp_path):
    spec = tmp_path / "plain.arch"
    spec.write_text(BACKBONE.replace(" out", ""))
    assert cli(["cost", str(spec), "--json"]) == 0
    assert "endpoints" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("old", "new", "message", "at"),
    [
        (
            "    conv k1 c96\n",
            "    conv k1 c96 out\n",
            "a feature endpoint is the output of a stem or stage block",
            "out",
        ),
        ("stage d {", "stage d out out {", "a stage needs one name", "out"),
        ("ds k5 c32", "ds k5 c32 out=1", "'ds' has no option 'out'", "out"),
    ],
)
def test_endpoints_where_they_cannot_be_are_located_errors(old, new, message, at):
    text = BACKBONE.replace(old, new)
    with pytest.raises(ArchError) as exc:
        compile_text(text, "t.arch")
    assert message in exc.value.message
    line = text.splitlines()[exc.value.span.line - 1]
    assert line.index(at, line.index(new.split()[0])) <= exc.value.span.col - 1


@pytest.mark.parametrize("new, message", [
    ("stage b_2 out", "two feature endpoints are named 'b_2'"),  # stage b's third block is b_2 too
    ("stage image out", "the feature endpoint 'image' has the name of the model's input"),
    ("stage logits out", "the feature endpoint 'logits' has the name of the model's input or an output"),
], ids=["twice", "input", "output"])  # fmt: skip
def test_endpoint_names_are_unique_and_not_the_models_own(new, message):
    with pytest.raises(ArchError, match=message) as e:
        compile_text(BACKBONE.replace("stage c out", new), "bb.arch")
    assert e.value.span is not None and e.value.span.line == BACKBONE.splitlines().index("  stage c out {") + 1
