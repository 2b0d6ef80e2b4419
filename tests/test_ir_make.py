"""`Node.make` without validation (what the compiler runs; the suite itself validates every node,
ARCHDSL_VALIDATE_IR=1): the same IR as pydantic's validated construction, field for field, and
the same refusals of a missing or unknown field."""

from __future__ import annotations

import pytest

from archdsl.compiler import compile_file
from archdsl.ir import nodes
from archdsl.ir.nodes import ConvBnAct, Norm, SEConfig
from conftest import ROOT


@pytest.mark.parametrize(
    "spec",
    ["mnv4_hybrid_m", "mobileone_s0", "ghostnet_100", "shufflenet_v1_g3", "ssdlite320_mnv3_large", "lraspp_mnv3_large"],
)
def test_the_unvalidated_ir_is_the_validated_ir(spec, monkeypatch):
    path = ROOT / "specs" / f"{spec}.arch"
    validated = compile_file(path, deploy=True)
    monkeypatch.setattr(nodes, "_VALIDATE", False)
    fast = compile_file(path, deploy=True)
    assert fast.model_dump() == validated.model_dump() and fast == validated
    assert fast.model_fields_set == validated.model_fields_set


def test_make_fills_defaults_and_refuses_what_validation_refuses(monkeypatch):
    monkeypatch.setattr(nodes, "_VALIDATE", False)
    norm = Norm.make(eps=1e-3)
    assert (norm.kind, norm.eps, norm.momentum, norm.model_fields_set) == ("batchnorm", 1e-3, 0.1, {"eps"})
    assert SEConfig.make() == SEConfig()
    with pytest.raises(TypeError, match="has no field 'epsilon'"):
        Norm.make(epsilon=1e-3)
    with pytest.raises(TypeError, match="ConvBnAct needs 'cin'"):
        ConvBnAct.make(path="x", cout=8, kernel=3)
