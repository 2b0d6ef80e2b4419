"""The resolving passes: rounding rules, depth and width scaling against the reference tables,
purity and idempotence, and invariants of the resolved network."""

from __future__ import annotations

import copy

import pytest

from archdsl.analysis.cost import network_cost
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError
from archdsl.ir import nodes as ir
from archdsl.ir.network import Network
from archdsl.ir.nodes import NetworkSpec
from archdsl.ir.pipeline import PIPELINE, resolve
from archdsl.ir.rounding import make_divisible, scale_depth
from archdsl.language.loader import load_text
from archdsl.language.lower import lower
from conftest import CONCRETE_SPECS, SPECS


@pytest.mark.parametrize(
    "v, divisor, limit, expected",
    [(16, 8, 0.9, 16), (20, 8, 0.9, 24), (12, 8, 0.9, 16), (11, 8, 0.9, 16), (4, 8, 0.9, 8), (88.08, 8, 0.9, 88),
     (184, 8, 0.9, 184), (121, 8, 0.9, 120), (35.2, 8, 0.9, 32), (35.2, 8, 0.95, 40), (67, 8, 0.9, 64), (66, 8, 0.95, 64), (9, 8, 0.9, 16),
     (7, 4, 0.9, 8), (2.5, 1, 0.0, 3), (128 / 16, 8, 0.0, 8)],
)  # fmt: skip
def test_make_divisible(v, divisor, limit, expected):
    assert make_divisible(v, divisor, limit) == expected


@pytest.mark.parametrize(
    "repeats, multiplier, expected",
    [([2], 1.1, [3]), ([3], 1.2, [4]), ([4], 1.4, [6]), ([1, 2], 1.5, [2, 3]), ([1, 1, 2], 2.0, [2, 2, 4]),
     ([2, 2], 0.5, [1, 1]), ([1, 3], 1.2, [1, 4])],
)  # fmt: skip
def test_scale_depth_ceils_and_distributes_in_reverse(repeats, multiplier, expected):
    assert scale_depth(repeats, multiplier) == expected


# EfficientNet-Lite members: (width, depth, resolution) -> stage (cout, repeats) and params (timm).
LITE = {
    "lite1": (1.0, 1.1, 240, [(16, 1), (24, 3), (40, 3), (80, 4), (112, 4), (192, 5), (320, 1)], 5_416_680),
    "lite2": (1.1, 1.2, 260, [(16, 1), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 1)], 6_092_072),
    "lite3": (1.2, 1.4, 300, [(24, 1), (32, 3), (48, 3), (96, 5), (136, 5), (232, 6), (384, 1)], 8_197_096),
    "lite4": (1.4, 1.8, 380, [(24, 1), (32, 4), (56, 4), (112, 6), (160, 6), (272, 8), (448, 1)], 13_006_568),
}


@pytest.mark.parametrize("member", sorted(LITE))
def test_efficientnet_lite_family_scaling_matches_reference(member):
    width, depth, res, stages, params = LITE[member]
    text = f'import "efficientnet_lite.arch"\nnetwork {member} = efficientnet_lite(width_mult={width}, depth_mult={depth}, res={res})\n'
    net = compile_text(text, str(SPECS / f"{member}.arch"))
    got = [
        (s.blocks[-1].project.cout if s.blocks[-1].kind == "uib" else s.blocks[-1].pw.cout, len(s.blocks))
        for s in net.stages
    ]
    assert got == stages
    assert net.input_shape == (3, res, res)
    assert net.stem.blocks[0].cout == 32 and net.head.blocks[0].cout == 1280  # fixed stem and head
    assert network_cost(net).params == params


def _spec(name: str) -> NetworkSpec:
    return lower(load_text((SPECS / f"{name}.arch").read_text(), str(SPECS / f"{name}.arch")))


def _check_spec(spec: NetworkSpec, after: tuple[str, ...]) -> None:
    blocks = [b for s in (spec.stem, *spec.stages, spec.head) for b in s.blocks]
    if "apply_defaults" in after:
        assert all(b.act is not None and b.se_config is not None for b in blocks)
    if "expand_repeats" in after:
        assert all(b.repeat == 1 for b in blocks)
    if "scale_width" in after:
        assert spec.rho == 1.0 and spec.resolution is None  # folded into input_hw


