"""BatchNorm folding of a conv that has a bias of its own (the `bias` flag): the bias goes
through the BN too, b' = (b - mean) * g + beta, which a conv without one (every spec's) never
shows: the deploy form still computes the train form's function, and the folded bias is that
formula on the canonical weights."""

from __future__ import annotations

import numpy as np
from test_deploy import _check_deploy_equals_train

from archdsl.compiler import compile_text
from archdsl.ir.deploy_form import deploy_weights
from archdsl.runtimes.weights import init_weights
from conftest import small_net

BIASED = small_net("conv k3 c24 bias; conv k1 c24 bias")


def test_a_biased_conv_folds_its_bias_through_the_norm(tmp_path):
    net = compile_text(BIASED)
    conv = net.stages[0].blocks[1]
    assert conv.bias and conv.norm is not None
    _check_deploy_equals_train(net, tmp_path)


def test_the_folded_bias_and_weight_follow_the_formula():
    net = compile_text(BIASED)
    conv = net.stages[0].blocks[1]
    p, eps = conv.path, conv.norm.eps
    w = init_weights(net, 0)
    b, gamma, beta = w[f"{p}.conv.bias"], w[f"{p}.bn.weight"], w[f"{p}.bn.bias"]
    mean, var = w[f"{p}.bn.running_mean"], w[f"{p}.bn.running_var"]
    assert np.abs(b).max() > 0.01  # a bias that matters
    g = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    folded = deploy_weights(net, w)
    np.testing.assert_allclose(folded[f"{p}.conv.bias"], (b - mean) * g + beta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(folded[f"{p}.conv.weight"], w[f"{p}.conv.weight"] * g[:, None, None, None], rtol=1e-6)
    assert f"{p}.bn.weight" not in folded and folded[f"{p}.conv.bias"].dtype == np.float32
