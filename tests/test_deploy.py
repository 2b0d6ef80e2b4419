"""The deploy form: every BatchNorm folded into its conv (with the spec's epsilon). It computes
the train form's function, block by block, for every spec; `cost` reports both forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from archdsl import cli
from archdsl.backends.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.cost import network_cost
from archdsl.errors import ArchError
from archdsl.layers import network_tensors
from archdsl.passes.fold_norms import fold_norms, fold_weights
from archdsl.report import cost_json, cost_table
from archdsl.runners import runner
from archdsl.verify import compare
from archdsl.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, SPECS


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_deploy_form_equals_train_form(path, tmp_path):
    _check_deploy_equals_train(compile_file(path, resolution=(97, 97)), tmp_path)


MOBILEONES = """\
network m {
  input 33x31x3
  classes 10
  defaults {
    padding PAD
  }
  stem mobileone k3 s2 c16 branches=2
  stage a {
    mobileone k3 dw branches=3 norm=none
    mobileone k1 c16 branches=2 norm=none
    mobileone k5 c32 g4 branches=2
    mobileone k3 dw se0.25
  }
  head {
    pool avg; classifier
  }
}
"""


@pytest.mark.parametrize("padding", ["symmetric", "same"])
def test_mobileone_variants_merge_exactly(padding, tmp_path):
    # BN-less branches (no bias to fold), grouped and depthwise identity kernels, 5x5 + 1x1, SE;
    # TF 'same' on odd sizes still pads the stride-2 3x3 conv by 1 on top and left, so it merges
    _check_deploy_equals_train(compile_text(MOBILEONES.replace("PAD", padding)), tmp_path)


def test_branches_that_cannot_merge_are_a_located_error():
    net = compile_text(MOBILEONES.replace("PAD", "same").replace("33x31x3", "32x32x3"), "m.arch")
    with pytest.raises(ArchError) as exc:  # on an even input, 'same' pads a stride-2 3x3 conv 0 on top
        fold_norms(net)
    assert exc.value.span.line == 7 and "cannot merge" in exc.value.message
    assert cost_json(net, "float32")["deploy_total"] is None  # the train form's cost still reports
    assert "deploy form: none" in cost_table(net, "float32")


def _check_deploy_equals_train(train, tmp_path) -> None:
    deploy = fold_norms(train)
    weights = init_weights(train, 0)
    save_weights(weights, tmp_path / "train.safetensors")
    save_weights(fold_weights(train, weights), tmp_path / "deploy.safetensors")
    x = np.random.default_rng(0).standard_normal((1, *train.input_shape), dtype=np.float32)
    run = runner("torch")[0]
    a = run(get_backend("torch").emit(train), train, str(tmp_path / "train.safetensors"), x)
    b = run(get_backend("torch").emit(deploy), deploy, str(tmp_path / "deploy.safetensors"), x)
    report = compare("train", a, "deploy", b, tolerance=1e-5)
    assert report.ok, f"first divergence at {report.first_divergence}"


def test_folding_removes_every_norm_and_adds_a_bias():
    train = compile_file(SPECS / "mnv4_conv_s.arch")
    deploy = fold_norms(train)
    keys = [t.key for t in network_tensors(deploy)]
    assert not any(".bn." in k for k in keys)
    assert "stages.2.blocks.0.expand.conv.bias" in keys
    # params: each BN's gamma and beta (2C) become one conv bias (C)
    norms = [t for t in network_tensors(train) if t.key.endswith(".bn.weight")]
    assert network_cost(deploy).params == network_cost(train).params - sum(t.shape[0] for t in norms)
    assert network_cost(deploy).macs == network_cost(train).macs


def test_cost_reports_both_forms(capsys):
    assert cli.main(["cost", str(SPECS / "mnv4_conv_s.arch"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["params"] == 3_774_024
    assert data["deploy_total"]["params"] == network_cost(fold_norms(compile_file(SPECS / "mnv4_conv_s.arch"))).params
    assert cli.main(["cost", str(SPECS / "mnv4_conv_s.arch")]) == 0
    assert "deploy form (BatchNorm folded, branches merged): 3,761,480 params" in capsys.readouterr().out


def test_deploy_weights_from_the_command_line_load_into_the_deploy_code(tmp_path):
    out = tmp_path / "w.safetensors"
    assert cli.main(["init-weights", str(SPECS / "mnv2.arch"), "--deploy", "-o", str(out)]) == 0
    from safetensors.numpy import load_file

    deploy = compile_file(SPECS / "mnv2.arch", deploy=True)
    assert list(load_file(str(out))) == sorted(t.key for t in network_tensors(deploy))