def check_network(net: Network) -> None:
    """Invariants of a resolved network: channels and sizes chain, paths are unique and ordered."""
    paths = [b.path for b in net.blocks()]
    assert len(set(paths)) == len(paths)
    c, h, w = net.input_shape
    for block in net.blocks():
        first = (
            getattr(block, "dw_start", None)
            or getattr(block, "dw", None)
            or getattr(block, "expand", None)
            or (block.branches[0] if block.kind == "mobileone" else block)
        )
        if block.kind == "mqa":
            assert (block.channels, block.hw) == (c, (h, w)) and block.query.cin == c, block.path
        if block.kind == "ghost":
            assert (block.ghost1.primary.cin, block.ghost1.primary.in_hw) == (c, (h, w)), block.path
            assert block.shortcut_pw is None or block.shortcut_pw.cout == block.ghost2.out
        if block.kind == "shuffle_v1":
            assert (block.reduce.cin, block.reduce.in_hw) == (c, (h, w)), block.path
        if block.kind == "shuffle_v2":  # stride 1: pw1 sees the second half of the channels
            taken = block.down_dw or block.pw1
            assert (taken.cin * (1 if block.down_dw else 2), taken.in_hw) == (c, (h, w)), block.path
        if block.kind in ("conv", "ds", "uib", "fused_ib", "mobileone"):
            assert (first.cin, first.in_hw) == (c, (h, w)), block.path
        if block.kind in ("tokens", "mf_merge"):
            assert ((block.channels, block.hw) if block.kind == "tokens" else (block.cin, block.hw)) == (c, (h, w))
        if block.kind == "mf":  # the Mobile sub-block's first conv reads the map; the bridge too
            assert (block.cin, block.in_hw) == (c, (h, w)) == (block.mobile[0].cin, block.mobile[0].in_hw), block.path
            assert block.to_former is None or (block.to_former.channels, block.to_former.hw) == (c, (h, w))
            assert block.to_mobile is None or (block.to_mobile.channels, block.to_mobile.hw) == (
                block.cout,
                block.out_hw,
            )
        if block.kind == "octave":  # each conv takes both parts of what the one before gives
            given = (c, (h, w))
            for conv in block.convs:
                assert (conv.cin + conv.cin_low, conv.in_hw) == given, conv.path
                assert conv.path.rsplit(".", 1)[0] == block.path and conv.convs(), conv.path
                given = (conv.cout + conv.cout_low, conv.out_hw)
        for part in ("dw_start", "expand", "dw_mid", "project", "dw_end", "dw", "pw"):
            layer = getattr(block, part, None)
            if layer is not None:
                assert layer.path == f"{block.path}.{part}"
                assert layer.kernel % 2 == 1 or any(layer.padding)
        c, (h, w) = _output(block, c, (h, w))


def _output(block, c, hw):
    if block.kind == "conv":
        return block.cout, block.out_hw
    if block.kind == "ds":
        return block.pw.cout, block.pw.out_hw
    if block.kind in ("uib", "fused_ib"):
        last = getattr(block, "dw_end", None) or block.project
        return last.cout, last.out_hw
    if block.kind == "mobileone":
        assert all(b.out_hw == block.branches[0].out_hw for b in (*block.branches, block.scale) if b)
        return block.branches[0].cout, block.branches[0].out_hw
    if block.kind == "mqa":
        return block.output.cout, block.hw
    if block.kind == "ghost":
        assert block.ghost2.cheap.out_hw == (block.dw or block.ghost1.cheap).out_hw
        return block.ghost2.out, block.ghost2.cheap.out_hw
    if block.kind == "shuffle_v1":
        pooled = block.shortcut.channels if block.shortcut else 0
        assert block.shortcut is None or block.shortcut.out_hw == block.expand.out_hw
        return block.expand.cout + pooled, block.expand.out_hw
    if block.kind == "shuffle_v2":
        assert block.down_pw is None or block.down_pw.out_hw == block.pw2.out_hw
        return 2 * block.pw2.cout, block.pw2.out_hw
    if block.kind == "pool":
        return c, block.out_hw
    if block.kind == "octave":
        return block.convs[-1].cout + block.convs[-1].cout_low, block.convs[-1].out_hw
    if block.kind == "tokens":
        return c, hw
    if block.kind == "mf":
        last = block.mobile[-1] if block.mobile[-1].kind == "conv" else block.mobile[-2]  # before a shuffle
        assert (last.cout, last.out_hw) == (block.cout, block.out_hw), block.path
        return block.cout, block.out_hw
    if block.kind == "mf_merge":
        return block.out, (1, 1)
    return block.classes, (1, 1)


