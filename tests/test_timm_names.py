"""timm's names against real timm checkpoints: every tensor of the mobileone_s0 spec (ByobNet
layout), and of mnv3_small, mnv4_conv_s and mnv4_hybrid_m_075 (the EfficientNet-family layout:
depthwise-separable, inverted-residual, edge-residual, UIB and attention blocks), is found under
its name with its shape, and no checkpoint tensor is left over; a mobileone block in the head has
no timm name.
Fast: no model is run (test_import_timm.py runs the imported networks against timm's logits)."""

from __future__ import annotations

import pytest

from archdsl.analysis.layers import network_tensors
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.importers.timm import _modules, _timm_names, import_timm, read_checkpoint
from archdsl.runtimes.weights import init_weights
from conftest import FIXTURES, SPECS


def test_every_mobileone_s0_tensor_has_its_timm_name_and_shape():
    ckpt = FIXTURES / "mobileone_s0.safetensors"
    if not ckpt.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    state, dtypes, _ = read_checkpoint(str(ckpt))
    net = compile_file(SPECS / "mobileone_s0.arch")
    weights = import_timm(net, state, dtypes)  # raises naming every missing, misshapen or unused tensor
    assert len(weights) == sum(1 for k in state if not k.endswith("num_batches_tracked"))
    # timm's stages.<i>.<j> hold the branches under our names: conv_kxk.<n>, conv_scale, identity
    for i, stage in enumerate(net.stages):
        for j, block in enumerate(stage.blocks):
            timm = f"stages.{i}.{j}"
            last = f"conv_kxk.{len(block.branches) - 1}"
            assert (weights[f"{block.path}.{last}.conv.weight"] == state[f"{timm}.{last}.conv.weight"]).all()
            if block.scale is not None:
                assert (weights[f"{block.path}.conv_scale.bn.bias"] == state[f"{timm}.conv_scale.bn.bias"]).all()
            if block.identity is not None:
                assert (weights[f"{block.path}.identity.running_var"] == state[f"{timm}.identity.running_var"]).all()


EFFICIENTNET_FAMILY = {
    "mnv3_small": "mobilenetv3_small_100",
    "mnv4_conv_s": "mobilenetv4_conv_small",
    "mnv4_hybrid_m_075": "mobilenetv4_hybrid_medium_075",
}


@pytest.mark.parametrize("spec", sorted(EFFICIENTNET_FAMILY))
def test_every_efficientnet_family_tensor_has_its_timm_name_and_shape(spec: str):
    ckpt = FIXTURES / f"{EFFICIENTNET_FAMILY[spec]}.safetensors"
    if not ckpt.exists():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set ARCHDSL_FIXTURES)")
    state, dtypes, _ = read_checkpoint(str(ckpt))
    net = compile_file(SPECS / f"{spec}.arch")
    weights = import_timm(net, state, dtypes)  # raises naming every missing, misshapen or unused tensor
    assert len(weights) == sum(1 for k in state if not k.endswith("num_batches_tracked"))
    # our blocks, in execution order, take timm's in its order: stem, blocks.<i>.<j> as they run, head
    names = _timm_names(net, network_tensors(net), _modules(net, state))
    places = [_place(names[t.key]) for t in network_tensors(net)]
    assert places == sorted(places) and places[0] == (-1, 0) and places[-1] == (HEAD, 0)
    assert {i for i, _ in places} == {-1, *range(len(net.stages)), HEAD}


HEAD = 1 << 10  # after every stage


def _place(timm_name: str) -> tuple[int, int]:
    """Where a timm tensor sits in the network's order: the stem (-1), blocks.i.j, the head."""
    parts = timm_name.split(".")
    if parts[0] == "blocks":
        return int(parts[1]), int(parts[2])
    return (-1, 0) if parts[0] in ("conv_stem", "bn1") else (HEAD, 0)


MOBILEONE_HEAD = """\
network n {
  input 32x32x3
  classes 10
  stem mobileone k3 s2 c16
  stage a {
    mobileone k3 c16
  }
  head {
    mobileone k1 c32; pool avg; classifier
  }
}
"""


def test_a_mobileone_block_in_the_head_has_no_timm_name():
    # timm's ByobNet head is a pool and a classifier: a mobileone block there has no place in it
    net = compile_text(MOBILEONE_HEAD, "n.arch")
    state = {f"x.{k}": v for k, v in init_weights(net, 0).items()}
    with pytest.raises(ArchError) as exc:
        import_timm(net, state)
    assert "has no place for head.0 (a mobileone block)" in exc.value.message
    assert exc.value.span is not None and exc.value.span.line == 9
