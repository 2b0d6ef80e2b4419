"""The block registry: every kind declared in one module, reachable from the language, handled by
every stage, and the only place that dispatches on block kinds."""

from __future__ import annotations

import ast
import typing

import pytest
import torch

from archdsl.analysis.cost import network_cost
from archdsl.analysis.layers import layers_of, network_tensors
from archdsl.blocks import KINDS, WORDS, kind_of
from archdsl.blocks.kind import NEEDS
from archdsl.codegen.functional import steps
from archdsl.codegen.registry import get_backend
from archdsl.codegen.steps import BlockOutput
from archdsl.compiler import compile_text
from archdsl.ir.network import Stage
from archdsl.language.vocabulary import FLAGS, KWARGS
from archdsl.resources import template_dir
from archdsl.runtimes.runners import load_module
from conftest import ROOT

# One statement per word of the language; a new kind adds its own here.
EXAMPLES = {
    "conv": "conv k3 c16",
    "ds": "ds k3 c16 se0.25",
    "dsa": "dsa k3 c16",
    "uib": "uib k3/5/3 e2 c16 layer_scale=1e-5",
    "ib": "ib k3 e3 c16 se0.25",
    "extra_dw": "extra_dw k3/5 e2 c16",
    "convnext": "convnext k5 e2 c16",
    "ffn": "ffn e2 c16",
    "fused_ib": "fused_ib k3 e4 c16",
    "mobileone": "mobileone k3 c16 branches=2 se0.25",
    "mqa": "mqa h2 d8 v2 c16",
    "mhsa": "mhsa h2 d8 c16",
    "ghost": "ghost k3 e2 c16 se0.25 s2",
    "shuffle_v2": "shuffle_v2 s2 c16",
    "shuffle_v1": "shuffle_v1 g2 s2 c24",
    "pool": "pool max k3 s2",
    "classifier": None,  # the head's last block in every example
    "ssdlite": None,  # dense heads: HEADS
    "lraspp": None,
    "tokens": None,  # Mobile-Former's words: MOBILE_FORMER
    "mf": None,
    "mf_down": None,
    "mf_merge": None,
}
# Mobile-Former's words, each in a network of a map and its tokens: (stem, stage, head) statements.
MOBILE_FORMER = {
    "tokens": ("conv k3 s2 c8", "tokens count=2 dim=8", "mf_merge e2 c16"),
    "mf": ("conv k3 s2 c8; tokens count=2 dim=8", "mf k3 e2 c8 g=2", "mf_merge e2 c16"),
    "mf_down": ("conv k3 s2 c8; tokens count=2 dim=8", "mf_down k3 s2 e2 c16 e_dw2=2 g=2", "mf_merge e2 c16"),
    "mf_merge": ("conv k3 s2 c8; tokens count=2 dim=8", "mf_down k3 e2 c8 e_dw2=0", "mf_merge e2 c16 g=2"),
}
# The dense-prediction heads, on a network with two endpoints.
HEADS = {"ssdlite": "ssdlite anchors=2 k5", "lraspp": "lraspp c8"}


def _network(statement: str) -> str:
    return f"""network one {{
  input 16x16x3
  classes 10
  stem {{ conv k3 s2 c8 }}
  stage s {{ {statement} }}
  head {{ pool avg; classifier dropout=0.1 }}
}}
"""


def test_every_word_has_an_example():
    assert set(EXAMPLES) == set(WORDS)


def test_every_kind_declares_a_consistent_entry():
    for name, kind in KINDS.items():
        assert kind.node.model_fields["kind"].default == name
        assert kind.words or kind.built_by, name
        for word, option in kind.built_by:  # another kind's word builds it, given `option`
            assert option in WORDS[word][1].options, (name, word, option)
        assert (template_dir() / "torch" / kind.torch.template).is_file(), kind.torch.template
        for word in kind.words.values():
            assert word.options <= set(KWARGS) | set(FLAGS), sorted(word.options - set(KWARGS) - set(FLAGS))
            assert set(word.needs) <= set(NEEDS)
    # a stage's blocks validate (and dump) as the union of exactly the registered kinds' nodes
    (union, _discriminator) = typing.get_args(typing.get_args(Stage.model_fields["blocks"].annotation)[0])
    assert set(typing.get_args(union)) == {kind.node for kind in KINDS.values()}


@pytest.mark.parametrize("word", [w for w, s in EXAMPLES.items() if s is not None])
def test_every_word_compiles_through_every_stage(word):
    net = compile_text(_network(EXAMPLES[word]))
    block = net.stages[0].blocks[0]
    kind, _ = WORDS[word]
    assert kind_of(block) is kind and getattr(block, "variant", word) == word
    assert list(layers_of(block)), word
    assert steps(block)[-1] == BlockOutput(block.path)
    cost = network_cost(net)
    for backend in ("torch", "keras", "coreml", "onnx"):
        code = get_backend(backend).emit(net)
        assert block.path in code, (backend, word)
    model = load_module(get_backend("torch").emit(net), f"registry_{word}").build_model()
    assert sum(p.numel() for p in model.parameters()) == cost.params
    state = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert state == [t.key for t in network_tensors(net)]  # the canonical inventory, in registration order
    assert model.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 10)