# Every pass has work to do here: stage defaults, a repeated row under a depth multiplier, a
# width multiplier with a `fixed` block, and a resolution multiplier.
PASS_SPEC = """\
network t {
  input 64x48x3
  rho 0.5
  width 0.5
  depth 1.5
  output_stride 2
  defaults {
    act hard_swish
  }
  stem conv k3 s2 c32
  stage a {
    defaults {
      act relu
    }
    ib k3 s2 e4 c48 x2
  }
  stage b {
    conv k1 c40 fixed
  }
  head {
    pool avg
    classifier
  }
}
"""


def _check_pure(step, spec):  # type: ignore[no-untyped-def]
    """`step(spec)`, checking that `spec` is left exactly as it was: compared with a deep copy by
    `==`, which also compares what dumps leave out (spans, option spans); and that an equal input
    gives an equal output (no state kept between calls)."""
    snapshot = copy.deepcopy(spec)
    out = step(spec)
    assert spec == snapshot and spec.model_dump() == snapshot.model_dump()
    assert step(snapshot) == out
    return out


def test_each_pass_does_its_work_once_and_leaves_its_input_alone():
    """Catches: a pass that changes its input in place where a dump does not look (option spans),
    one that keeps state between calls, and a pass that runs twice (without the `applied` guard
    width and depth scale again); replaces purity asserts a frozen model made vacuous."""
    spec = lower(load_text(PASS_SPEC, "t.arch"))
    expected = {  # hand-derived from docs/language.md: what the spec looks like after each pass
        "apply_defaults": lambda s: [b.act for b in s.stages[0].blocks + s.stages[1].blocks + s.stem.blocks]
        == ["relu", "hard_swish", "hard_swish"],
        # ceil(2 x 1.5) = 3 copies, only the first keeps stride 2; ceil(1 x 1.5) = 2
        "expand_repeats": lambda s: [b.stride for b in s.stages[0].blocks] == [2, 1, 1] and len(s.stages[1].blocks) == 2,
        # past the stem's stride 2, the ib's stride becomes a dilation for the blocks after it
        "output_stride": lambda s: [(b.stride, b.dilation) for b in s.stages[0].blocks] == [(1, 1), (1, 2), (1, 2)]
        and s.stages[1].blocks[0].dilation == 2 and s.stem.blocks[0].stride == 2,
        # no drop_path default: every block without its own rate gets 0, the classifier no dropout
        "stochastic_depth": lambda s: {b.drop_path for st in (s.stem, *s.stages, s.head) for b in st.blocks} == {0.0}
        and s.head.blocks[-1].dropout == 0.0,
        # 64x48 x 0.5; channels make_divisible(c x 0.5): 32 -> 16, 48 -> 24; `fixed` keeps 40
        "scale_width": lambda s: (s.input_hw, s.rho, s.stem.blocks[0].out, s.stages[0].blocks[0].out,
                                  s.stages[1].blocks[0].out) == ((32, 24), 1.0, 16, 24, 40),
    }  # fmt: skip
    for step in PIPELINE:
        out = _check_pure(step, spec)
        name = step.__name__
        assert out.applied == (*spec.applied, name) and expected[name](out), name
        assert _check_pure(step, out) == out  # running a pass twice changes nothing
        _check_spec(out, out.applied)
        spec = out
    net = resolve(lower(load_text(PASS_SPEC, "t.arch")))
    assert [b.kind for b in net.blocks()] == ["conv", "uib", "uib", "uib", "conv", "conv", "pool", "classifier"]
    assert net.input_shape == (3, 32, 24) and net.stages[0].blocks[0].project.out_hw == (16, 12)
    check_network(net)


