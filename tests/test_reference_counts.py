"""Every spec reproduces its reference network: params and MACs equal the reference figures (in
both forms where the deploy form is the reference's too), and the cost report equals what
PyTorch counts on the generated model."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archdsl.analysis.cost import network_cost
from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from conftest import REFERENCE, REFERENCE_DEPLOY, SPECS, import_code


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_cost_model_equals_reference(spec):
    _, params, macs, size = REFERENCE[spec]
    net = compile_file(SPECS / f"{spec}.arch")
    cost = network_cost(net)
    assert net.input_shape == (3, size, size)
    assert (cost.params, cost.macs) == (params, macs)


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_generated_torch_counts_equal_cost_report(spec, torch_module):
    net, module = torch_module(SPECS / f"{spec}.arch", spec)
    model = module.build_model().eval()
    cost = network_cost(net)
    assert sum(p.numel() for p in model.parameters()) == cost.params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, *net.input_shape))
    named = out if isinstance(out, dict) else {name: out for name, _ in net.outputs()}  # a dict: a dense head's
    assert {k: tuple(v.shape) for k, v in named.items()} == {name: (1, *shape) for name, shape in net.outputs()}
    assert counter.get_total_flops() == 2 * cost.macs


@pytest.mark.parametrize("spec", sorted(REFERENCE_DEPLOY))
def test_deploy_form_equals_reference_and_what_torch_counts(spec, tmp_path):
    net = compile_file(SPECS / f"{spec}.arch", deploy=True)
    cost = network_cost(net)
    assert (cost.params, cost.macs) == REFERENCE_DEPLOY[spec]
    model = import_code(get_backend("torch").emit(net), f"{spec}_deploy", tmp_path).build_model().eval()
    assert sum(p.numel() for p in model.parameters()) == cost.params
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *net.input_shape))
    assert counter.get_total_flops() == 2 * cost.macs
