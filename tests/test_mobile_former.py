"""Mobile-Former (`tokens`, `mf`, `mf_down`, `mf_merge`; docs/language.md "Mobile-Former"): a
checkpoint of the authors' implementation reproduces its logits in every backend, in both forms;
the bridge and Former against an independent rebuild of their definitions; tokens through
every backend block by block; what a map and its tokens look like in reports and the editor;
`x0` in a family; and the located errors of bad input. (The every-spec tests run the three
members through every backend, the deploy form and the reference counts as well.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archdsl.analysis.layers import network_tensors
from archdsl.analysis.report import shape_text
from archdsl.cli import main as cli
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from archdsl.ir.deploy_form import deploy_form, deploy_weights
from archdsl.runtimes.importers.mobile_former import import_mobile_former
from archdsl.runtimes.runners import reported_paths, runner
from archdsl.runtimes.verify import compare, run_backends
from archdsl.runtimes.weights import init_weights, save_weights
from conftest import FIXTURES, SPECS

CHECKPOINT, IO = FIXTURES / "mobile_former_26m.safetensors", FIXTURES / "mobile_former_26m.io.npz"


def _imported(tmp_path, deploy: bool = False):
    if not CHECKPOINT.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    weights = tmp_path / "w.safetensors"
    args = ["import-weights", str(SPECS / "mobile_former_26m.arch"), "--from", "mobile-former", str(CHECKPOINT)]
    assert cli.main([*args, "-o", str(weights), *(["--deploy"] if deploy else [])]) == 0
    return weights


# Every runtime in the train form; the deploy form where it is quick (Keras' and TFLite's deploy
# forms are compared block by block with PyTorch's by the every-spec tests and the one below).
CASES = [(b, False) for b in ("torch", "keras", "tflite", "coreml", "onnx")] + [
    (b, True) for b in ("torch", "coreml", "onnx")
]


@pytest.mark.parametrize(("backend", "deploy"), CASES, ids=[f"{b}-{'deploy' if d else 'train'}" for b, d in CASES])
def test_the_authors_checkpoint_reproduces_their_logits(backend, deploy, tmp_path):
    weights = _imported(tmp_path, deploy)
    net = compile_file(SPECS / "mobile_former_26m.arch", deploy=deploy)
    data = np.load(IO)
    run, source = runner(backend)
    outputs = run(get_backend(source).emit(net), net, str(weights), data["input"].astype(np.float32))
    logits, ref = outputs[net.head.blocks[-1].path], data["logits"]
    assert np.max(np.abs(logits - ref)) / max(1.0, np.max(np.abs(ref))) <= 1e-4
    assert np.argmax(logits) == np.argmax(ref)


def test_every_tensor_of_the_checkpoint_is_used_once_and_a_misfit_is_named():
    from safetensors.numpy import load_file

    if not CHECKPOINT.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    net = compile_file(SPECS / "mobile_former_26m.arch")
    state = load_file(str(CHECKPOINT))
    weights = import_mobile_former(net, state)
    assert len(weights) == len(network_tensors(net)) == len(state) == 428
    assert np.array_equal(weights["stem.1.tokens"], state["tokens.weight"])
    assert np.array_equal(weights["stages.0.blocks.0.project.conv.weight"], state["features.0.conv.4.weight"])
    # the 294M network does not fit the 26M checkpoint: every problem named at once
    with pytest.raises(ArchError, match=r"does not fit mobile_former_294m \(\d+ problems\): shape: stem.0.conv.weight"):
        import_mobile_former(compile_file(SPECS / "mobile_former_294m.arch"), state)
    # a network outside the authors' layout: the block named
    with pytest.raises(ArchError, match="the authors' layout has no place for stages.0.blocks.0 \\(a ds block\\)"):
        import_mobile_former(compile_file(SPECS / "mnv2.arch"), state)


# ---- the bridge and the Former, rebuilt from their definitions ---------------------------------


def _linear(w, key, x):
    return x @ torch.from_numpy(w[f"{key}.weight"]).T + torch.from_numpy(w[f"{key}.bias"])


def _layer_norm(w, key, x):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], torch.from_numpy(w[f"{key}.weight"]),
                                          torch.from_numpy(w[f"{key}.bias"]), 1e-5)  # fmt: skip


def reference_block(w, p, x, tokens, heads=2, former_heads=4):
    """An `mf` block (the authors' DnaBlock) written from the paper's equations, in plain tensor
    ops with explicit per-head loops, on canonical weights: tokens (count, dim), x (C, H, W)."""
    c, h, wd = x.shape
    pixels = x.reshape(c, h * wd).T  # HW x C
    # Mobile -> Former: each head's tokens attend to the pixels' slice of channels
    q = _linear(w, f"{p}.to_former.q", tokens)
    n = c // heads
    parts = []
    for i in range(heads):
        s = slice(i * n, (i + 1) * n)
        a = torch.softmax(q[:, s] @ pixels[:, s].T / math.sqrt(n), dim=-1)
        parts.append(a @ pixels[:, s])
    y = torch.cat(parts, 1) * 2 * torch.nn.functional.hardsigmoid(_linear(w, f"{p}.to_former.alpha", tokens))
    tokens = _layer_norm(w, f"{p}.to_former.norm", tokens + _linear(w, f"{p}.to_former.proj", y))
    # the Former
    d = tokens.shape[1] // former_heads
    q = _linear(w, f"{p}.former.q", tokens)
    parts = []
    for i in range(former_heads):
        s = slice(i * d, (i + 1) * d)
        parts.append(torch.softmax(q[:, s] @ tokens[:, s].T / math.sqrt(d), dim=-1) @ tokens[:, s])
    tokens = _layer_norm(w, f"{p}.former.norm", tokens + _linear(w, f"{p}.former.proj", torch.cat(parts, 1)))
    ffn = _linear(w, f"{p}.former.ffn2", torch.nn.functional.gelu(_linear(w, f"{p}.former.ffn1", tokens)))
    tokens = _layer_norm(w, f"{p}.former.ffn_norm", tokens + ffn)

    def conv_bn(key, t, groups):
        k = torch.from_numpy(w[f"{key}.conv.weight"])
        t = torch.nn.functional.conv2d(t[None], k, padding=k.shape[-1] // 2, groups=groups)[0]
        g, b, m, v = (torch.from_numpy(w[f"{key}.bn.{n}"]) for n in ("weight", "bias", "running_mean", "running_var"))
        return ((t - m[:, None, None]) / torch.sqrt(v[:, None, None] + 1e-5)) * g[:, None, None] + b[:, None, None]

    def dynamic_relu(key, t):
        hidden = torch.relu(_linear(w, f"{key}.fc1", tokens[0]))
        s = torch.nn.functional.hardsigmoid(_linear(w, f"{key}.fc2", hidden))
        a, b = 2 * s[: t.shape[0]], 2 * s[t.shape[0] :] - 1
        return torch.maximum(t * a[:, None, None], t * b[:, None, None])

    t = dynamic_relu(f"{p}.expand_act", conv_bn(f"{p}.expand", x, 1))
    mid = t.shape[0]
    t = dynamic_relu(f"{p}.dw_act", conv_bn(f"{p}.dw", t, mid))
    out = x + conv_bn(f"{p}.project", t, 1)
    # Former -> Mobile: each head's pixels attend to the tokens' keys and values
    k, v = _linear(w, f"{p}.to_mobile.k", tokens), _linear(w, f"{p}.to_mobile.proj", tokens)
    q = out.reshape(c, h * wd).T
    parts = []
    for i in range(heads):
        s = slice(i * n, (i + 1) * n)
        parts.append(torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(n), dim=-1) @ v[:, s])
    return out + torch.cat(parts, 1).T.reshape(c, h, wd), tokens


MF = """\
network mf {
  input 16x16x3
  classes 10
  stem {
    conv k3 s2 c16
    tokens count=3 dim=32
  }
  stage a {
    mf_down k3 s2 e2 c24 e_dw2=2 g=2 out
    mf k3 e3 c24 former_heads=2
    mf k3 e2 c24 h4
  }
  head {
    mf_merge e2 c48
    classifier
  }
}
"""


def test_the_generated_block_computes_the_papers_equations(torch_module):
    text = MF.replace("mf_down k3 s2 e2 c24 e_dw2=2 g=2 out\n    ", "").replace(
        "c24 former_heads=2", "c16 h2 former_heads=2"
    )
    net, module = torch_module(text.replace("mf k3 e2 c24 h4", "mf k3 e2 c16 h4"))
    weights = init_weights(net, 3)
    model = module.build_model().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    x = torch.randn(1, 16, 8, 8)
    tokens = torch.from_numpy(weights["stem.1.tokens"])[None]
    with torch.no_grad():
        y, t = model.stages[0].blocks[0]((x, tokens))
        ry, rt = reference_block(weights, "stages.0.blocks.0", x[0], tokens[0], heads=2, former_heads=2)
        assert torch.allclose(t[0], rt, atol=1e-5) and torch.allclose(y[0], ry, atol=1e-5)
        y2, t2 = model.stages[0].blocks[1]((y, t))
        ry2, rt2 = reference_block(weights, "stages.0.blocks.1", ry, rt, heads=4, former_heads=4)
        assert torch.allclose(t2[0], rt2, atol=1e-5) and torch.allclose(y2[0], ry2, atol=1e-4)


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
def test_tokens_agree_in_every_backend_block_by_block(deploy, tmp_path):
    net = compile_text(MF, "mf.arch")
    if deploy:
        net = deploy_form(net)
    weights = str(tmp_path / "w.safetensors")
    save_weights(init_weights(net, 0), weights)
    backends = ["torch", "keras", "coreml", "onnx"]
    results = run_backends(net, backends, weights, 0)
    tokens = {"stem.1.tokens", *(f"stages.0.blocks.{i}.tokens" for i in range(3))}
    for name in backends:
        assert tokens <= set(results[name]) and tokens <= set(reported_paths(name, net)), name
    for name in backends[1:]:
        report = compare("torch", results["torch"], name, results[name], 1e-4, reported_paths(name, net))
        assert report.first_divergence is None and not report.unmatched and report.nonfinite is None, report


def test_the_deploy_form_folds_the_merges_batchnorm_and_keeps_the_outputs(torch_module, tmp_path):
    net = compile_file(SPECS / "mobile_former_26m.arch")
    deployed = deploy_form(net)
    merge = deployed.head.blocks[0]
    assert merge.norm is None and merge.conv.norm is None and net.head.blocks[0].norm is not None
    weights = init_weights(net, 1)
    folded = deploy_weights(net, weights)
    assert "head.0.fc_norm.weight" in weights and "head.0.fc_norm.weight" not in folded
    x = torch.randn(2, 3, 224, 224)
    outs = []
    for n, w in ((net, weights), (deployed, folded)):
        from conftest import import_code

        model = import_code(get_backend("torch").emit(n), f"mf_{n.form}", tmp_path).build_model().eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=False)
        with torch.no_grad():
            outs.append(model(x))
    assert torch.allclose(outs[0], outs[1], atol=1e-4 * max(1.0, outs[0].abs().max().item()))


def test_a_map_and_its_tokens_show_both():
    net = compile_text(MF, "mf.arch")
    assert shape_text(net.stem.blocks[1]) == "16x8x8 + 3x32 tokens"
    assert shape_text(net.stages[0].blocks[0]) == "24x4x4 + 3x32 tokens"
    assert shape_text(net.head.blocks[0], "input") == "24x4x4 + 3x32 tokens"
    assert shape_text(net.head.blocks[0]) == "48x1x1"
    # an endpoint on a block with tokens is its map
    assert [(e.name, e.channels, e.hw) for e in net.endpoints] == [("a_0", 24, (4, 4))]


def test_x0_leaves_a_row_out_and_depth_scaling_keeps_it_out():
    small = compile_file(SPECS / "mobile_former_26m.arch")
    big = compile_file(SPECS / "mobile_former_294m.arch")
    assert [len(s.blocks) for s in small.stages] == [1, 1, 2, 3, 2]
    assert [len(s.blocks) for s in big.stages] == [1, 2, 2, 4, 3]
    deeper = compile_text(MF.replace("mf k3 e3 c24 former_heads=2", "mf k3 e3 c24 former_heads=2 x0").replace(
        "classes 10", "classes 10\n  depth 2.0"), "mf.arch")  # fmt: skip
    # depth 2.0: the x1 rows double, the x0 row stays absent
    assert [b.variant for b in deeper.stages[0].blocks] == ["mf_down", "mf_down", "mf", "mf"]
    assert sum(b.variant == "mf" for b in deeper.stages[0].blocks) == 2  # the x0 row stays absent


# ---- bad input ---------------------------------------------------------------------------------


def _error(text: str) -> ArchError:
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_text(text, "case.arch")
    err = info.value
    return err.errors[0] if isinstance(err, ArchErrors) else err


@pytest.mark.parametrize(
    "old, new, line, message, hint",
    [
        (
            "    tokens count=3 dim=32\n",
            "",
            8,
            "'mf_down' takes a map and its tokens, and the block before it gives one tensor",
            "tokens count=N dim=D",
        ),
        (
            "mf k3 e3 c24 former_heads=2",
            "ib k3 e3 c24",
            10,
            "'ib' takes one tensor, and the block before it gives a map and its tokens",
            "mf or mf_down",
        ),
        ("tokens count=3 dim=32", "tokens count=3", 6, "'tokens' needs how many and how wide", "dim="),
        ("mf k3 e2 c24 h4", "mf k3 e2 c24 h5", 11, "5 heads do not divide the 24 input channels", "divide 24"),
        ("former_heads=2", "former_heads=3", 10, "3 heads do not divide the 32 token width", None),
        ("e_dw2=2 g=2 out", "g=2 out", 9, "'mf_down' needs the expansion of its second depthwise conv", "e_dw2="),
        ("mf_down k3 s2 e2 c24", "mf_down k3 s2 e2.5 c24", 9, "expands by a whole factor: e=2.5 gives 40", "whole"),
        ("e_dw2=2 g=2", "e_dw2=2 g=5", 9, "groups=5 must divide", None),
        (
            "mf_merge e2 c48",
            "pool avg",
            14,
            "'pool' takes one tensor, and the block before it gives a map and its tokens",
            "mf_merge",
        ),
    ],
)
def test_bad_mobile_former_input_is_a_located_error(old, new, line, message, hint):
    assert old in MF
    err = _error(MF.replace(old, new))
    assert err.span is not None and message in err.message, err.render()
    assert err.span.line == line, err.render()
    if hint:
        assert err.hint and hint in err.hint, err.render()


def test_a_stage_left_empty_by_x0_is_an_error():
    text = MF.replace("    mf k3 e3 c24 former_heads=2\n    mf k3 e2 c24 h4\n", "").replace("out\n", "out x0\n")
    err = _error(text)
    assert "every block of 'a' repeats x0" in err.message and err.span.line == 8, err.render()


def test_the_editor_shows_a_map_and_its_tokens(tmp_path):
    from archdsl.lsp.analysis import EditorFiles, analyse
    from archdsl.lsp.hover import hover_text

    a = analyse(tmp_path / "mf.arch", MF, EditorFiles(), {})
    assert a.errors == []
    line = next(i for i, t in enumerate(MF.splitlines(), 1) if "mf k3 e3" in t)
    said = hover_text(a, (line, 6))
    assert said is not None and "`24x4x4 + 3x32 tokens -> 24x4x4 + 3x32 tokens`" in said, said
