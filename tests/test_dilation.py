"""Dilated (atrous) convs and `output_stride`: a block's `dilation=N` spreads its k x k convs'
windows, and `output_stride N` turns the strides past N into dilations by timm's rule.
Checked against torch's own dilated conv, by hand on MobileNetV2, in the cost model against
FlopCounterMode, in every backend (and the deploy form) through `verify`, and in the MIL evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from archdsl.analysis.cost import network_cost
from archdsl.analysis.latency import _unit_ok, family_of, unit_of
from archdsl.cli.main import main as cli
from archdsl.codegen.functional import convs
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.mil_eval import conv as mil_conv
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import SPECS, small_net

# Strides past 2 become dilations: the first ib keeps dilation 1, the blocks after it 2, and the
# fused_ib's stride doubles the rate for the conv after it; the ib's own dilation=2 multiplies.
ATROUS = small_net("ib k3 s2 e4 c24; ib k5 e4 c24 dilation=2; ds k3 c24; fused_ib k3 s2 e2 c32; conv k3 c32")
ATROUS = ATROUS.replace("classes 10\n", "classes 10\n  output_stride 2\n")


def _mnv2(output_stride: int):
    text = (
        (SPECS / "mnv2.arch")
        .read_text()
        .replace("  classes 1000\n", f"  classes 1000\n  output_stride {output_stride}\n")
    )
    return compile_text(text, "mnv2.arch")


def _dw_geometry(net):
    """(stride, dilation) of each body block's depthwise conv."""
    return [(b.dw.stride, b.dw.dilation) if b.kind == "ds" else (b.dw_mid.stride, b.dw_mid.dilation)
            for b in net.blocks() if b.kind in ("ds", "uib")]  # fmt: skip


def test_a_dilated_conv_is_torchs_dilated_conv(torch_module, tmp_path):
    net, module = torch_module(small_net("conv k3 c16 dilation=3 act=identity norm=none"))
    weights = init_weights(net, 0)
    save_weights(weights, tmp_path / "w.safetensors")
    model = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors")).eval().double()
    block = model.stages[0].blocks[1]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16, 16, 16)))
    w = torch.from_numpy(weights["stages.0.blocks.1.conv.weight"]).double()
    with torch.no_grad():
        got = block(x)
    assert torch.allclose(got, F.conv2d(x, w, padding=3, dilation=3), rtol=1e-12, atol=1e-12)
    assert net.stages[0].blocks[1].padding == (3, 3, 3, 3) and got.shape == x.shape


def test_same_padding_spans_the_dilated_window():
    c = compile_text(small_net("conv k3 c16 dilation=2 padding=same")).stages[0].blocks[1]
    assert (c.padding, c.out_hw) == ((2, 2, 2, 2), (16, 16))  # the window spans 5 pixels
    c = compile_text(small_net("conv k2 c16 dilation=3 padding=same")).stages[0].blocks[1]
    assert (c.padding, c.out_hw) == ((1, 2, 1, 2), (16, 16))  # 4 pixels: the extra one after


def test_output_stride_16_on_mobilenet_v2_dilates_after_the_first_block_of_s5():
    plain, net = _mnv2(32), _mnv2(16)
    assert _dw_geometry(plain) == [(s, 1) for s, _ in _dw_geometry(plain)]  # 32 is reached: nothing changes
    strides = [s for s, _ in _dw_geometry(plain)]
    # s0 ds, s1 x2, s2 x3, s3 x4, s4 x3, then s5's first block: it would take 16 to 32
    first_s5 = 1 + 2 + 3 + 4 + 3
    assert strides[first_s5] == 2
    expected = [(s, 1) for s in strides[:first_s5]] + [(1, 1)] + [(1, 2)] * (len(strides) - first_s5 - 1)
    assert _dw_geometry(net) == expected
    assert net.stages[-1].blocks[-1].project.out_hw == (14, 14)
    assert network_cost(net).params == network_cost(plain).params  # dilation adds no weight


def test_output_stride_8_dilates_twice_and_each_stride_multiplies_the_rate():
    geometry = _dw_geometry(_mnv2(8))
    first_s3, first_s5 = 1 + 2 + 3, 1 + 2 + 3 + 4 + 3
    assert geometry[first_s3] == (1, 1)  # the first stride past 8 keeps the rate so far
    assert set(geometry[first_s3 + 1 : first_s5]) == {(1, 2)}
    assert geometry[first_s5] == (1, 2)
    assert set(geometry[first_s5 + 1 :]) == {(1, 4)}


