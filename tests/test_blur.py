"""`aa=blur`, anti-aliased downsampling (timm's `aa_layer='blurpc'`): the strided conv runs at
stride 1 and, after its BN and act, a fixed 3x3 binomial filter downsamples by 2. Checked
against a reference written here from the definition, in every backend through `verify`, in
the cost model, and against timm's figures and layout for `mobilenetv4_conv_blur_medium`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archdsl.analysis.cost import layer_cost, network_cost
from archdsl.analysis.layers import layers_of, network_tensors
from archdsl.cli.main import main as cli
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.ir.layers import Blur
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import SPECS, small_net

BLURRED = small_net("ib k5 s2 e4 c24 aa=blur").replace("stem conv k3 s2 c16", "stem conv k3 s2 c16 aa=blur")


def _reference_blur(x: torch.Tensor) -> torch.Tensor:
    """timm's BlurPool2d('blurpc') from its definition: binomial (1, 2, 1) / 4 outer product,
    constant zero padding of 1 on every side, depthwise at stride 2."""
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype) / 4
    kernel = (taps[:, None] * taps[None, :]).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="constant"), kernel, stride=2, groups=x.shape[1])


def test_the_stem_is_conv_at_stride_1_then_bn_act_then_the_blur(torch_module, tmp_path):
    net, module = torch_module(BLURRED)
    assert "stem conv k3 s2 c16 aa=blur" in BLURRED
    weights = init_weights(net, 0)
    save_weights(weights, tmp_path / "w.safetensors")
    model = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors")).eval().double()
    w = {k: torch.from_numpy(v).double() for k, v in weights.items()}
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *net.input_shape)))
    y = F.conv2d(x, w["stem.0.conv.weight"], stride=1, padding=1)
    y = F.batch_norm(y, w["stem.0.bn.running_mean"], w["stem.0.bn.running_var"], w["stem.0.bn.weight"],
                     w["stem.0.bn.bias"], training=False, eps=1e-5)  # fmt: skip
    expected = _reference_blur(torch.relu(y))
    with torch.no_grad():
        got = model.stem(x)
    assert got.shape == expected.shape == (2, 16, net.input_shape[1] // 2, net.input_shape[2] // 2)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)
    blurs = [m for m in model.modules() if type(m).__name__ == "BlurPool"]
    assert len(blurs) == 2 and all(b.blur.shape[1:] == (1, 3, 3) for b in blurs)
    assert not any("blur" in k or ".aa." in k for k in model.state_dict())  # the filter is no weight


def test_the_blur_is_a_layer_with_a_depthwise_convs_macs_and_no_tensors():
    net = compile_text(BLURRED)
    stem = net.stem.blocks[0]
    conv, blur = list(layers_of(stem))
    assert isinstance(blur, Blur) and blur.path == "stem.0.aa"
    c, (h, w) = 16, net.input_shape[1:]
    assert (conv.stride, conv.out_hw) == (1, (h, w)) and blur.out_hw == (h // 2, w // 2) == stem.out_hw
    assert layer_cost(blur).macs == c * 9 * (h // 2) * (w // 2) and layer_cost(blur).params == 0
    assert layer_cost(stem).macs == 3 * 9 * c * h * w + c * 9 * (h // 2) * (w // 2)  # the conv runs at full size
    assert not any(".aa" in t.key for t in network_tensors(net))
    plain = compile_text(BLURRED.replace(" aa=blur", ""))
    assert network_cost(net).params == network_cost(plain).params  # the filter is no weight
    assert network_cost(net).macs > network_cost(plain).macs


def test_every_backend_and_the_deploy_form_agree_on_blurred_blocks(tmp_path, capsys):
    spec = tmp_path / "blurred.arch"
    spec.write_text(BLURRED)
    for deploy in ([], ["--deploy"]):
        assert cli(["verify", str(spec), "--backends", "torch,keras,tflite,coreml", *deploy]) == 0
        assert "all backends agree" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("ib k3 e4 c24 aa=blur", "aa=blur downsamples by 2: the block has stride 1"),
        ("ib k3 s4 e4 c24 aa=blur", "aa=blur downsamples by 2: the block has stride 4"),
        ("ib k3 s2 e4 c24 aa=box", "anti-aliasing"),
        ("mobileone k3 s2 c24 aa=blur", "mobileone"),
    ],
)
def test_aa_where_it_cannot_blur_is_a_located_error(block, message):
    text = small_net(block)
    with pytest.raises(ArchError) as exc:
        compile_text(text, "t.arch")
    assert message in exc.value.message
    line = text.splitlines()[exc.value.span.line - 1]
    start = line.index("aa=")  # the caret is on the option or its value
    assert start <= exc.value.span.col - 1 < start + len("aa=blur")


def test_mnv4_conv_blur_medium_has_timms_figures_and_layout():
    blur, plain = (
        compile_file(SPECS / "mnv4_conv_blur_m.arch"),
        compile_file(SPECS / "mnv4_conv_m.arch", resolution=(224, 224)),
    )
    cost = network_cost(blur)
    assert (cost.params, cost.macs) == (9_715_512, 1_202_577_600)  # timm 1.0, FlopCounterMode / 2
    blurred = [b.path for b in blur.blocks() if any(isinstance(x, Blur) for x in layers_of(b))]
    assert blurred == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0", "stages.3.blocks.0"]
    # the same tensors under the same names as conv_medium: timm's BlurPool has no state either
    assert [(t.key, t.shape) for t in network_tensors(blur)] == [(t.key, t.shape) for t in network_tensors(plain)]