def test_the_purity_check_sees_what_a_dump_leaves_out():
    """The purity check above can fail: it sees an in-place change that `model_dump()` misses."""
    spec = lower(load_text(PASS_SPEC, "t.arch"))
    assert spec.stem.blocks[0].option_spans  # the check below has something to see

    def forgets_spans(s):  # type: ignore[no-untyped-def]
        s.stem.blocks[0].option_spans.clear()  # an in-place change frozen models do not prevent
        return s

    with pytest.raises(AssertionError):
        _check_pure(forgets_spans, spec)


@pytest.mark.parametrize("name", ["mnv4_conv_s", "mnv3_large", "efficientnet_lite0"])
def test_passes_leave_their_input_alone_and_keep_invariants(name):
    spec = _spec(name)
    for step in PIPELINE:
        spec = _check_pure(step, spec)
        _check_spec(spec, spec.applied)
    first, second = resolve(_spec(name)), resolve(_spec(name))
    assert first.model_dump() == second.model_dump()  # deterministic
    check_network(first)


@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_every_spec_resolves_to_a_consistent_network(path):
    check_network(resolve(_spec(path.stem)))


def test_stage_defaults_override_network_defaults_and_blocks_override_both():
    net = compile_text(
        """network t {
  input 32x32x3
  defaults {
    act hard_swish
    norm batchnorm eps=1e-3
  }
  stem conv k3 s2 c16
  stage a {
    defaults {
      act relu
    }
    conv k3 c16
    conv k3 c16 act=gelu eps=1e-5
  }
  head {
    pool avg
    classifier
  }
}
"""
    )
    stem, a0, a1 = net.stem.blocks[0], *net.stages[0].blocks
    assert (stem.act, stem.norm.eps) == ("hard_swish", 1e-3)
    assert (a0.act, a0.norm.eps) == ("relu", 1e-3)
    assert (a1.act, a1.norm.eps) == ("gelu", 1e-5)


def test_only_the_first_copy_of_a_repeated_row_keeps_its_stride():
    net = compile_text(
        "network t {\n  input 32x32x3\n  stem conv k3 c8\n  stage a {\n    ib k3 s2 e2 c8 x3\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"
    )
    strides = [b.dw_mid.stride for b in net.stages[0].blocks]
    assert strides == [2, 1, 1]
    assert [b.residual for b in net.stages[0].blocks] == [False, True, True]


@pytest.mark.parametrize(
    "size, padding, expected_pad, out",
    [(224, "symmetric", (1, 1, 1, 1), 112), (224, "same", (0, 1, 0, 1), 112), (7, "same", (1, 1, 1, 1), 4),
     (7, "symmetric", (1, 1, 1, 1), 4)],
)  # fmt: skip
def test_padding_is_explicit_and_tf_same_differs_only_where_it_should(size, padding, expected_pad, out):
    net = compile_text(
        f"network t {{\n  input {size}x{size}x3\n  defaults {{\n    padding {padding}\n  }}\n  stem conv k3 s2 c8\n"
        "  stage a {\n    conv k1 c8\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"
    )
    stem = net.stem.blocks[0]
    assert stem.padding == expected_pad and stem.out_hw == (out, out)


def test_a_template_use_repeats_as_a_unit_and_scales_with_depth_as_one_row():
    text = """block pair(c, s=1) {
  ib k3 s=s e2 c=c
  ib k3 e2 c=c
}

network t {
  input 32x32x3
  depth 1.5
  stem conv k3 c8
  stage a {
    pair c=16 s=2 x2
  }
  head {
    pool avg
    classifier
  }
}
"""
    blocks = compile_text(text).stages[0].blocks
    assert len(blocks) == 6  # ceil(2 x 1.5) = 3 copies of the pair
    assert [b.dw_mid.stride for b in blocks] == [2, 1, 1, 1, 1, 1]
    assert [b.project.out_hw for b in blocks][-1] == (16, 16)


