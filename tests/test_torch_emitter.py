"""The PyTorch emitter's constructor calls build the layers their IR nodes describe: each call is
evaluated in a generated module's namespace and the built module's settings are read back, so
a left-out or wrong argument shows as a wrong stride, padding, epsilon, activation, ..."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archdsl.codegen.registry import get_backend
from archdsl.codegen.torch import TorchEmitter, block_call
from archdsl.compiler import compile_text
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.nodes import ConvBnAct, Norm, Pool, SqueezeExcite
from conftest import small_net

T = TorchEmitter()


@pytest.fixture
def ns(torch_module):
    """The namespace of a generated module that defines every class the calls below build."""
    _, module = torch_module(small_net("mobileone k3 c16 se=0.25", "pool max k3 s2; pool avg; classifier"))
    return vars(module)


def _conv(**update) -> ConvBnAct:
    conv = ConvBnAct(path="c", cin=8, cout=12, kernel=3, stride=1, groups=1, padding=(0, 0, 0, 0), norm=Norm(),
                     act="identity", in_hw=(6, 6), out_hw=(4, 4))  # fmt: skip
    return conv.model_copy(update=update)


def test_a_plain_conv_keeps_every_default(ns):
    m = eval(T.conv(_conv()).flat, ns)
    assert (m.conv.in_channels, m.conv.out_channels, m.conv.kernel_size) == (8, 12, (3, 3))
    assert (m.conv.stride, m.conv.padding, m.conv.groups, m.conv.bias) == ((1, 1), (0, 0), 1, None)
    assert m.pad is None and m.act is None and m.residual is False
    assert (m.bn.eps, m.bn.momentum) == (1e-5, 0.1)


def test_calls_leave_out_the_arguments_at_their_defaults():
    # the generated classes' defaults: stride 1, padding 0, groups 1, no bias, a BatchNorm with
    # momentum 0.1, no activation, no residual; only the epsilon is always spelled out
    assert T.conv(_conv()).flat == "ConvBnAct(8, 12, kernel=3, eps=1e-05)"
    assert T.batch_norm(4, Norm()) == "nn.BatchNorm2d(4, eps=1e-05)"
    conv = _conv(stride=2, padding=(1, 1, 1, 1), groups=4, bias=True, norm=Norm(eps=1e-3, momentum=0.01), act="relu")
    assert T.conv(conv).flat == (
        "ConvBnAct(8, 12, kernel=3, stride=2, padding=1, groups=4, bias=True, eps=0.001, momentum=0.01, "
        "act=nn.ReLU(inplace=True))"
    )
    assert T.conv(_conv(norm=None, residual=True)).flat == "ConvBnAct(8, 12, kernel=3, norm=False, residual=True)"
    assert T.conv(_conv(padding=(0, 1, 0, 1))).flat == "ConvBnAct(8, 12, kernel=3, padding=(0, 1, 0, 1), eps=1e-05)"
    g = Pool(path="p", mode="avg", is_global=True, channels=8, in_hw=(5, 5), out_hw=(1, 1))
    assert T.pool(g).flat == 'GlobalPool(mode="avg")'
    w = g.model_copy(update={"is_global": False, "mode": "max", "kernel": 3, "stride": 2, "out_hw": (3, 3)})
    assert T.pool(w).flat == 'Pool(mode="max", kernel=3, stride=2, padding=0)'


def test_every_conv_setting_reaches_the_module(ns):
    conv = _conv(stride=2, padding=(1, 1, 1, 1), groups=4, bias=True, norm=Norm(eps=1e-3, momentum=0.01),
                 act="hard_swish", residual=True)  # fmt: skip
    m = eval(T.conv(conv).flat, ns)
    assert (m.conv.stride, m.conv.padding, m.conv.groups) == ((2, 2), (1, 1), 4)
    assert m.conv.bias is not None and m.pad is None
    assert (m.bn.eps, m.bn.momentum) == (1e-3, 0.01)
    assert isinstance(m.act, nn.Hardswish) and m.residual is True


def test_asymmetric_padding_pads_first_and_no_norm_means_no_bn(ns):
    m = eval(T.conv(_conv(padding=(0, 1, 2, 3), norm=None, bias=True, act="relu6")).flat, ns)
    assert m.pad.padding == (2, 3, 0, 1)  # ZeroPad2d: left, right, top, bottom
    assert m.conv.padding == (0, 0) and m.bn is None and isinstance(m.act, nn.ReLU6)
    x = torch.randn(1, 8, 6, 6)
    assert m(x).shape == (1, 12, 5, 9)  # (6 + 1 - 3 + 1, 6 + 5 - 3 + 1)


def test_squeeze_excite_call(ns):
    se = SqueezeExcite(path="s", channels=16, reduced=4, act="swish", gate="sigmoid", hw=(2, 2))
    m = eval(T.se(se).flat, ns)
    assert (m.reduce.in_channels, m.reduce.out_channels, m.expand.out_channels) == (16, 4, 16)
    assert isinstance(m.act, nn.SiLU) and isinstance(m.gate, nn.Sigmoid)
    assert T.se(None) is None and T.conv(None) is None


def test_pool_calls(ns):
    g = Pool(path="p", mode="max", is_global=True, channels=8, in_hw=(5, 5), out_hw=(1, 1))
    m = eval(T.pool(g).flat, ns)
    assert m.mode == "max"
    assert torch.equal(m(torch.arange(8.0).reshape(1, 2, 2, 2)), torch.tensor([[[[3.0]], [[7.0]]]]))
    w = Pool(path="p", mode="avg", is_global=False, kernel=3, stride=2, padding=(0, 1, 1, 1), channels=8,
             in_hw=(5, 5), out_hw=(3, 3))  # fmt: skip
    m = eval(T.pool(w).flat, ns)
    assert (m.mode, m.kernel, m.stride, m.pad, m.include_pad) == ("avg", 3, 2, (1, 1, 0, 1), False)
    m = eval(T.pool(w.model_copy(update={"include_pad": True, "padding": (1, 1, 1, 1)})).flat, ns)
    assert (m.pad, m.include_pad) == ((1, 1, 1, 1), True)


def test_batch_norm_and_activations(ns):
    bn = eval(T.batch_norm(8, Norm(eps=1e-3, momentum=0.03)), ns)
    assert (bn.num_features, bn.eps, bn.momentum) == (8, 1e-3, 0.03)
    bn = eval(T.batch_norm(4, Norm()), ns)
    assert (bn.num_features, bn.eps, bn.momentum) == (4, 1e-5, 0.1)
    assert isinstance(eval(T.act("gelu_tanh"), ns), nn.GELU) and eval(T.act("gelu_tanh"), ns).approximate == "tanh"


def test_residual_and_call_leave_out_what_is_absent():
    net = compile_text(small_net("ib k3 e2 c16 drop_path=0.1"))
    first, second = net.stages[0].blocks
    assert T.residual(second) == [("residual", "True"), ("drop_path", "0.1")]
    assert T.residual(first) == [("residual", "True"), ("drop_path", None)]  # drop_path 0 is left out
    assert T.residual(net.stem.blocks[0]) == []  # a stride-2 stem conv has no residual
    call = T.call("F", ("", "1"), ("a", None), ("b", "2"), comment="c")
    assert (call.flat, call.comment) == ("F(1, b=2)", "c")


def test_cost_note_of_a_conv():
    # 12 x 8 x 9 weights + BN gamma and beta; 12 x 16 outputs x 72 MACs each.
    assert T.cost_note([_conv()]) == f"{864 + 24:,} params, {12 * 16 * 72:,} MACs"


CONV_ONLY = """\
network plain {
  input 32x32x3
  classes 10
  stem conv k3 s2 c16
  stage a {
    BLOCK
  }
  head {
    pool avg; classifier
  }
}
"""


def test_the_module_defines_only_the_classes_and_helpers_it_uses():
    emit = get_backend("torch").emit
    plain = emit(compile_text(CONV_ONLY.replace("BLOCK", "conv k3 c16")))
    assert "class ConvBnAct" in plain and "class GlobalPool" in plain
    for absent in ("class SqueezeExcite", "class MobileOneBlock", "class UniversalInvertedBottleneck",
                   "def drop_path", "def channel_shuffle", "class LayerScale"):  # fmt: skip
        assert absent not in plain, absent
    mobileone = emit(compile_text(small_net("mobileone k3 c16 se=0.25")))
    assert "class SqueezeExcite" in mobileone and "class MobileOneBlock" in mobileone
    assert (
        mobileone.index("class ConvBnAct") < mobileone.index("class SqueezeExcite") < mobileone.index("class MobileOne")
    )
    assert "def drop_path" in mobileone  # the stage's ib block can drop paths
    shuffle = emit(compile_text(CONV_ONLY.replace("BLOCK", "shuffle_v2 s2 c32")))
    assert "def channel_shuffle" in shuffle and "def drop_path" not in shuffle
    scaled = emit(compile_text(CONV_ONLY.replace("BLOCK", "ib k3 e2 c16 layer_scale=0.1")))
    assert scaled.index("class LayerScale") < scaled.index("class UniversalInvertedBottleneck")


def test_block_call_of_a_mobileone_block():
    net = compile_text(small_net("mobileone k3 c16 branches=2"))
    block = net.stages[0].blocks[1]
    call = block_call(block)
    assert call.name == "MobileOneBlock"
    names = [k for k, _ in call.args]
    assert names == ["", "", "conv_scale", "identity", "act"]  # two k x k branches, no SE
    merged = deploy_form(net).stages[0].blocks[1]
    call = block_call(merged, deploy=True)  # a plain conv with a bias that applies the act itself
    assert call.name == "ConvAct" and call.flat == "ConvAct(16, 16, kernel=3, padding=1, act=nn.ReLU(inplace=True))"
    with_se = deploy_form(compile_text(small_net("mobileone k3 c16 se=0.25"))).stages[0].blocks[1]
    call = block_call(with_se, deploy=True)  # conv -> SE -> act
    assert call.name == "ConvAct" and [k for k, _ in call.args][-2:] == ["se", "act"]
    assert call.args[-2][1].name == "SqueezeExcite" and call.args[-1][1] == "nn.ReLU(inplace=True)"
