"""Errors are not swallowed: verify fails when a backend lacks an output, the cost report maps
only "branches cannot merge" to "no deploy form", and exports and runners silence one warning
category (coremltools' garbage-collected temporary directory), never every warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from archdsl.compiler import compile_text
from archdsl.errors import ArchError
from archdsl.runtimes.verify import compare, report_text
from conftest import small_net

A = {"stem.0": np.ones((1, 16, 16, 16), np.float32), "logits": np.arange(10, dtype=np.float32)[None]}


def test_a_backend_that_lacks_a_block_output_fails_verify():
    other = {"logits": A["logits"].copy()}  # the stem's output is missing
    report = compare("torch", A, "keras", other, 1e-4)
    assert not report.ok and report.unmatched == ("keras has no output stem.0",)
    reverse = compare("keras", other, "torch", A, 1e-4)
    assert not reverse.ok and reverse.unmatched == ("keras has no output stem.0",)
    net = compile_text(small_net(), "n.arch")
    assert "UNMATCHED torch vs keras: keras has no output stem.0" in report_text(net, [report], 1e-4, None, 0)
    assert "all backends agree" not in report_text(net, [report], 1e-4, None, 0)


def test_outputs_of_different_shapes_fail_verify_instead_of_broadcasting():
    other = {"stem.0": np.ones((1, 16, 1, 16), np.float32), "logits": A["logits"].copy()}
    report = compare("torch", A, "keras", other, 1e-4)
    assert not report.ok and report.unmatched == ("stem.0: torch (1, 16, 16, 16), keras (1, 16, 1, 16)",)


def test_nothing_in_common_is_a_failure_not_a_crash():
    report = compare("torch", A, "keras", {}, 1e-4)
    assert not report.ok and "no common output" in report.unmatched


def test_the_cost_report_maps_only_unmergeable_branches_to_no_deploy_form(monkeypatch):
    from archdsl.analysis import report

    net = compile_text(small_net(), "n.arch")

    def broken(net):  # type: ignore[no-untyped-def]
        raise ArchError("a bug in folding, not a network without a deploy form")

    monkeypatch.setattr(report, "deploy_form", broken)
    with pytest.raises(ArchError, match="a bug in folding"):
        report.cost_table(net)
    with pytest.raises(ArchError, match="a bug in folding"):
        report.cost_json(net)
    # (a network whose branches cannot merge still reports "deploy form: none": tests/test_deploy.py)


def test_the_coreml_runner_lets_other_warnings_through(monkeypatch):
    """The runner used to ignore every warning while it ran generated code."""
    from archdsl.runtimes.runners import coreml_runner

    def warn_and_fail(code, name):  # type: ignore[no-untyped-def]
        warnings.warn("a real problem in the generated program", UserWarning, stacklevel=1)
        raise RuntimeError("stop here")

    monkeypatch.setattr(coreml_runner, "load_module", warn_and_fail)
    net = compile_text(small_net(), "n.arch")
    with pytest.warns(UserWarning, match="a real problem"), pytest.raises(RuntimeError):
        coreml_runner.run("", net, "w.safetensors", np.zeros((1, 3, 32, 32), np.float32))


def test_export_lets_other_warnings_through(monkeypatch, tmp_path):
    from archdsl.runtimes import export as export_module

    def warn_and_fail(code, name):  # type: ignore[no-untyped-def]
        warnings.warn("a real problem in the conversion", UserWarning, stacklevel=1)
        raise RuntimeError("stop here")

    monkeypatch.setattr(export_module, "load_module", warn_and_fail)
    monkeypatch.setattr(export_module, "runner", lambda name: None)
    net = compile_text(small_net(), "n.arch")
    with pytest.warns(UserWarning, match="a real problem"), pytest.raises(RuntimeError):
        export_module.export(net, "coreml", "w.safetensors", tmp_path / "m.mlpackage")
