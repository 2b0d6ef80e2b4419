"""Octave convolution (`alpha=`, docs/language.md "Octave pairs"): the four OctConv MobileNets
against an independent PyTorch rebuild of the official Gluon definitions (same weights, same
logits) and against their README's rounded FLOPs; pairs through a residual, a stride, `alpha_mid`
and a global pool in every backend, both forms; what a pair looks like in reports; and the
located errors of bad octave input. (The every-spec tests run the four specs through every
backend, the deploy form and the reference counts as well.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from archdsl.analysis.cost import layer_cost, network_cost
from archdsl.analysis.layers import network_layers
from archdsl.analysis.report import shape_text
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from archdsl.ir.deploy_form import deploy_form
from archdsl.ir.layers import Activation
from archdsl.ir.nodes import ConvBnAct, Pool
from archdsl.runtimes.runners import reported_paths
from archdsl.runtimes.verify import compare, run_backends
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import OCTAVE_README_FLOPS, SMALL_NET, SPECS

OCTAVE_SPECS = sorted(OCTAVE_README_FLOPS)


def test_the_readme_flops_are_the_counters_convention_on_these_networks():
    """The README's #FLOPs, rebuilt from our per-layer costs with its counter's rules."""
    for name, flops in OCTAVE_README_FLOPS.items():
        net = compile_file(SPECS / f"{name}.arch")
        layers = list(network_layers(net))
        pooling = sum(layer_cost(p).elementwise for p in layers if isinstance(p, Pool) and not p.is_global)
        v1 = name.startswith("oct_mnv1")
        stem = net.stem.blocks[0]
        assert isinstance(stem, ConvBnAct)
        relu = stem.cout * stem.out_hw[0] * stem.out_hw[1] if v1 else 0  # only v1's stem is an `Activation`
        head_pool = next(p for p in layers if isinstance(p, Pool) and p.is_global)
        global_pool = 0 if v1 else head_pool.channels * head_pool.in_hw[0] * head_pool.in_hw[1]
        total = network_cost(net).macs + pooling + relu + global_pool + net.classes  # + the classifier's bias
        assert round(total / 1e6) == flops, (name, total)
        assert pooling > 1e6  # the stride and high->low pools: most of the difference


# ---- an independent rebuild of the official definitions ------------------------------------


class RefOctConv(nn.Module):
    """facebookresearch/OctConv's octconv.Conv2D + BatchNorm + activation, paths named as ours."""

    def __init__(self, cin, cout, k, stride, depthwise, act):
        super().__init__()
        (ih, il), (oh, ol) = cin, cout

        def conv(a, b, name):
            if not (a and b) or (depthwise and name in ("hl", "lh")):
                return None
            return nn.Conv2d(a, b, k, 1, k // 2, groups=a if depthwise else 1, bias=False)

        self.hh, self.hl, self.lh, self.ll = (
            conv(ih, oh, "hh"),
            conv(ih, ol, "hl"),
            conv(il, oh, "lh"),
            conv(il, ol, "ll"),
        )
        self.bn_h = nn.BatchNorm2d(oh) if oh else None
        self.bn_l = nn.BatchNorm2d(ol) if ol else None
        self.stride, self.act = stride, act

    def forward(self, x):
        high, low = x
        s = self.stride
        pool = nn.functional.avg_pool2d
        parts_h, parts_l = [], []
        if self.hh is not None:
            parts_h.append(self.hh(pool(high, s) if s > 1 else high))
        if self.hl is not None:
            parts_l.append(self.hl(pool(high, 2 * s)))
        if self.lh is not None:
            y = self.lh(low)
            parts_h.append(y if s > 1 else y.repeat_interleave(2, 2).repeat_interleave(2, 3))
        if self.ll is not None:
            parts_l.append(self.ll(pool(low, s) if s > 1 else low))
        out = []
        for parts, bn in ((parts_h, self.bn_h), (parts_l, self.bn_l)):
            out.append(None if not parts else self.act(bn(sum(parts))) if self.act else bn(sum(parts)))
        return tuple(out)


def _split(c, ratio):
    return (c - int(ratio * c), int(ratio * c))


def official_mobilenet_v1(multiplier, ratio):
    """The official `_MobileNetV1` layer lists, with our layer names."""
    dwc = [int(x * multiplier) for x in [32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024]]
    pwc = [int(x * multiplier) for x in [64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2]
    strides = [1, 2] * 3 + [1] * 5 + [2, 1]
    dw_ratios, pw_ratios = [0.0] + [ratio] * 10 + [0.0] * 2, [ratio] * 10 + [0.0] * 3
    relu = nn.ReLU()
    blocks = {}
    for i, (d, p, s, dr, pr) in enumerate(zip(dwc, pwc, strides, dw_ratios, pw_ratios, strict=True)):
        blocks[i] = (RefOctConv(_split(d, dr), _split(d, dr), 3, s, True, relu),
                     RefOctConv(_split(d, dr), _split(p, pr), 1, 1, False, relu))  # fmt: skip
    return int(32 * multiplier), blocks, pwc[-1]


def official_mobilenet_v2(multiplier, ratio):
    """The official `_MobileNetV2` layer lists (expand, dw, project per block), our names."""
    inc = [int(multiplier * x) for x in [32] + [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3]
    mid = [int(t * x) for t, x in zip([1] + [6] * 16, inc, strict=True)]
    out = [int(multiplier * x) for x in [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]]
    strides = [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3
    ratios = [ratio] * 13 + [0.0] * 4
    relu6 = nn.ReLU6()
    blocks = {}
    for i, (c_in, m, c_out, s, r) in enumerate(zip(inc, mid, out, strides, ratios, strict=True)):
        blocks[i] = (RefOctConv((c_in, 0), _split(m, r), 1, 1, False, relu6),
                     RefOctConv(_split(m, r), _split(m, r), 3, s, True, relu6),
                     RefOctConv(_split(m, r), (c_out, 0), 1, 1, False, None))  # fmt: skip
    return inc[0], blocks, out[-1]


def _load(ref: RefOctConv, weights, prefix, plain_prefix):
    """Our canonical weights into the rebuild: an octave conv's paths and norms, or (a block the
    spec writes without alpha, the same function at stride 1) a plain conv + BN."""
    plain = f"{prefix}.hh.conv.weight" not in weights
    for name in ("hh", "hl", "lh", "ll"):
        conv = getattr(ref, name)
        if conv is not None:
            key = f"{plain_prefix}.conv.weight" if plain else f"{prefix}.{name}.conv.weight"
            conv.weight.data = torch.from_numpy(weights[key])
    for bn, part in ((ref.bn_h, "high"), (ref.bn_l, "low")):
        if bn is not None:
            for t in ("weight", "bias", "running_mean", "running_var"):
                key = f"{plain_prefix}.bn.{t}" if plain else f"{prefix}.norm_{part}.{t}"
                getattr(bn, t).data = torch.from_numpy(weights[key])


def official_logits(name: str, weights: dict, x: torch.Tensor, paths: list[str]) -> torch.Tensor:
    v1 = name.startswith("oct_mnv1")
    multiplier, ratio = {"oct_mnv1_075": (0.75, 0.375), "oct_mnv1_100": (1.0, 0.5), "oct_mnv2_100": (1.0, 0.375),
                         "oct_mnv2_1125": (1.125, 0.5)}[name]  # fmt: skip
    stem_c, blocks, last = (official_mobilenet_v1 if v1 else official_mobilenet_v2)(multiplier, ratio)
    w = {k: v for k, v in weights.items()}
    stem = nn.Sequential(
        nn.Conv2d(3, stem_c, 3, 2, 1, bias=False), nn.BatchNorm2d(stem_c), nn.ReLU() if v1 else nn.ReLU6()
    )
    stem[0].weight.data = torch.from_numpy(w["stem.0.conv.weight"])
    for t in ("weight", "bias", "running_mean", "running_var"):
        getattr(stem[1], t).data = torch.from_numpy(w[f"stem.0.bn.{t}"])
    names = ("dw", "pw") if v1 else ("expand", "dw", "project")
    assert len(paths) == len(blocks)
    y = (stem.eval()(x), None)
    for i, convs in blocks.items():
        shortcut = y
        for conv, conv_name in zip(convs, names, strict=True):
            plain_name = "dw_mid" if conv_name == "dw" and not v1 else conv_name  # a plain ib's depthwise conv
            _load(conv, w, f"{paths[i]}.{conv_name}", f"{paths[i]}.{plain_name}")
            y = conv.eval()(y)
        if not v1 and y[0].shape == shortcut[0].shape and y[1] is None and shortcut[1] is None:
            y = (y[0] + shortcut[0], None)  # the official use_shortcut: stride 1, same channels
    feats = y[0]
    if not v1:  # the tail conv (1x1 + BN + ReLU6) before the pool
        tail = nn.Sequential(nn.Conv2d(last, w["head.0.conv.weight"].shape[0], 1, bias=False),
                             nn.BatchNorm2d(w["head.0.conv.weight"].shape[0]), nn.ReLU6())  # fmt: skip
        tail[0].weight.data = torch.from_numpy(w["head.0.conv.weight"])
        for t in ("weight", "bias", "running_mean", "running_var"):
            getattr(tail[1], t).data = torch.from_numpy(w[f"head.0.bn.{t}"])
        feats = tail.eval()(feats)
    pooled = feats.mean((2, 3))
    return pooled @ torch.from_numpy(w["head.2.fc.weight" if not v1 else "head.1.fc.weight"]).T + torch.from_numpy(
        w["head.2.fc.bias" if not v1 else "head.1.fc.bias"]
    )


@pytest.mark.parametrize("name", OCTAVE_SPECS)
def test_the_generated_model_computes_the_official_definition(name, torch_module):
    net, module = torch_module(SPECS / f"{name}.arch", name)
    weights = init_weights(net, seed=1)
    model = module.build_model().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32))
    paths = [b.path for s in net.stages for b in s.blocks]
    with torch.no_grad():
        ours, theirs = model(x), official_logits(name, weights, x, paths)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5 * theirs.abs().max().item())
    # and the official structure is not trivially matched: a wrong ratio gives other shapes
    assert sum(p.numel() for p in model.parameters()) == network_cost(net).params


# ---- pairs through every backend -------------------------------------------------------------

PAIRS = """\
network pairs {
  input 32x32x3
  classes 10
  defaults {
    act relu
  }
  stem conv k3 s2 c16 alpha=0.25
  stage s0 {
    ds k3 c16 alpha=0.25
    ib k3 s2 e4 c24 alpha=0.5
    ib k3 e4 c24 alpha=0.5 alpha_mid=0.25
    conv k1 c32 alpha=0.5
  }
  head {
    pool max
    classifier
  }
}
"""


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
def test_pairs_agree_in_every_backend_block_by_block(deploy, tmp_path):
    net = compile_text(PAIRS, "pairs.arch")
    if deploy:
        net = deploy_form(net)
    weights = str(tmp_path / "w.safetensors")
    save_weights(init_weights(net, 0), weights)
    backends = ["torch", "keras", "coreml", "onnx"]
    results = run_backends(net, backends, weights, 0)
    # each pair's low part is an output of its own, in every backend, and compared
    low = {"stem.0.low", "stages.0.blocks.0.low", "stages.0.blocks.1.low", "stages.0.blocks.3.low"}
    for name in backends:
        assert low <= set(results[name]) and low <= set(reported_paths(name, net)), name
    for name in backends[1:]:
        report = compare("torch", results["torch"], name, results[name], 1e-4, reported_paths(name, net))
        assert report.first_divergence is None and not report.unmatched and report.nonfinite is None, report
    assert net.stages[0].blocks[0].residual and net.stages[0].blocks[2].residual  # part by part, and one tensor


def test_a_pair_shows_both_parts():
    net = compile_text(PAIRS, "pairs.arch")
    assert shape_text(net.stem.blocks[0]) == "12x16x16 + 4x8x8"
    assert shape_text(net.stages[0].blocks[1]) == "12x8x8 + 12x4x4"
    assert shape_text(net.head.blocks[0], "input") == "16x8x8 + 16x4x4"
    assert shape_text(net.head.blocks[0]) == "32x1x1"
    acts = [layer for layer in network_layers(net) if isinstance(layer, Activation)]
    assert {a.path.rsplit(".", 1)[1] for a in acts} == {"act_high", "act_low"}


def test_alpha_zero_at_stride_two_pools_before_the_conv(torch_module):
    """The authors' code strides by 2x2 average pooling, then a stride-1 conv: not a strided conv."""
    text = SMALL_NET.replace("BLOCK", "dsa k3 s2 c16 alpha=0").replace("HEAD", "pool avg; classifier")
    net, module = torch_module(text)
    block = net.stages[0].blocks[1]
    (dw, _pw) = block.convs
    assert dw.hh.stride == 1 and dw.hh.in_hw == (8, 8) and dw.out_hw == (8, 8)
    assert [p.path for p in network_layers(net) if isinstance(p, Pool) and not p.is_global] == [f"{dw.path}.hh_down"]


# ---- bad input ---------------------------------------------------------------------------------


def _error(block: str, head: str = "pool avg; classifier") -> ArchError:
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_text(SMALL_NET.replace("BLOCK", block).replace("HEAD", head), "case.arch")
    err = info.value
    return err.errors[0] if isinstance(err, ArchErrors) else err


@pytest.mark.parametrize(
    "block, col, message, hint",
    [
        ("ds k3 c16 alpha=1", 21, "must be >= 0 and < 1, got 1", None),
        ("ds k3 c16 alpha=-0.5", 21, "must be >= 0 and < 1", None),
        ("ds k3 c20 fixed alpha=0.375", 21, "alpha=0.375 of 20 channels is 7.5", "whole"),
        ("ib k3 e3 c16 alpha_mid=0.3", 18, "alpha_mid=0.3 of 48 channels is 14.4", "whole"),
        ("ds k3 c16 se0.25 alpha=0.5", 15, "an octave block takes no an SE", "drop it"),
        ("ds k3 c16 alpha=0.5 padding=same", 25, "pads symmetrically", "padding=same"),
        ("conv k3 c16 g2 alpha=0.5", 17, "an octave block takes no groups", None),
        ("ds k3 c16 alpha=0.5\n    mqa h2 d8", 5, "'mqa' takes one tensor", "alpha=0 to merge"),
        ("ds k3 c16 alpha=0.5\n    ds k3 c16", 5, "'ds' takes one tensor", "alpha="),
    ],
)
def test_bad_octave_input_is_a_located_error(block, col, message, hint):
    err = _error(block)
    assert err.span is not None and message in err.message, err.render()
    line = 8 if "\n" in block else 7
    assert (err.span.line, err.span.col) == (line, col), err.render()
    if hint:
        assert err.hint and hint in err.hint, err.render()


def test_sizes_the_octave_pooling_does_not_divide_are_errors():
    # 16x16 -> s2 8x8 high, 4x4 low -> s2: 4x4 + 2x2 -> s2 2x2 + 1x1: a high->low pool of 4x4 by... fine;
    # an odd high size at stride 1 with a low->high path cannot be upsampled back
    odd = SMALL_NET.replace("input 32x32x3", "input 36x36x3").replace("BLOCK", "ds k3 s2 c16 alpha=0.5")
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_text(odd.replace("HEAD", "pool avg; classifier"), "case.arch")
    err = info.value.errors[0] if isinstance(info.value, ArchErrors) else info.value
    assert "average-pools 18x18 by" in err.message or "does not divide" in err.message, err.render()
    assert err.hint and "sizes their pooling divides" in err.hint


def test_the_editor_shows_a_pair_shaped_output(tmp_path):
    from archdsl.lsp.analysis import EditorFiles, analyse
    from archdsl.lsp.hover import hover_text

    a = analyse(tmp_path / "pairs.arch", PAIRS, EditorFiles(), {})
    assert a.errors == []
    line = next(i for i, t in enumerate(PAIRS.splitlines(), 1) if "ib k3 s2" in t)
    said = hover_text(a, (line, 6))  # on the block's kind
    assert said is not None and "`12x16x16 + 4x8x8 -> 12x8x8 + 12x4x4`" in said, said
    # and on `alpha`, what it means
    col = PAIRS.splitlines()[line - 1].index("alpha") + 2
    meaning = hover_text(a, (line, col))
    assert meaning is not None and "low-frequency" in meaning, meaning
