"""`torch.compile(fullgraph=True)` captures every generated model whole, train and deploy forms:
no graph break anywhere (no data-dependent Python in `forward`), and the captured graph computes
what eager mode does. The eager backend keeps this fast; `benchmarks/latency.py` times inductor.
A graph break comes from a module's code, so the specs that cover every construct
(`covering_specs`) stand for all."""

from __future__ import annotations

import pytest
import torch

from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file
from archdsl.ir.deploy_form import deploy_form
from conftest import COVERING_SPECS, import_code


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
@pytest.mark.parametrize("path", COVERING_SPECS, ids=lambda p: p.stem)
def test_every_model_compiles_as_one_graph(path, deploy, tmp_path):
    net = compile_file(path, resolution=(64, 64))
    net = deploy_form(net) if deploy else net
    model = import_code(get_backend("torch").emit(net), f"{path.stem}_{deploy}", tmp_path).build_model().eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fullgraph: a graph break raises
    x = torch.randn(1, *net.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
