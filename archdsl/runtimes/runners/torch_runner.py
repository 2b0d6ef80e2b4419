"""Run generated PyTorch code in eval mode, collecting each block's output with forward hooks."""

from __future__ import annotations

import numpy as np

from ...ir.network import Network
from . import Outputs, block_paths, load_module


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    import torch

    module = load_module(code, f"archdsl_torch_{net.name}")
    model = module.load_weights(module.build_model(), weights).eval()
    outputs: Outputs = {}
    handles = []
    for path in block_paths(net):

        def keep(_module, _inputs, output, path=path):
            outputs[path] = output.detach().numpy().copy()

        handles.append(model.get_submodule(path).register_forward_hook(keep))
    with torch.no_grad():
        model(torch.from_numpy(x))
    for h in handles:
        h.remove()
    return outputs
