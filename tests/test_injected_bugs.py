"""Tests for bugs that once survived every behavioural test (issue 19, mutation testing). Each
test names, in its docstring, the injected bug it catches. Expectations are independent of the
code under test: figures derived by hand from docs/cost.md's formulas on tiny networks, and
numpy/torch references written here for folding, attention and BatchNorm momentum."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from archdsl.analysis.report import cost_json, cost_table
from archdsl.analysis.roofline import roofline_seconds
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.ir.deploy_form import deploy_form, deploy_weights
from archdsl.runtimes.runners import load_module, runner
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import ROOT, small_net

# ---- a tiny network whose every cost figure is derived by hand ---------------------------------
# input 4x8x8; stem: 3x3 stride-2 conv to 8x4x4; an IB block (8 -> 16 -> 8 channels at 4x4) with
# an SE on its 16 mid channels squeezed to 4 (base mid, divisor 1); a padded 3x3 stride-2 max pool
# (8x4x4 -> 8x2x2) and a padded 3x3 stride-1 average pool (8x2x2 -> 8x2x2); global pool, classifier.
TINY = """\
network tiny {
  input 8x8x4
  classes 5
  defaults {
    se base=mid divisor=1 act=relu gate=hard_sigmoid
  }
  stem conv k3 s2 c8
  stage a {
    ib k3 e2 c8 se0.25
  }
  stage b {
    pool max k3 s2
    pool avg k3 count_pad
  }
  head {
    pool avg
    classifier
  }
}
"""

# path -> (kind, params, MACs, element-wise ops, activation elements), from docs/cost.md:
TINY_LAYERS = {
    # conv + BN + relu: 8*4*9 + 2*8 params; Nout = 8*4*4 = 128, MACs 128*4*9; ew 128*(2+1); acts 4*8*8 + 128
    "stem.0": ("conv", 304, 4608, 384, 384),
    # 1x1 8 -> 16 (+BN, relu) at 4x4: 128 + 32 params; MACs 256*8; ew 256*3; acts 128 + 256
    "stages.0.blocks.0.expand": ("conv", 160, 2048, 768, 384),
    # depthwise 3x3 on 16 channels: 16*9 + 32 params; MACs 256*1*9; ew 256*3; acts 256 + 256
    "stages.0.blocks.0.dw_mid": ("conv", 176, 2304, 768, 512),
    # SE, C = 16, R = 4, H*W = 16: params 2*C*R + R + C; MACs 2*C*R; ew 2*C*H*W + R + C; acts 2*C*H*W
    "stages.0.blocks.0.se": ("se", 148, 128, 532, 512),
    # 1x1 16 -> 8 + BN, no activation: 128 + 16 params; MACs 128*16; ew 128*2; acts 256 + 128
    "stages.0.blocks.0.project": ("conv", 144, 2048, 256, 384),
    # residual add of 8x4x4: ew C*H*W; acts 3*C*H*W
    "stages.0.blocks.0.add": ("add", 0, 0, 128, 384),
    # windowed max pool 3x3 s2, 8x4x4 -> 8x2x2: ew Nout*k^2 = 32*9; acts 128 + 32
    "stages.1.blocks.0": ("pool", 0, 0, 288, 160),
    # windowed average pool 3x3 s1, 8x2x2 -> 8x2x2: ew 32*9; acts 32 + 32
    "stages.1.blocks.1": ("pool", 0, 0, 288, 64),
    # global average pool of 8x2x2: ew Nin = 32; acts 32 + 8
    "head.0": ("pool", 0, 0, 32, 40),
    # linear 8 -> 5: 8*5 + 5 params; MACs 40; acts 8 + 5
    "head.1": ("classifier", 45, 40, 0, 13),
}
# stage path -> (name, blocks, params, MACs, ew, activation elements): the sums of its layers above
TINY_STAGES = {
    "stem": ("stem", 1, 304, 4608, 384, 384),
    "stages.0": ("a", 1, 628, 6528, 2452, 2176),
    "stages.1": ("b", 2, 0, 0, 576, 224),
    "head": ("head", 2, 45, 40, 32, 53),
}
TINY_TOTAL = (977, 11176, 3444, 2837)  # params, MACs, ew, activation elements


@pytest.fixture(scope="module")
def tiny():
    return compile_text(TINY, "tiny.arch")


def test_se_and_windowed_pool_layers_cost_what_the_formulas_say(tiny):
    """Catches: SE element-wise ops or activation bytes miscounted, and windowed-pool element-wise
    ops miscounted (before, per-layer figures were checked only on one stem conv)."""
    rows = {r["path"]: r for r in cost_json(tiny)["layers"]}
    got = {
        p: (r["kind"], r["params"], r["macs"], r["elementwise"], r["activation_bytes"] // 4) for p, r in rows.items()
    }
    assert got == TINY_LAYERS
    assert all(r["activation_bytes"] == 4 * TINY_LAYERS[p][4] for p, r in rows.items())
    assert all(r["weight_bytes"] == 4 * r["params"] for r in rows.values())


@pytest.mark.parametrize("dtype, size", [("float32", 4), ("float16", 2), ("int8", 1)])
def test_stage_rows_and_totals_of_the_cost_json(tiny, dtype, size):
    """Catches: every stage row of `cost --json` zeroed (or not the sum of its blocks)."""
    data = cost_json(tiny, dtype)
    stages = {
        s["path"]: (s["name"], s["blocks"], s["params"], s["macs"], s["elementwise"], s["activation_bytes"] // size)
        for s in data["stages"]
    }
    assert stages == TINY_STAGES
    assert [s["weight_bytes"] for s in data["stages"]] == [size * TINY_STAGES[p][2] for p in TINY_STAGES]
    params, macs, ew, acts = TINY_TOTAL
    assert data["total"] == {"params": params, "macs": macs, "elementwise": ew, "weight_bytes": size * params,
                             "activation_bytes": size * acts}  # fmt: skip
    # deploy: each of the 4 BatchNorms (8 + 16 + 16 + 8 channels) loses gamma, beta -> a bias; 2 ops per element
    assert data["deploy_total"]["params"] == params - 48
    assert data["deploy_total"]["elementwise"] == ew - 2 * (128 + 256 + 256 + 128)


def test_cost_table_rows_show_each_blocks_kind_and_figures(tiny):
    """Catches: every row of the cost table given the wrong kind (or the wrong figures)."""
    lines = cost_table(tiny).splitlines()
    rows = {line.split()[0]: line.split()[1:5] for line in lines if line.startswith("  ")}
    assert rows == {
        "stem.0": ["conv", "8x4x4", "304", "4,608"],
        "stages.0.blocks.0": ["ib", "8x4x4", "628", "6,528"],
        "stages.1.blocks.0": ["pool", "8x2x2", "0", "0"],
        "stages.1.blocks.1": ["pool", "8x2x2", "0", "0"],
        "head.0": ["pool", "8x1x1", "0", "0"],
        "head.1": ["classifier", "5", "45", "40"],
    }
    total = next(line for line in lines if line.startswith("total")).split()
    assert total[:5] == ["total", "4x8x8", "in", "977", "11,176"]


# A network with a layer of every kind the cost JSON names.
KINDS = """\
network kinds {
  input 8x8x8
  classes 4
  stem mobileone k3 c8
  stage a {
    mqa h2 d4 query_stride=2 c8 layer_scale=0.5
    ghost k3 mid=8 c8
    shuffle_v2 c8
  }
  head {
    pool avg; classifier
  }
}
"""
# (path, kind) of every layer row, in execution order, from docs/cost.md's list of kinds
KINDS_ROWS = [
    ("stem.0.conv_kxk.0", "conv"), ("stem.0.conv_scale", "conv"), ("stem.0.identity", "batchnorm"),
    ("stem.0.sum", "sum"), ("stem.0.act", "act"),
    *((f"stages.0.blocks.0.{p}", k) for p, k in [
        ("norm", "batchnorm"), ("query_pool", "pool"), ("query_norm", "batchnorm"), ("query", "conv"),
        ("key", "conv"), ("value", "conv"), ("attention", "attention"), ("upsample", "upsample"),
        ("output", "conv"), ("layer_scale", "layer_scale"), ("add", "add")]),
    *((f"stages.0.blocks.1.{p}", k) for p, k in [
        ("ghost1.primary", "conv"), ("ghost1.cheap", "conv"), ("ghost1.concat", "concat"),
        ("ghost2.primary", "conv"), ("ghost2.cheap", "conv"), ("ghost2.concat", "concat"), ("add", "add")]),
    *((f"stages.0.blocks.2.{p}", k) for p, k in [
        ("pw1", "conv"), ("dw", "conv"), ("pw2", "conv"), ("concat", "concat"), ("shuffle", "shuffle")]),
    ("head.0", "pool"), ("head.1", "classifier"),
]  # fmt: skip


def test_every_layer_row_of_the_cost_json_has_its_kind():
    """Catches: layer rows of `cost --json` given the wrong kind (every row, or one derived kind)."""
    rows = cost_json(compile_text(KINDS, "kinds.arch"))["layers"]
    assert [(r["path"], r["kind"]) for r in rows] == KINDS_ROWS
    owner = {"stem": 2, "stages": 4, "head": 2}  # dotted parts of a block path
    assert [r["block"] for r in rows] == [".".join(p.split(".")[: owner[p.split(".")[0]]]) for p, _ in KINDS_ROWS]


@pytest.mark.parametrize("dtype, size", [("float32", 4), ("float16", 2), ("bfloat16", 2), ("int8", 1)])
def test_roofline_uses_the_dtype(tiny, dtype, size):
    """Catches: the roofline ignoring its dtype (taking float32 bytes whatever it is asked)."""
    moved = sum(size * (params + acts) for _, params, _, _, acts in TINY_LAYERS.values())
    # unlimited compute, 1 byte/s: memory time alone, the bytes moved at this dtype
    assert roofline_seconds(tiny, 1e30, 1.0, dtype=dtype) == pytest.approx(moved, rel=1e-12)
    # 1 MAC/s, 1e9 bytes/s: every layer with MACs is compute-bound; the others take their bytes
    bound = sum(macs if macs else size * (params + acts) / 1e9 for _, params, macs, _, acts in TINY_LAYERS.values())
    assert roofline_seconds(tiny, 1.0, 1e9, dtype=dtype) == pytest.approx(bound, rel=1e-12)


# ---- MobileOne folding ----------------------------------------------------------------------
MOBILEONE = """\
network m {
  input 9x7x8
  classes 4
  stem conv k1 c8
  stage a {
    mobileone k3 c8 GROUPS branches=2
  }
  head {
    pool avg; classifier
  }
}
"""


@pytest.mark.parametrize("groups", ["g1", "g2", "g4", "dw"])
def test_mobileone_folding_with_groups_matches_a_torch_reference(groups):
    """Catches: the identity branch's tap put at the wrong input channel of a grouped kernel (with
    1 < groups < channels, where neither the dense nor the depthwise position is right)."""
    import torch
    import torch.nn.functional as F

    net = compile_text(MOBILEONE.replace("GROUPS", groups), "m.arch")
    block = net.stages[0].blocks[0]
    g = {"g1": 1, "g2": 2, "g4": 4, "dw": 8}[groups]
    assert block.identity is not None and block.first.groups == g
    w = {k: torch.from_numpy(v.astype(np.float64)) for k, v in init_weights(net, 3).items()}
    p, eps = block.path, block.identity.eps

    def bn(y, prefix):
        return F.batch_norm(y, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"], w[f"{prefix}.weight"],
                            w[f"{prefix}.bias"], training=False, eps=eps)  # fmt: skip

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8, 9, 7)))
    train = sum(bn(F.conv2d(x, w[f"{p}.conv_kxk.{i}.conv.weight"], padding=1, groups=g), f"{p}.conv_kxk.{i}.bn")
                for i in range(2))  # fmt: skip
    train = train + bn(F.conv2d(x, w[f"{p}.conv_scale.conv.weight"], groups=g), f"{p}.conv_scale.bn")
    train = torch.relu(train + bn(x, f"{p}.identity"))
    folded = deploy_weights(net, {k: v.numpy().astype(np.float32) for k, v in w.items()})
    weight, bias = (torch.from_numpy(folded[f"{p}.conv.{t}"].astype(np.float64)) for t in ("weight", "bias"))
    assert set(folded) >= {f"{p}.conv.weight", f"{p}.conv.bias"}  # the merged conv is at the block's path
    assert not any(k.startswith((f"{p}.identity", f"{p}.conv_scale", f"{p}.conv_kxk")) for k in folded)
    deploy = torch.relu(F.conv2d(x, weight, bias, padding=1, groups=g))
    np.testing.assert_allclose(deploy.numpy(), train.numpy(), rtol=0, atol=1e-5)


STRIDED = """\
network m {
  input SIZE
  classes 4
  defaults {
    padding same
  }
  stem conv k1 c8
  stage a {
    mobileone k3 s2 c16
  }
  head {
    pool avg; classifier
  }
}
"""


@pytest.mark.parametrize(
    "size, top, left", [("33x32x3", 1, 0), ("32x33x3", 0, 1), ("32x32x3", 0, 0), ("33x33x3", 1, 1)]
)
def test_mobileone_merging_checks_the_left_padding_too(size, top, left):
    """Catches: the mergeability check reading the wrong side's padding (an odd height and an even
    width under TF 'same' pads the stride-2 3x3 conv 1 on top but 0 on the left: off-centre)."""
    net = compile_text(STRIDED.replace("SIZE", size), "m.arch")
    block = net.stages[0].blocks[0]
    assert (block.first.padding[0], block.first.padding[2]) == (top, left)
    if (top, left) == (1, 1):
        assert deploy_form(net).stages[0].blocks[0].scale is None  # merges
        return
    with pytest.raises(ArchError) as exc:
        deploy_form(net)
    assert f"pads {top} on top and {left} on the left" in exc.value.message
    assert exc.value.span is not None and exc.value.span.line == 9


# ---- attention: mhsa is not mqa --------------------------------------------------------------
MHSA = """\
network t {
  input 8x8x3
  classes 4
  stem conv k3 s2 c16
  stage a {
    KIND h2 d8 c16
  }
  head {
    pool avg; classifier
  }
}
"""


@pytest.mark.parametrize("kind, kv_heads", [("mhsa", 2), ("mqa", 1)])
def test_mhsa_has_a_key_and_value_head_per_query_head(kind, kv_heads):
    """Catches: `mhsa` built as `mqa` (one shared key/value head); no spec in specs/ uses mhsa."""
    net = compile_text(MHSA.replace("KIND", kind), "t.arch")
    rows = {r["path"]: r for r in cost_json(net)["layers"]}
    p = "stages.0.blocks.0"
    # 1x1 projections of the 16 input channels, no bias: query to h*d = 16, key to kv*d, value to kv*d
    assert [rows[f"{p}.{part}"]["params"] for part in ("query", "key", "value", "output")] == [
        256, 16 * 8 * kv_heads, 16 * 8 * kv_heads, 256
    ]  # fmt: skip
    # attention core, N = M = 16 positions: N*h*d + M*kv*(d+dv) + 2*N*h*M + N*h*dv elements
    assert rows[f"{p}.attention"]["activation_bytes"] == 4 * (256 + 16 * kv_heads * 16 + 1024 + 256)
    assert rows[f"{p}.attention"]["macs"] == 16 * 2 * 16 * 16  # N*h*M*(d+dv), the same for both


def test_mhsa_computes_multi_head_attention(tmp_path):
    """Catches: `mhsa` built as `mqa`, by its function: a numpy reference of two-head attention
    (each head with its own keys and values) against the generated PyTorch block."""
    net = compile_text(MHSA.replace("KIND", "mhsa"), "t.arch")
    weights = init_weights(net, 2)
    save_weights(weights, tmp_path / "w.safetensors")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8), dtype=np.float32)
    out = runner("torch")[0](get_backend("torch").emit(net), net, str(tmp_path / "w.safetensors"), x)
    p, h, d = "stages.0.blocks.0", 2, 8
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    inp = out["stem.0"][0].reshape(16, 16).astype(np.float64)  # 16 channels x 16 positions
    g = w[f"{p}.norm.weight"] / np.sqrt(w[f"{p}.norm.running_var"] + 1e-5)
    xn = g[:, None] * (inp - w[f"{p}.norm.running_mean"][:, None]) + w[f"{p}.norm.bias"][:, None]

    def proj(part, t):
        return w[f"{p}.{part}.conv.weight"][:, :, 0, 0] @ t

    q, k, v = (proj(part, xn).reshape(h, d, 16) for part in ("query", "key", "value"))  # head-major channels
    heads = []
    for i in range(h):
        s = q[i].T @ k[i] / np.sqrt(d)  # N x M
        a = np.exp(s - s.max(axis=1, keepdims=True))
        heads.append((a / a.sum(axis=1, keepdims=True)) @ v[i].T)  # N x dv
    attended = np.concatenate(heads, axis=1).T  # h*dv x N
    want = inp + proj("output", attended)  # residual, no layer scale
    np.testing.assert_allclose(out[p][0].reshape(16, 16), want, rtol=0, atol=1e-4)


# ---- Keras BatchNorm momentum -----------------------------------------------------------------
MOMENTUM = """\
network k {
  input 12x12x3
  classes 4
  defaults {
    norm batchnorm eps=1e-3 momentum=0.03
  }
  stem conv k1 c8
  stage a {
    mobileone k3 c8
    mqa h2 d4 v2 query_stride=2 c8
  }
  head {
    pool avg; classifier
  }
}
"""


def test_keras_batchnorm_momentum_is_the_complement_of_pytorchs(tmp_path):
    """Catches: Keras BatchNorm momentum not converted from PyTorch's convention (Keras keeps
    `momentum` of the old statistics, PyTorch mixes in `momentum` of the new): every BatchNorm
    of the model, and the moving means one training step leaves, against a numpy reference."""
    runner("keras")  # quiets TensorFlow
    import keras

    net = compile_text(MOMENTUM, "k.arch")
    weights = init_weights(net, 0)
    save_weights(weights, tmp_path / "w.safetensors")
    module = load_module(get_backend("keras").emit(net), "momentum")
    model = module.load_weights(module.build_model(), str(tmp_path / "w.safetensors"))
    norms = {module._path(layer): layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    b0, b1 = "stages.0.blocks.0", "stages.0.blocks.1"
    assert sorted(norms) == sorted(["stem.0.bn", f"{b0}.conv_kxk.0.bn", f"{b0}.conv_scale.bn", f"{b0}.identity",
                                    f"{b1}.norm", f"{b1}.query_norm", f"{b1}.key_down.bn", f"{b1}.value_down.bn"])  # fmt: skip
    assert all(
        layer.momentum == pytest.approx(0.97) and layer.epsilon == pytest.approx(1e-3) for layer in norms.values()
    )

    x = np.random.default_rng(1).standard_normal((1, 12, 12, 3)).astype(np.float32)  # NHWC
    model(x, training=True)
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    conv = x.reshape(-1, 3).astype(np.float64) @ w["stem.0.conv.weight"][:, :, 0, 0].T  # 144 positions x 8
    mean, var = conv.mean(axis=0), conv.var(axis=0)  # batch statistics (biased variance normalises)
    want = 0.97 * w["stem.0.bn.running_mean"] + 0.03 * mean
    np.testing.assert_allclose(np.asarray(norms["stem.0.bn"].moving_mean), want, rtol=1e-5, atol=1e-6)
    # the identity branch's BatchNorm (another code path) sees the stem's training-mode output
    stem = np.maximum(0, w["stem.0.bn.weight"] * (conv - mean) / np.sqrt(var + 1e-3) + w["stem.0.bn.bias"])
    want = 0.97 * w[f"{b0}.identity.running_mean"] + 0.03 * stem.mean(axis=0)
    np.testing.assert_allclose(np.asarray(norms[f"{b0}.identity"].moving_mean), want, rtol=1e-5, atol=1e-6)


# ---- drop path ------------------------------------------------------------------------------


def test_drop_path_scales_the_kept_branches_by_one_over_keep():
    """Catches: drop_path without its 1/keep scaling (training-time outputs biased by keep)."""
    import torch

    net = compile_text(small_net("ib k3 e4 c16 drop_path=0.5"), "n.arch")
    module = load_module(get_backend("torch").emit(net), "drop")
    model = module.build_model().train()
    for m in model.modules():  # BatchNorm in eval mode: only drop_path differs between the modes
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    block = model.get_submodule("stages.0.blocks.1")
    x = torch.randn(1, 16, 16, 16).repeat(64, 1, 1, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        trained = block(x) - x
        block.eval()
        branch = block(x) - x  # eval: drop_path is the identity
    kept = trained.flatten(1).abs().amax(dim=1) > 0  # a dropped sample's branch is exactly zero
    torch.testing.assert_close(trained[kept], branch[kept] / 0.5, rtol=1e-5, atol=1e-5)  # scaled by 1 / keep
    assert 0 < int(kept.sum()) < 64


# ---- determinism across processes ------------------------------------------------------------
# Every block kind, so that each backend's list of helper classes and functions is long.
EVERY_KIND = """\
network every {
  input 32x32x3
  classes 10
  defaults {
    se base=mid divisor=4 gate=hard_sigmoid
  }
  stem conv k3 s2 c24
  stage a {
    ds k3 c24 se0.25
    ib k3 e2 c24 layer_scale=1e-5 drop_path=0.1
    fused_ib k3 e2 c24 se0.25
    mqa h2 d8 v2 c24
    mhsa h2 d8 c24
  }
  stage b {
    shuffle_v1 g3 s2 c48
    shuffle_v2 c48
    ghost k3 mid=48 c48 se0.25
    mobileone k3 c48 branches=2 act=gelu
    pool max k3
  }
  head {
    pool avg
    conv k1 c64 act=hard_swish
    classifier
  }
}
"""

_EMIT_ALL = """\
import hashlib, sys
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_text
from archdsl.analysis.report import cost_table
net = compile_text(sys.stdin.read(), "every.arch")
for text in [get_backend(b).emit(net) for b in ("torch", "keras", "coreml")] + [cost_table(net)]:
    print(hashlib.sha256(text.encode()).hexdigest())
"""


def test_generated_code_is_identical_across_hash_seeds():
    """Catches: a list of templates or helpers taken from a set (deterministic within one process,
    different between processes with other PYTHONHASHSEED values)."""
    kinds = {b.kind for b in compile_text(EVERY_KIND, "every.arch").blocks()}
    assert kinds == {"conv", "ds", "uib", "fused_ib", "mqa", "shuffle_v1", "shuffle_v2", "ghost", "mobileone",
                     "pool", "classifier"}  # fmt: skip
    digests = set()
    for seed in ("0", "1", "2", "3", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", _EMIT_ALL], input=EVERY_KIND, capture_output=True, text=True,
                                env=env, cwd=ROOT, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout)
    assert len(digests) == 1