@pytest.mark.parametrize("word", sorted(HEADS))
def test_every_dense_head_compiles_through_every_stage(word):
    text = _network("ib k3 e2 c16 out; ib k3 s2 e2 c24 out").replace("head { pool avg; classifier dropout=0.1 }",
                                                                     f"head {HEADS[word]}")  # fmt: skip
    net = compile_text(text)
    block = net.head.blocks[0]
    assert kind_of(block) is WORDS[word][0] and net.dense_head is block
    for backend in ("torch", "keras", "coreml", "onnx"):
        assert all(name in get_backend(backend).emit(net) for name, _ in net.outputs())
    model = load_module(get_backend("torch").emit(net), f"registry_{word}").build_model().eval()
    assert sum(p.numel() for p in model.parameters()) == network_cost(net).params
    state = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert state == [t.key for t in network_tensors(net)]  # the canonical inventory, in registration order
    out = model(torch.zeros(1, 3, 16, 16))
    named = out if isinstance(out, dict) else {net.outputs()[0][0]: out}
    assert {k: tuple(v.shape) for k, v in named.items()} == {name: (1, *shape) for name, shape in net.outputs()}


@pytest.mark.parametrize("word", sorted(MOBILE_FORMER))
def test_every_mobile_former_word_compiles_through_every_stage(word):
    stem, stage, head = MOBILE_FORMER[word]
    net = compile_text(_network(stage).replace("conv k3 s2 c8", stem).replace("pool avg", head))
    block = next(b for b in net.blocks() if getattr(b, "variant", b.kind) == word or b.kind == word)
    assert kind_of(block) is WORDS[word][0]
    assert list(layers_of(block)) and steps(block)[-1] == BlockOutput(block.path)
    for backend in ("torch", "keras", "coreml", "onnx"):
        assert block.path in get_backend(backend).emit(net), (backend, word)
    model = load_module(get_backend("torch").emit(net), f"registry_{word}").build_model()
    assert sum(p.numel() for p in model.parameters()) == network_cost(net).params
    state = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert state == [t.key for t in network_tensors(net)]  # the canonical inventory, in registration order
    assert model.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 10)


def _block_classes() -> set[str]:
    """The node classes the kinds' modules define."""
    names = set()
    for path in (ROOT / "archdsl" / "blocks").glob("*.py"):
        names |= {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}
    return names - {"Word", "TorchPiece", "TimmPlace", "BlockKind", "CannotMerge", "Builder"}


def _dispatch(tree: ast.AST, classes: set[str]) -> list[str]:
    """isinstance checks against block node classes, and comparisons of a `kind` with a string."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            found += [f"isinstance {c}" for c in named & classes]
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            text = any(isinstance(s, (ast.Tuple, ast.Set)) or isinstance(getattr(s, "value", None), str) for s in sides)
            if kind and text:
                found.append(f"kind comparison at line {node.lineno}")
    return found


def test_no_block_kind_dispatch_outside_the_registry():
    classes = _block_classes()
    assert {"DepthwiseSeparable", "MobileOneBlock", "GhostBottleneck", "Classifier"} <= classes
    offenders = {}
    for path in (ROOT / "archdsl").rglob("*.py"):
        if "blocks" in path.relative_to(ROOT / "archdsl").parts:
            continue
        found = _dispatch(ast.parse(path.read_text()), classes)
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_the_dispatch_scan_finds_what_it_looks_for():
    classes = {"GhostBottleneck"}
    code = "if isinstance(b, (GhostBottleneck, int)):\n    pass\nif b.kind == 'ghost':\n    pass\n"
    assert _dispatch(ast.parse(code), classes) == ["isinstance GhostBottleneck", "kind comparison at line 3"]
    assert _dispatch(ast.parse("if isinstance(b, int) and b.kind is None: pass"), classes) == []


def test_block_modules_stay_small():
    """One job per module: each kind's module within the layout's soft cap."""
    for path in (ROOT / "archdsl" / "blocks").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


@pytest.mark.parametrize(
    ("kernels", "variant"),
    [("3/5/0", "extra_dw"), ("0/3/0", "ib"), ("3/0/0", "convnext"), ("0/0/0", "ffn"), ("3/3/3", "uib")],
)
def test_a_generic_uib_is_named_by_the_depthwise_convs_it_has(kernels: str, variant: str):
    """MobileNetV4's names for UIB's instantiations, from which of the start, middle and end
    depthwise convs a `uib k<start>/<mid>/<end>` has (0: absent); the cost report shows them."""
    from archdsl.analysis.report import cost_table
    from conftest import small_net

    net = compile_text(small_net(f"uib k{kernels} e4 c16"))
    block = net.stages[0].blocks[-1]  # after the small net's own ib
    assert block.variant == variant
    row = next(line for line in cost_table(net).splitlines() if line.strip().startswith(block.path))
    assert row.split()[1] == variant