def test_a_blocks_own_dilation_multiplies_the_rate_and_aa_goes_with_the_stride():
    net = compile_text(ATROUS.replace("ib k3 s2 e4 c24;", "ib k3 s2 e4 c24 aa=blur;"))
    blocks = net.stages[0].blocks
    assert (blocks[1].dw_mid.stride, blocks[1].dw_mid.aa, blocks[1].dw_mid.dilation) == (1, None, 1)
    assert blocks[2].dw_mid.dilation == 4  # its own 2 x the rate 2
    assert blocks[3].dw.dilation == 2
    assert (blocks[4].expand.stride, blocks[4].expand.dilation) == (1, 2)
    assert blocks[5].dilation == 4  # after the fused_ib's stride
    assert all(c.out_hw == (16, 16) for c in convs(blocks[5]))


def test_generated_torch_counts_what_the_cost_model_says(torch_module):
    net, module = torch_module(ATROUS)
    model = module.build_model().eval()
    assert sum(p.numel() for p in model.parameters()) == network_cost(net).params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        logits = model(torch.randn(1, *net.input_shape))
    assert logits.shape == (1, 10)
    assert counter.get_total_flops() == 2 * network_cost(net).macs
    dilated = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation != (1, 1)]
    assert sorted({m.dilation[0] for m in dilated}) == [2, 4]


def test_every_backend_and_the_deploy_form_agree_on_dilated_blocks(tmp_path, capsys):
    spec = tmp_path / "atrous.arch"
    spec.write_text(ATROUS)
    for deploy in ([], ["--deploy"]):
        assert cli(["verify", str(spec), "--backends", "torch,keras,tflite,coreml", *deploy]) == 0
        assert "all backends agree" in capsys.readouterr().out


def test_undilated_networks_generate_no_dilation_code():
    from archdsl.codegen.registry import get_backend

    net = compile_file(SPECS / "mnv2.arch")
    for backend in ("torch", "keras", "coreml"):
        assert "dilation" not in get_backend(backend).emit(net)


def test_the_mil_evaluators_dilated_conv_is_torchs():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 4, 11, 9)).astype(np.float32), rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    got = mil_conv(x, w, strides=[2, 2], pad_type="custom", dilations=[2, 2], groups=2, pad=(2, 1, 0, 2))
    ref = F.conv2d(F.pad(torch.from_numpy(x), (0, 2, 2, 1)), torch.from_numpy(w), stride=2, dilation=2, groups=2)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_a_dilated_conv_is_its_own_latency_unit():
    net = compile_text(ATROUS)
    dilated, plain = net.stages[0].blocks[5], compile_text(small_net("conv k3 c32")).stages[0].blocks[1]
    unit, plain_unit = unit_of(dilated), unit_of(plain)
    assert unit["d"] == 4 and "d" not in plain_unit  # profiles of undilated networks are unchanged
    assert _unit_ok(unit) and _unit_ok(plain_unit) and not _unit_ok({**plain_unit, "d": 0})
    assert family_of(unit)[2] == "k3s1d4" and family_of(plain_unit)[2] == "k3s1"


@pytest.mark.parametrize(
    ("text", "message", "at"),
    [
        (small_net("ib k3 s2 e4 c24 dilation=2"), "cannot both stride and dilate", "dilation=2"),
        (small_net("ffn e4 c24 dilation=2"), "'ffn' has no option 'dilation'", "dilation"),
        (small_net("ghost k3 s2 e4 c24").replace("classes 10\n", "classes 10\n  output_stride 2\n"),
         "ghost blocks cannot dilate", "s2"),
        (small_net("ib k3 s4 e4 c24").replace("classes 10\n", "classes 10\n  output_stride 4\n"),
         "takes the network from 2 past it", "s4"),
        (small_net().replace("classes 10\n", "classes 10\n  output_stride 12\n"), "not a power of 2", "12"),
        (small_net().replace("classes 10\n", "classes 10\n  output_stride 8\n"), "only downsamples by 2", "8"),
    ],
)  # fmt: skip
def test_dilation_where_it_cannot_be_is_a_located_error(text, message, at):
    with pytest.raises(ArchError) as exc:
        compile_text(text, "t.arch")
    assert message in exc.value.message
    line = text.splitlines()[exc.value.span.line - 1]
    start = line.index(at, line.index(" ") if at.isdigit() else 0)
    assert start <= exc.value.span.col - 1 < start + len(at)
