"""MobileOne's elaboration where the specs do not reach: a 1x1 scale branch for every kernel
above 1 (an even one too, under 'same' padding), and an SE sized from the channels its `base`
names (the block's input or its output) when the block changes the channel count."""

from __future__ import annotations

import pytest

from archdsl.compiler import compile_text

NET = """\
network n {
  input 32x32x3
  classes 10
  defaults {
    padding PAD
    se base=BASE divisor=4
  }
  stem conv k3 s2 c16
  stage a {
    BLOCK
  }
  head {
    pool avg; classifier
  }
}
"""


def _block(block: str, pad: str = "symmetric", base: str = "mid"):
    net = compile_text(NET.replace("PAD", pad).replace("BASE", base).replace("BLOCK", block))
    return net.stages[0].blocks[0]


@pytest.mark.parametrize("k, pad, has_scale", [(1, "symmetric", False), (2, "same", True), (3, "symmetric", True)])
def test_a_scale_branch_for_every_kernel_above_one(k, pad, has_scale):
    block = _block(f"mobileone k{k} c16", pad)
    assert (block.scale is not None) == has_scale
    if has_scale:
        assert (block.scale.kernel, block.scale.cin, block.scale.cout) == (1, 16, 16)


# 16 -> 32 channels, se=0.5: base=in sizes the SE from 16 (8 reduced), base=out and mid from 32 (16)
@pytest.mark.parametrize("base, reduced", [("in", 8), ("out", 16), ("mid", 16)])
def test_the_se_is_sized_from_its_base(base, reduced):
    block = _block("mobileone k3 c32 se=0.5", base=base)
    assert (block.se.channels, block.se.reduced) == (32, reduced)
