"""Every primitive layer type's cost, field by field, against the conventions in docs/cost.md
worked out by hand on small shapes (the reference tests check only params and MACs of whole
networks, so element-wise ops and activation traffic need their own figures)."""

from __future__ import annotations

import pytest

from archdsl.analysis.cost import Cost, block_cost, layer_cost, network_cost
from archdsl.analysis.layers import layers_of
from archdsl.compiler import compile_text
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.layers import (
    Activation,
    AttentionCore,
    BranchSum,
    ChannelShuffle,
    Concat,
    Gate,
    InputNorm,
    LayerScale,
    Linear,
    ResidualAdd,
    Upsample,
)
from archdsl.ir.nodes import ConvBnAct, Norm, Pool, SqueezeExcite
from conftest import small_net

HW = (5, 6)  # 30 positions
N = 8 * 30  # a tensor of 8 channels at HW


def _conv(**update) -> ConvBnAct:
    conv = ConvBnAct(path="c", cin=8, cout=12, kernel=3, stride=1, groups=2, padding=(1, 1, 1, 1), bias=True,
                     norm=Norm(), act="relu", in_hw=HW, out_hw=HW)  # fmt: skip
    return conv.model_copy(update=update)


def test_a_grouped_conv_with_bias_norm_and_activation():
    # out = 12 x 30 = 360 elements; each is 8 / 2 = 4 input channels x 9 taps of MACs.
    # params: 12 x 4 x 9 weights + 12 biases + BN gamma and beta (12 + 12; running stats are buffers).
    # element-wise: BN scale and shift, and the activation: 3 per output element.
    # traffic: the input read (8 x 30) and the output written (360).
    assert layer_cost(_conv()) == Cost(params=432 + 12 + 24, macs=360 * 36, elementwise=3 * 360, activation_elems=600)


def test_a_bare_conv_has_no_elementwise_ops():
    conv = _conv(bias=False, norm=None, act="identity", groups=1, stride=2, out_hw=(3, 3))
    # out = 12 x 9 = 108; 8 input channels x 9 taps each.
    assert layer_cost(conv) == Cost(params=12 * 8 * 9, macs=108 * 72, elementwise=0, activation_elems=240 + 108)
    # an activation without BN: one op per output element; BN without one: two.
    assert layer_cost(conv.model_copy(update={"act": "hard_swish"})).elementwise == 108
    assert layer_cost(conv.model_copy(update={"norm": Norm()})).elementwise == 2 * 108


def test_squeeze_excite():
    se = SqueezeExcite(path="s", channels=8, reduced=4, act="relu", gate="hard_sigmoid", hw=HW)
    # two 1x1 convs with bias: 4 x 8 + 4 and 8 x 4 + 8; MACs 32 each.
    # ops: the squeeze (a sum per input element), the gating (a multiply per element), and the
    # two activations on the 4 and 8 pooled values. Traffic: the input read, the gated output written.
    assert layer_cost(se) == Cost(params=76, macs=64, elementwise=2 * N + 4 + 8, activation_elems=2 * N)


