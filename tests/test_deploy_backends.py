"""The deploy form through the step backends: MobileOne's merged blocks (one conv each, the act
inside it or after the SE) and attention with folded key/value downsampling compute in Keras and
CoreML what they compute in PyTorch (the other deploy tests run the deploy form in PyTorch only)."""

from __future__ import annotations

import pytest
from test_deploy import MOBILEONES
from test_keras_backend import ATTENTION

from archdsl.blocks import kind_of
from archdsl.codegen.steps import ActivationStep, BlockOutput
from archdsl.compiler import compile_text
from archdsl.ir.deploy_form import deploy_form
from archdsl.runtimes.verify import verify


@pytest.mark.parametrize("backend", ["keras", "coreml"])
def test_the_merged_mobileones_agree_with_torch(backend):
    deploy = deploy_form(compile_text(MOBILEONES.replace("PAD", "symmetric")))
    assert all(len(b.branches) == 1 for b in deploy.blocks() if b.kind == "mobileone")
    (report,) = verify(deploy, ["torch", backend], None, seed=2, tolerance=1e-4)
    assert report.ok, f"first divergence at {report.first_divergence}"


def test_a_merged_block_is_one_conv_step_and_an_se_one_keeps_its_act_step():
    deploy = deploy_form(compile_text(MOBILEONES.replace("PAD", "symmetric")))
    plain, with_se = deploy.stages[0].blocks[0], deploy.stages[0].blocks[-1]
    assert kind_of(plain).steps(plain) == [plain.first, BlockOutput(plain.path)]  # the act is in the conv
    assert with_se.se is not None and with_se.act != "identity"
    *_, act, out = kind_of(with_se).steps(with_se)
    assert (act, out) == (ActivationStep(f"{with_se.path}.act", with_se.act), BlockOutput(with_se.path))


@pytest.mark.parametrize("backend", ["keras", "coreml"])
def test_attention_with_folded_key_value_downsampling_agrees_with_torch(backend):
    # The deploy form folds the key/value downsampling convs' BatchNorm (a biased conv), keeps the
    # pre-norm and the query norm: the step backends' attention helpers must follow it.
    deploy = deploy_form(compile_text(ATTENTION.replace("PAD", "symmetric")))
    block = deploy.stages[0].blocks[0]
    assert block.key_down.norm is None and block.key_down.bias and block.norm is not None
    (report,) = verify(deploy, ["torch", backend], None, seed=3, tolerance=1e-4)
    assert report.ok, f"first divergence at {report.first_divergence}"
