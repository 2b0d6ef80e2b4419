"""MobileOne's merging, where the other deploy tests do not reach: the identity kernel of a 5x5
and a 7x7 block (their centre taps are at 2 and 3, where a 3x3's is at 1); the activation moved
into the merged conv (only without an SE between the sum and the act), checked with an activation
that applied twice would change the result (relu would not); and the located error's hint when
the branches cannot merge; and the random init's gamma scaling of a sum of branches."""

from __future__ import annotations

import pytest
from test_deploy import MOBILEONES, _check_deploy_equals_train

from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.ir.deploy_form import deploy_form
from archdsl.runtimes.weights import init_weights
from conftest import small_net


def test_a_5x5_block_with_an_identity_branch_merges_exactly(tmp_path):
    net = compile_text(small_net("mobileone k5 c16 branches=2"))
    block = net.stages[0].blocks[1]
    assert block.identity is not None and block.first.kernel == 5 and block.scale is not None
    _check_deploy_equals_train(net, tmp_path)


def test_a_7x7_grouped_block_with_an_identity_branch_merges_exactly(tmp_path):
    net = compile_text(small_net("mobileone k7 c16 g4 branches=1"))
    assert net.stages[0].blocks[1].identity is not None
    _check_deploy_equals_train(net, tmp_path)


def test_the_merged_conv_applies_the_activation_unless_an_se_comes_first(tmp_path):
    net = compile_text(small_net("mobileone k3 c16 branches=2 act=hard_swish; mobileone k3 c16 se=0.25 act=hard_swish"))
    plain, with_se = deploy_form(net).stages[0].blocks[1:]
    (conv,) = plain.branches
    assert (conv.act, plain.act, conv.norm, conv.bias) == ("hard_swish", "identity", None, True)
    assert (plain.scale, plain.identity) == (None, None)
    (conv,) = with_se.branches
    assert (conv.act, with_se.act) == ("identity", "hard_swish")  # x -> conv -> SE -> act
    _check_deploy_equals_train(net, tmp_path)


def test_branches_that_cannot_merge_name_the_fix():
    # 'same' on an even input pads the stride-2 3x3 stem 0 on top and on the left, 1 below and right
    net = compile_text(MOBILEONES.replace("PAD", "same").replace("33x31x3", "32x32x3"), "m.arch")
    with pytest.raises(ArchError) as exc:
        deploy_form(net)
    assert exc.value.message == (
        "the branches of stem.0 cannot merge: its 3x3 conv pads 0 on top and 0 on the left, "
        "off-centre from its 1x1 branch"
    )
    assert exc.value.hint == "use padding symmetric"


def test_random_init_scales_the_gammas_of_a_sum_of_n_branches_by_one_over_sqrt_n():
    # gammas are drawn from U(0.5, 1.5); the block sums 2 k x k branches, the 1x1 branch and the
    # identity BN: n = 4, so its gammas land in [0.25, 0.75], the stem conv's stay unscaled
    net = compile_text(small_net("mobileone k3 c16 branches=2"))
    block = net.stages[0].blocks[1]
    w = init_weights(net, 0)
    gammas = [f"{c.path}.bn.weight" for c in (*block.branches, block.scale)] + [f"{block.path}.identity.weight"]
    for key in gammas:
        assert w[key].min() >= 0.25 and w[key].max() <= 0.75, key
    stem = w[f"{net.stem.blocks[0].path}.bn.weight"]
    assert stem.min() >= 0.5 and stem.max() <= 1.5 and stem.max() > 0.75