def test_norm_settings_inherit_field_by_field():
    net = compile_text(
        """network t {
  input 32x32x3
  defaults {
    norm batchnorm eps=1e-3 momentum=0.01
  }
  stem conv k3 c8
  stage a {
    defaults {
      norm none
    }
    conv k3 c8
    conv k3 c8 norm=batchnorm
    conv k3 c8 eps=1e-4
  }
  stage b {
    defaults {
      norm batchnorm eps=1e-5
    }
    conv k3 c8
  }
  head {
    pool avg
    classifier
  }
}
"""
    )
    a0, a1, a2 = net.stages[0].blocks
    (b0,) = net.stages[1].blocks
    assert a0.norm is None
    assert (a1.norm.eps, a1.norm.momentum) == (1e-3, 0.01)  # back on, with the network's settings
    assert (a2.norm.eps, a2.norm.momentum) == (1e-4, 0.01)
    assert (b0.norm.eps, b0.norm.momentum) == (1e-5, 0.01)  # the stage's eps keeps the network's momentum


def test_se_defaults_merge_field_by_field():
    net = compile_text(
        """network t {
  input 32x32x3
  defaults {
    se base=in divisor=4 act=swish gate=sigmoid
  }
  stem conv k3 c16
  stage a {
    defaults {
      se gate=hard_sigmoid
    }
    ib k3 e4 c16 se0.25
  }
  head {
    pool avg
    classifier
  }
}
"""
    )
    se = net.stages[0].blocks[0].se
    assert (se.reduced, se.act, se.gate) == (4, "swish", "hard_sigmoid")  # base in: 16 x 0.25, divisor 4


def test_a_nested_template_use_repeats_as_a_unit_inside_its_template():
    text = """block pair(c, s=1) {
  ib k3 s=s e2 c=c
  ib k5 e2 c=c
}

block quad(c, s=1) {
  pair c=c s=s x2
  conv k1 c=c
}

network t {
  input 32x32x3
  stem conv k3 c8
  stage a {
    quad c=24 s=2
  }
  head {
    pool avg
    classifier
  }
}
"""
    blocks = compile_text(text).stages[0].blocks
    kinds = [(b.kind, b.dw_mid.kernel if b.kind == "uib" else 1) for b in blocks]
    assert kinds == [("uib", 3), ("uib", 5), ("uib", 3), ("uib", 5), ("conv", 1)]
    assert [b.dw_mid.stride for b in blocks[:4]] == [2, 1, 1, 1]


def test_an_se_may_use_identity_functions():
    net = compile_text(
        "network t {\n  input 32x32x3\n  defaults {\n    se act=identity gate=identity\n  }\n  stem conv k3 c8\n"
        "  stage a {\n    ib k3 e2 c8 se0.25\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"
    )
    se = net.stages[0].blocks[0].se
    assert (se.act, se.gate) == ("identity", "identity")


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
@pytest.mark.parametrize("path", CONCRETE_SPECS, ids=lambda p: p.stem)
def test_the_compiler_builds_without_validation_exactly_the_ir_validation_builds(path, deploy, monkeypatch):
    monkeypatch.setattr(ir, "_VALIDATE", False)
    trusted = compile_file(path, deploy=deploy)
    monkeypatch.setattr(ir, "_VALIDATE", True)
    validated = compile_file(path, deploy=deploy)
    assert trusted == validated  # same types, and tuples where the schema says tuples
    dump = trusted.model_dump()
    assert Network.model_validate(dump).model_dump() == dump


