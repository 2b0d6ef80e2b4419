"""Backends as tables: every step type and every activation has an emitter in every backend, and
a step a backend does not know is an error, never a silent identity."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from archdsl.blocks import KINDS
from archdsl.codegen import coreml, keras, onnx, torch
from archdsl.codegen.registry import get_backend
from archdsl.codegen.steps import STEP_TYPES, BlockOutput, ShuffleStep
from archdsl.compiler import compile_file, compile_text
from archdsl.ir.nodes import ACTIVATIONS
from archdsl.runtimes.verify import verify
from conftest import SPECS, small_net


@pytest.mark.parametrize("backend", [keras, coreml, onnx])
def test_every_step_type_has_an_emitter(backend):
    assert set(backend.EMIT) == set(STEP_TYPES)


@pytest.mark.parametrize("table", [torch.ACT, keras.ACT])
def test_every_activation_has_a_spelling(table):
    assert set(table) == set(ACTIVATIONS)


@dataclass(frozen=True)
class _NewStep:
    path: str


@pytest.mark.parametrize("backend", ["keras", "coreml", "onnx"])
def test_an_unknown_step_is_an_error(backend, monkeypatch):
    conv = KINDS["conv"]
    monkeypatch.setitem(KINDS, "conv", replace(conv, steps=lambda c: [_NewStep(c.path), BlockOutput(c.path)]))
    net = compile_text(small_net())
    with pytest.raises(TypeError, match=f"the {backend} backend has no emitter for _NewStep"):
        get_backend(backend).emit(net)


@pytest.mark.parametrize(("name", "module"), [("keras", keras), ("coreml", coreml), ("onnx", onnx)])
def test_a_missing_shuffle_emitter_fails_shufflenet(name, module, monkeypatch):
    """Removing the shuffle step's emitter must not leave a ShuffleNet that compiles without it."""
    net = compile_file(SPECS / "shufflenet_v2_x1_0.arch")
    monkeypatch.delitem(module.EMIT, ShuffleStep)
    with pytest.raises(TypeError, match="ShuffleStep"):
        get_backend(name).emit(net)


def test_every_activation_computes_the_same_in_every_backend():
    """One conv per activation, and SE gates of each kind: torch, Keras and the CoreML program
    agree block by block (the formulas, not just the names, are covered)."""
    convs = "; ".join(f"conv k1 c8 act={a}" for a in ACTIVATIONS)
    text = f"""network acts {{
  input 6x6x3
  classes 4
  defaults {{
    se act=gelu_tanh gate=sigmoid
  }}
  stem {{ conv k3 c8 }}
  stage s {{ {convs}; ds k3 c8 se0.5 }}
  head {{ pool avg; classifier }}
}}
"""
    net = compile_text(text)
    reports = verify(net, ["torch", "keras", "coreml", "onnx"], None, seed=3, tolerance=1e-4)
    assert [r.ok for r in reports] == [True, True, True], [(r.other, r.first_divergence) for r in reports]
