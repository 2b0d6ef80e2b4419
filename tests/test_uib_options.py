"""The UIB family's depthwise convs as timm and TF Model Garden vary them: `gs=N` channels per
group (timm's `gs`; 1, the default, is depthwise), and `stride_at=start|mid|end`, the one that
takes the block's stride (TF's `middle_dw_downsample=False` is `stride_at=start`)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.analysis.cost import layer_cost, network_cost
from archdsl.cli.main import main as cli
from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from conftest import small_net


def _block(text: str):
    return compile_text(small_net(text)).stages[0].blocks[-1]


def test_the_stride_goes_where_stride_at_says_and_by_default_to_the_middle():
    default, start = _block("extra_dw k3/5 s2 e4 c32"), _block("extra_dw k3/5 s2 e4 c32 stride_at=start")
    assert (default.dw_start.stride, default.dw_mid.stride) == (1, 2)
    assert (start.dw_start.stride, start.dw_mid.stride) == (2, 1)
    assert start.dw_start.out_hw == start.dw_mid.in_hw == default.dw_mid.out_hw  # the block's output is the same
    # striding first, the expand and the middle conv run on a quarter of the positions
    assert layer_cost(start.expand).macs * 4 == layer_cost(default.expand).macs
    end = _block("uib k3/5/3 s2 e4 c32 stride_at=end")
    assert [c.stride for c in (end.dw_start, end.dw_mid, end.dw_end)] == [1, 1, 2]


def test_gs_sets_the_channels_per_group_of_every_depthwise_conv():
    b = _block("uib k3/5/3 s2 e4 c32 gs=8")
    assert [(c.cin // c.groups, c.cout) for c in (b.dw_start, b.dw_mid, b.dw_end)] == [(8, 16), (8, 64), (8, 32)]
    assert [c.groups for c in (b.expand, b.project)] == [1, 1]  # the 1x1 convs stay dense
    mid = b.dw_mid
    assert layer_cost(mid).macs == mid.cout * 8 * 5 * 5 * mid.out_hw[0] * mid.out_hw[1]
    one, default = _block("uib k3/5/3 s2 e4 c32 gs=1"), _block("uib k3/5/3 s2 e4 c32")
    dws = ("dw_start", "dw_mid", "dw_end")
    assert [getattr(one, d).groups for d in dws] == [getattr(default, d).groups for d in dws] == [16, 64, 32]


def test_generated_torch_counts_what_the_cost_model_says(torch_module):
    net, module = torch_module(small_net("extra_dw k3/5 s2 e4 c32 gs=8 stride_at=start"))
    model = module.build_model().eval()
    assert sum(p.numel() for p in model.parameters()) == network_cost(net).params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *net.input_shape))
    assert counter.get_total_flops() == 2 * network_cost(net).macs


def test_every_backend_agrees(tmp_path, capsys):
    spec = tmp_path / "n.arch"
    spec.write_text(small_net("extra_dw k3/5 s2 e4 c32 gs=8 stride_at=start; uib k3/3/3 e2 c32 gs=4"))
    assert cli(["verify", str(spec), "--backends", "torch,keras,tflite,coreml"]) == 0
    assert "all backends agree" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("block", "option", "message"),
    [
        ("extra_dw k3/5 s2 e4 c32 gs=7", "gs=7", "gs=7 does not divide the 16 channels of"),
        ("ib k3 s2 e4 c32 stride_at=start", "stride_at=start", "the block has no start depthwise conv"),
        ("ib k3 s2 e4 c32 stride_at=top", "top", "unknown depthwise conv 'top'"),
    ],
)
def test_options_that_cannot_apply_are_located_errors(block, option, message):
    text = small_net(block)
    with pytest.raises(ArchError) as exc:
        compile_text(text, "t.arch")
    assert message in exc.value.message and exc.value.hint
    line = text.splitlines()[exc.value.span.line - 1]
    assert line[exc.value.span.col - 1 :].startswith(option)


def test_se_base_mid_over_e_is_timms_se_from_exp_false():
    """timm (se_from_exp=False): se_ratio /= exp_ratio, then the SE squeezes mid x se_ratio; it
    differs from `base=in` where the mid width was rounded: 16 x 0.75 = 12 rounds up to 16."""
    text = small_net("ib k3 e0.75 c16 se1.0").replace(
        "  stem conv k3 s2 c16\n",
        "  defaults {\n    se base=mid_over_e divisor=1 round_limit=0\n  }\n  stem conv k3 s2 c16\n",
    )
    block = compile_text(text).stages[0].blocks[-1]
    assert (block.expand.cout, block.se.reduced) == (16, round(16 * (1.0 / 0.75)))
    assert compile_text(text.replace("mid_over_e", "in")).stages[0].blocks[-1].se.reduced == 16
    with pytest.raises(ArchError, match="gives mid, not e"):
        compile_text(text.replace("e0.75", "mid=16"), "t.arch")