def test_mobileone_branches_follow_the_reference_rules():
    net = compile_text(
        "network n {\n  input 32x32x3\n  classes 10\n  stem mobileone k3 s2 c16\n  stage a {\n"
        "    mobileone k3 dw branches=3\n    mobileone k3 s2 dw\n    mobileone k1 c16 branches=2\n"
        "    mobileone k1 c24\n    mobileone k3 dw noskip\n  }\n  head {\n    pool avg; classifier\n  }\n}\n"
    )
    stem, (same, down, pw, wider, noskip) = net.stem.blocks[0], net.stages[0].blocks
    assert len(stem.branches) == 1 and stem.scale is not None and stem.identity is None  # 3 -> 16 channels
    assert [b.path for b in same.branches] == [f"stages.0.blocks.0.conv_kxk.{i}" for i in range(3)]
    assert same.scale.kernel == 1 and same.scale.groups == 16 and same.identity is not None
    assert same.first.cout == 16 and same.first.groups == 16  # `dw` without `c` keeps its input channels
    assert down.identity is None and down.scale.stride == 2  # stride 2: no identity branch
    assert pw.scale is None and pw.identity is not None and len(pw.branches) == 2  # k1: no scale branch
    assert wider.identity is None  # 16 -> 24 channels
    assert noskip.identity is None and noskip.scale is not None
    assert all(b.act == "relu" for b in (stem, same, down, pw, wider, noskip))


def test_shufflenet_v1_units_follow_the_paper():
    net = compile_text(
        "network n {\n  input 32x32x3\n  classes 10\n  stem conv k3 s2 c24\n  stage a {\n"
        "    shuffle_v1 g3 s2 c240 reduce_groups=1\n    shuffle_v1 g3 c240\n  }\n"
        "  head {\n    pool avg; classifier\n  }\n}\n"
    )
    down, keep = net.stages[0].blocks
    assert (down.reduce.cin, down.reduce.cout, down.reduce.groups) == (24, 60, 1)  # mid = c / 4, ungrouped
    assert (down.dw.groups, down.dw.stride, down.expand.groups, down.expand.cout) == (60, 2, 3, 216)  # 240 - 24
    assert down.shortcut.include_pad and (down.shortcut.kernel, down.shortcut.stride) == (3, 2)
    assert (keep.reduce.groups, keep.expand.cout, keep.shortcut) == (3, 240, None)


SCHEDULED = """\
network n {
  input 32x32x3
  classes 10
  defaults {
    drop_path 0.2 linear
    dropout 0.3
  }
  stem conv k3 s2 c16
  stage a {
    ib k3 e4 c16 x2
    ds k3 c16 drop_path=0.05
  }
  stage b {
    ib k3 s2 e4 c24
    ib k3 e4 c24 x2
  }
  head {
    pool avg
    classifier
  }
}
"""


def test_a_linear_drop_path_schedule_is_timms_and_a_block_option_overrides_it():
    net = compile_text(SCHEDULED)
    rates = [getattr(b, "drop_path", None) for s in net.stages for b in s.blocks]
    n = len(rates)
    expected = [0.2 * i / n for i in range(n)]
    expected[2] = 0.05  # the ds block's own option
    assert rates == pytest.approx(expected) and n == 6
    assert net.head.blocks[-1].dropout == 0.3 and not hasattr(net.stem.blocks[0], "drop_path")
    uniform = compile_text(
        SCHEDULED.replace("drop_path 0.2 linear", "drop_path 0.1").replace("dropout 0.3", "dropout 0.1")
    )
    assert [b.drop_path for s in uniform.stages for b in s.blocks] == pytest.approx([0.1, 0.1, 0.05, 0.1, 0.1, 0.1])
    from archdsl.codegen.registry import get_backend

    rate = repr(expected[4])  # the fifth block: residual (stride 1), scheduled
    assert f"drop_path={rate}" in get_backend("torch").emit(net)
    assert f'DropPath({rate}, name="stages-1-blocks-1-drop_path")' in get_backend("keras").emit(net)
    plain = compile_text(SCHEDULED.replace("    drop_path 0.2 linear\n", "").replace("    dropout 0.3\n", ""))
    assert {b.drop_path for s in plain.stages for b in s.blocks} == {0.0, 0.05} and plain.head.blocks[-1].dropout == 0.0


@pytest.mark.parametrize(
    ("line", "message"),
    [("drop_path 0.2 cosine", "default 'drop_path' takes one value"), ("drop_path 1.5", "drop_path rate must be")],
)
def test_a_bad_drop_path_default_is_a_located_error(line: str, message: str):
    with pytest.raises(ArchError) as caught:
        compile_text(SCHEDULED.replace("drop_path 0.2 linear", line), "n.arch")
    assert message in caught.value.message and caught.value.span is not None and caught.value.span.line == 5
