"""The deploy form: every BatchNorm folded into its conv (with the spec's epsilon). It computes
the train form's function, block by block, for every spec; `cost` reports both forms."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from archdsl.analysis.cost import network_cost
from archdsl.analysis.layers import network_tensors
from archdsl.analysis.report import cost_json, cost_table
from archdsl.cli import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.ir.deploy_form import deploy_form, deploy_weights
from archdsl.runtimes.runners import runner
from archdsl.runtimes.verify import compare
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import CONCRETE_SPECS, SPECS, import_code, small_net


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_deploy_form_equals_train_form(path, tmp_path):
    # 97x97 puts odd sizes through every stride; an octave spec needs sizes its pooling divides
    _check_deploy_equals_train(
        compile_file(path, resolution=(96, 96) if path.stem.startswith("oct_") else (97, 97)), tmp_path
    )


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
        deploy_form(net)
    assert exc.value.span.line == 7 and "cannot merge" in exc.value.message
    assert cost_json(net, "float32")["deploy_total"] is None  # the train form's cost still reports
    assert "deploy form: none" in cost_table(net, "float32")


def _check_deploy_equals_train(train, tmp_path) -> None:
    deploy = deploy_form(train)
    weights = init_weights(train, 0)
    save_weights(weights, tmp_path / "train.safetensors")
    save_weights(deploy_weights(train, weights), tmp_path / "deploy.safetensors")
    x = np.random.default_rng(0).standard_normal((1, *train.input_shape), dtype=np.float32)
    run = runner("torch")[0]
    a = run(get_backend("torch").emit(train), train, str(tmp_path / "train.safetensors"), x)
    b = run(get_backend("torch").emit(deploy), deploy, str(tmp_path / "deploy.safetensors"), x)
    report = compare("train", a, "deploy", b, tolerance=1e-5)
    assert report.ok, f"first divergence at {report.first_divergence}"


def test_folding_removes_every_norm_and_adds_a_bias():
    train = compile_file(SPECS / "mnv4_conv_s.arch")
    deploy = deploy_form(train)
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
    assert data["deploy_total"]["params"] == network_cost(deploy_form(compile_file(SPECS / "mnv4_conv_s.arch"))).params
    assert cli.main(["cost", str(SPECS / "mnv4_conv_s.arch")]) == 0
    assert "deploy form (BatchNorm folded, branches merged): 3,761,480 params" in capsys.readouterr().out


def test_deploy_weights_from_the_command_line_load_into_the_deploy_code(tmp_path):
    out = tmp_path / "w.safetensors"
    assert cli.main(["init-weights", str(SPECS / "mnv2.arch"), "--deploy", "-o", str(out)]) == 0
    from safetensors.numpy import load_file

    deploy = compile_file(SPECS / "mnv2.arch", deploy=True)
    assert list(load_file(str(out))) == sorted(t.key for t in network_tensors(deploy))


# ---- weight files in either form --------------------------------------------------------------
SMALL = small_net()


@pytest.fixture
def small(tmp_path):
    spec = tmp_path / "n.arch"
    spec.write_text(SMALL)
    files = {"train": tmp_path / "train.safetensors", "deploy": tmp_path / "deploy.safetensors"}
    assert cli.main(["init-weights", str(spec), "-o", str(files["train"])]) == 0
    assert cli.main(["init-weights", str(spec), "--deploy", "-o", str(files["deploy"])]) == 0
    return spec, files


VERIFY = ["--backends", "torch,coreml"]  # no TensorFlow: quick


@pytest.mark.parametrize("form", ["train", "deploy"])
def test_verify_deploy_accepts_weights_in_either_form(small, form, capsys):
    spec, files = small
    assert cli.main(["verify", str(spec), "--deploy", "--weights", str(files[form]), *VERIFY]) == 0
    out, err = capsys.readouterr()
    assert "all backends agree" in out
    assert ("holds the train form of n: folded into the deploy form" in err) == (form == "train")


def test_export_deploy_accepts_deploy_weights(small, tmp_path):
    spec, files = small
    out = tmp_path / "n.tflite"
    assert cli.main(["export", str(spec), "--backend", "tflite", "--deploy", "--weights", str(files["deploy"]),
                     "-o", str(out)]) == 0  # fmt: skip
    assert out.stat().st_size > 0


@pytest.mark.parametrize("command", ["verify", "export"])
def test_deploy_weights_without_deploy_say_so(small, command, tmp_path, capsys):
    spec, files = small
    out = tmp_path / "n.tflite"
    argv = {
        "verify": ["verify", str(spec), *VERIFY],
        "export": ["export", str(spec), "--backend", "tflite", "-o", str(out)],
    }
    assert cli.main([*argv[command], "--weights", str(files["deploy"])]) == 1
    err = capsys.readouterr().err
    assert f"error: weights '{files['deploy']}' hold the deploy form of n (BatchNorm folded, branches merged)" in err
    assert "hint: add --deploy to use them" in err and not out.exists()


@pytest.mark.parametrize("deploy", [False, True])
def test_weights_of_another_network_name_the_form_their_metadata_claims(small, deploy, tmp_path, capsys):
    spec, _ = small
    other = tmp_path / "mnv2.safetensors"
    assert cli.main(["init-weights", str(SPECS / "mnv2.arch"), "-o", str(other)]) == 0
    flag = ["--deploy"] if deploy else []
    assert cli.main(["verify", str(spec), *flag, "--weights", str(other), *VERIFY]) == 1
    err = capsys.readouterr().err
    assert f"weights '{other}' fit neither form of n (its metadata says: the train form of 'mnv2'): missing " in err
    assert f"make weights for this spec with: archdsl init-weights {spec}{' --deploy' if deploy else ''} -o" in err


def test_fold_weights_on_the_command_line(tmp_path, capsys):
    """`archdsl fold-weights`: train-form weights folded into deploy-form ones that the deploy
    code runs to the train code's outputs; deploy-form weights pass as they are; weights of
    another spec are refused, naming what does not fit."""
    spec = tmp_path / "n.arch"
    spec.write_text(small_net("mobileone k3 c16 branches=2; ib k3 e4 c24 se0.25"))
    train_file, deploy_file, again = (tmp_path / f"{n}.safetensors" for n in ("train", "deploy", "again"))
    assert cli.main(["init-weights", str(spec), "--seed", "3", "-o", str(train_file)]) == 0
    assert cli.main(["fold-weights", str(spec), str(train_file), "-o", str(deploy_file)]) == 0
    assert "holds the train form of n: folded into the deploy form" in capsys.readouterr().err
    from safetensors import safe_open

    with safe_open(str(deploy_file), "np") as f:
        assert json.loads(f.metadata()["archdsl"])["deploy"] == "True"
    train, deploy = compile_file(spec), compile_file(spec, deploy=True)
    x = np.random.default_rng(1).standard_normal((1, *train.input_shape), dtype=np.float32)
    run = runner("torch")[0]
    a = run(get_backend("torch").emit(train), train, str(train_file), x)
    b = run(get_backend("torch").emit(deploy), deploy, str(deploy_file), x)
    assert compare("train", a, "deploy", b, tolerance=1e-5).ok
    assert cli.main(["fold-weights", str(spec), str(deploy_file), "-o", str(again)]) == 0
    assert "holds the deploy form of n: used as they are" in capsys.readouterr().err
    from safetensors.numpy import load_file

    first, second = load_file(str(deploy_file)), load_file(str(again))
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)
    other = tmp_path / "other.arch"
    other.write_text(small_net("ib k3 e4 c32"))
    assert cli.main(["fold-weights", str(other), str(train_file), "-o", str(tmp_path / "x.safetensors")]) == 1
    assert "fit neither form of n" in capsys.readouterr().err and not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_deploy_code_holds_no_norm_and_merged_mobileones_are_plain_convs(path, tmp_path):
    deploy = deploy_form(compile_file(path))
    code = get_backend("torch").emit(deploy)
    for leftover in ("ConvBnAct", "MobileOneBlock", "self.bn"):
        assert leftover not in code, leftover  # no conv norm branch left to test at run time
    pre_norms = sum(getattr(b, "norm", None) is not None for b in deploy.blocks())  # attention's, on its input
    assert code.count("nn.BatchNorm2d(") == pre_norms and (pre_norms > 0) == ("hybrid" in path.stem)
    model = import_code(code, f"{path.stem}_deploy", tmp_path).build_model()
    for block in deploy.blocks():
        if block.kind == "mobileone":  # one module: its conv, [SE], [act], no wrapper around it
            module = model.get_submodule(block.path)
            assert type(module).__name__ == "ConvAct"
            children = {name for name, _ in module.named_children()}
            assert children == {"conv", "act"} | ({"se"} if block.se is not None else set()), block.path
            assert type(module.conv) is torch.nn.Conv2d and module.conv.bias is not None


def test_deploy_code_is_formatted_and_defines_every_name_it_uses(tmp_path):
    # generated/ holds the train form only (make test runs ruff over it); the deploy form's
    # ConvAct is laid out per network, so every spec's deploy code is checked here the same way
    for path in CONCRETE_SPECS:
        (tmp_path / f"{path.stem}.py").write_text(get_backend("torch").emit(deploy_form(compile_file(path))))
    for check in (["format", "--check"], ["check", "--select", "F"]):
        run = subprocess.run([sys.executable, "-m", "ruff", *check, "--no-cache", "--line-length", "120", str(tmp_path)],
                             capture_output=True, text=True)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
