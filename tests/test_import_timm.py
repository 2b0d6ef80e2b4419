"""Importing timm checkpoints: every tensor found under its timm name with its exact shape, and
problems reported by name; with the reference fixtures, the imported networks reproduce the
logits timm computed, in every backend."""

from __future__ import annotations

import numpy as np
import pytest

from archdsl.backends.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.errors import ArchError
from archdsl.importers.timm import _modules, import_timm, timm_key
from archdsl.layers import network_tensors
from archdsl.runners import runner
from archdsl.weights import init_weights
from conftest import FIXTURES, SPECS

# spec -> the fixture made from the timm model it reproduces
CHECKPOINTS = {
    "mnv4_conv_s": "mobilenetv4_conv_small",
    "mnv3_small": "mobilenetv3_small_100",
    "mobileone_s0": "mobileone_s0",
    "mnv4_hybrid_m_075": "mobilenetv4_hybrid_medium_075",
}


@pytest.mark.parametrize("backend", ["torch", "keras", "coreml"])
@pytest.mark.parametrize("spec", sorted(CHECKPOINTS))
def test_imported_checkpoint_reproduces_the_reference_logits(spec, backend, tmp_path):
    ckpt, io = FIXTURES / f"{CHECKPOINTS[spec]}.safetensors", FIXTURES / f"{CHECKPOINTS[spec]}.io.npz"
    if not ckpt.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    from archdsl import cli

    weights = tmp_path / "w.safetensors"
    assert (
        cli.main(["import-weights", str(SPECS / f"{spec}.arch"), "--from", "timm", str(ckpt), "-o", str(weights)]) == 0
    )
    net = compile_file(SPECS / f"{spec}.arch")
    data = np.load(io)
    run, source = runner(backend)
    outputs = run(get_backend(source).emit(net), net, str(weights), data["input"].astype(np.float32))
    logits = outputs[net.head.blocks[-1].path]
    ref = data["logits"]
    assert np.max(np.abs(logits - ref)) / max(1.0, np.max(np.abs(ref))) <= 1e-4


def _as_timm(spec: str, names_from: str = "uir") -> tuple:
    """A synthetic timm checkpoint for a spec: its canonical weights under timm's names."""
    net = compile_file(SPECS / f"{spec}.arch")
    weights = init_weights(net, 0)
    # timm's naming is told apart per block, by the names present: mark every block as `uir` or not
    blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(net.stages) for j in range(len(stage.blocks))]
    modules = _modules(net, {f"{b}.pw_exp.conv.weight": None for b in blocks} if names_from == "uir" else {})
    return net, weights, {timm_key(k, modules): v for k, v in weights.items()}


@pytest.mark.parametrize(
    "spec, names", [("mnv4_conv_s", "uir"), ("mnv3_large", "ir"), ("mnv2", "ir"), ("mnv4_conv_m", "uir")]
)
def test_a_timm_named_checkpoint_imports_to_the_same_weights(spec, names):
    net, weights, state = _as_timm(spec, names)
    imported = import_timm(net, state)
    assert list(imported) == [t.key for t in network_tensors(net)]
    assert all(np.array_equal(imported[k], weights[k]) for k in weights)


def test_problems_are_reported_by_name():
    net, _, state = _as_timm("mnv4_conv_s")
    del state["blocks.2.1.dw_mid.bn.running_var"]
    state["blocks.3.0.pw_proj.conv.weight"] = np.zeros((128, 576, 3, 3), np.float32)
    state["head.extra"] = np.zeros(3, np.float32)
    with pytest.raises(ArchError) as exc:
        import_timm(net, state)
    text = exc.value.message
    assert "3 problems" in text
    assert (
        "missing: stages.2.blocks.1.dw_mid.bn.running_var (192,) (timm name blocks.2.1.dw_mid.bn.running_var)" in text
    )
    assert (
        "shape: stages.3.blocks.0.project.conv.weight needs (128, 576, 1, 1), timm blocks.3.0.pw_proj.conv.weight has (128, 576, 3, 3)"
        in text
    )  # noqa: E501
    assert "unused: head.extra (3,)" in text


def test_ghostnet_tensors_get_timm_names_and_shapes():
    # names and shapes of timm's ghostnet_100 state dict (timm/models/ghostnet.py, v1)
    expected = {
        "conv_stem.weight": (16, 3, 3, 3),
        "blocks.1.0.ghost1.primary_conv.0.weight": (24, 16, 1, 1),
        "blocks.1.0.ghost1.cheap_operation.0.weight": (24, 1, 3, 3),
        "blocks.1.0.conv_dw.weight": (48, 1, 3, 3),
        "blocks.1.0.shortcut.0.weight": (16, 1, 3, 3),
        "blocks.1.0.shortcut.3.running_var": (24,),
        "blocks.3.0.se.conv_reduce.weight": (20, 72, 1, 1),
        "blocks.6.3.shortcut.2.weight": (112, 80, 1, 1),  # a stride-1 projection: 80 -> 112 channels
        "blocks.8.3.ghost2.cheap_operation.1.weight": (80,),
        "blocks.9.0.conv.weight": (960, 160, 1, 1),
        "blocks.9.0.bn1.running_mean": (960,),
        "conv_head.bias": (1280,),
        "classifier.weight": (1000, 1280),
    }
    net = compile_file(SPECS / "ghostnet_100.arch")
    modules = _modules(net, {})
    names = {timm_key(t.key, modules): t.shape for t in network_tensors(net)}
    assert None not in names and len(names) == len(network_tensors(net)) == 432  # timm's 512 less num_batches_tracked
    assert {k: names.get(k) for k in expected} == expected
    assert not any("blocks.0.0.shortcut" in k or "blocks.0.0.conv_dw" in k for k in names)  # identity, stride 1