@pytest.mark.parametrize(
    "layer, expected",
    [
        # gamma per channel; one multiply per element; read x, write y.
        (LayerScale("b", 8, HW, 0.1), Cost(8, 0, N, 2 * N)),
        # one add per element; read both operands, write the sum.
        (ResidualAdd("b", 8, HW), Cost(0, 0, N, 3 * N)),
        # BN of its own: gamma and beta learnable, running stats not; scale and shift per element.
        (InputNorm("b.identity", 8, HW, Norm()), Cost(16, 0, 2 * N, 2 * N)),
        (Activation("b", "gelu", 8, HW), Cost(0, 0, N, 2 * N)),
        # three terms: two adds per element; three reads and one write.
        (BranchSum("b", 3, 8, HW), Cost(0, 0, 2 * N, 4 * N)),
        (BranchSum("b", 2, 8, HW), Cost(0, 0, N, 3 * N)),
        # data movement only: each element read and written once.
        (Concat("b", 8, HW), Cost(0, 0, 0, 2 * N)),
        (ChannelShuffle("b", 2, 8, HW), Cost(0, 0, 0, 2 * N)),
        # bilinear 2x: 8 x 3 x 4 = 96 in, 384 out; four weighted taps per output element.
        (Upsample("b", 8, (3, 4), (6, 8)), Cost(0, 0, 4 * 384, 96 + 384)),
        # x times 8 per-channel factors: a multiply per element; x and the factors read, x written.
        (Gate("b.gate", 8, HW), Cost(0, 0, N, 2 * N + 8)),
        # 16 -> 10 with bias: 170 params, 160 MACs, the 16 inputs read and 10 logits written.
        (Linear("h", 16, 10), Cost(170, 160, 0, 26)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, Cost) else "",
)
def test_layers_without_a_conv(layer, expected):
    assert layer_cost(layer) == expected


def test_attention_core():
    # N = 10 queries, M = 5 keys, 2 query heads sharing 1 key/value head, key dim 4, value dim 6.
    core = AttentionCore("b", heads=2, kv_heads=1, key_dim=4, value_dim=6, queries=10, keys=5)
    scores = 10 * 2 * 5  # one per query, head and key
    macs = scores * 4 + scores * 6  # q k^T, then the weighted sum of values
    ops = 10 * 2 * 4 + 3 * scores  # q scaled by 1/sqrt(d); softmax: subtract max, exp, divide
    reads = 10 * 2 * 4 + 5 * 1 * 4 + 5 * 1 * 6  # q, k (one kv head), v
    traffic = reads + 2 * scores + 10 * 2 * 6  # the scores written and read again, the output written
    assert layer_cost(core) == Cost(0, macs, ops, traffic)


@pytest.mark.parametrize(
    "pool, expected",
    [
        # global: one op per input element; 240 read, 8 written.
        (Pool(path="p", mode="avg", is_global=True, channels=8, in_hw=HW, out_hw=(1, 1)), Cost(0, 0, N, N + 8)),
        # 3x3 window at stride 2, padded 1: 3 x 3 outputs, each 9 window elements.
        (Pool(path="p", mode="max", is_global=False, kernel=3, stride=2, padding=(1, 1, 1, 1), channels=8, in_hw=HW,
              out_hw=(3, 3)), Cost(0, 0, 8 * 9 * 9, N + 72)),
    ],
    ids=["global", "window"],
)  # fmt: skip
def test_pools(pool, expected):
    assert layer_cost(pool) == expected


def test_costs_add_field_by_field_and_a_network_costs_the_sum_of_its_layers():
    assert Cost(1, 2, 3, 4) + Cost(10, 20, 30, 40) == Cost(11, 22, 33, 44)
    net = compile_text(small_net("ib k3 e2 c16"))
    per_layer = [layer_cost(layer) for block in net.blocks() for layer in layers_of(block)]
    total = network_cost(net)
    for name in ("params", "macs", "elementwise", "activation_elems"):
        assert getattr(total, name) == sum(getattr(c, name) for c in per_layer) > 0
    assert sum((block_cost(b) for b in net.blocks()), Cost()) == total


def test_a_mobileone_block_counts_each_branch_its_sum_and_its_act():
    net = compile_text(small_net("mobileone k3 c16 branches=2"))  # at 16x16, 16 channels in and out
    block = net.stages[0].blocks[1]
    n = 16 * 16 * 16
    # two 3x3 and one 1x1 conv+BN (2 ops, read n, write n each), the identity BN (2 ops, 2n),
    # the sum of 4 terms (3 ops; 4 reads, 1 write), the relu (1 op, 2n)
    assert block_cost(block).elementwise == 3 * 2 * n + 2 * n + 3 * n + n
    assert block_cost(block).activation_elems == 3 * 2 * n + 2 * n + 5 * n + 2 * n
    # merged: one conv with a bias and the relu inside, no sum
    merged = deploy_form(net).stages[0].blocks[1]
    assert (block_cost(merged).elementwise, block_cost(merged).activation_elems) == (n, 2 * n)
    # a 1x1 block: its conv+BN and the identity BN, a sum of 2 terms (1 op; 2 reads, 1 write), the relu
    pointwise = compile_text(small_net("mobileone k1 c16")).stages[0].blocks[1]
    assert pointwise.scale is None and pointwise.identity is not None
    assert (block_cost(pointwise).elementwise, block_cost(pointwise).activation_elems) == (6 * n, 9 * n)
