"""Run generated PyTorch code: inference in eval mode, or one training step; each block's output
is collected with forward hooks."""

from __future__ import annotations

import numpy as np

from ...ir.network import Network
from . import Outputs, StepResult, feature_key, load_module, output_key, second_key, tensor_blocks


def _hooked(model, net: Network) -> tuple[Outputs, list]:  # type: ignore[no-untyped-def]
    """Forward hooks that keep each block's output (detached), and their handles."""
    outputs: Outputs = {}
    handles = []
    blocks = {b.path: b for b in net.blocks()}
    for path in tensor_blocks(net):
        second = second_key(blocks[path])

        def keep(_module, _inputs, output, path=path, second=second):
            if isinstance(output, tuple):  # a pair: an octave pair's low part, or a map's tokens
                output, other = output
                outputs[second] = other.detach().numpy().copy()
            outputs[path] = output.detach().numpy().copy()

        handles.append(model.get_submodule(path).register_forward_hook(keep))
    return outputs, handles


def run(code: str, net: Network, weights: str, x: np.ndarray, dtype: str = "float32") -> Outputs:
    import torch

    module = load_module(code, f"archdsl_torch_{net.name}")
    model = module.load_weights(module.build_model(), weights).eval().to(getattr(torch, dtype))
    outputs, handles = _hooked(model, net)
    with torch.no_grad():
        y = model(torch.from_numpy(x.astype(dtype)))
    for h in handles:
        h.remove()
    if net.dense_head is not None:  # its outputs: a dict by name, or the one tensor
        found = y if isinstance(y, dict) else {net.outputs()[0][0]: y}
        outputs |= {output_key(name): t.numpy() for name, t in found.items()}
    if net.endpoints:  # the backbone, built on its own
        backbone = module.load_weights(module.build_model(features_only=True), weights).eval().to(getattr(torch, dtype))
        with torch.no_grad():
            found = backbone(torch.from_numpy(x.astype(dtype)))
        outputs |= {feature_key(e.name): y.numpy() for e, y in zip(net.endpoints, found, strict=True)}
    return outputs


def train_step(code: str, net: Network, weights: str, x: np.ndarray, labels: np.ndarray, lr: float,
               dtype: str) -> StepResult:  # fmt: skip
    """In `dtype`: model.train(), cross-entropy on `labels`, backward, one torch.optim.SGD step
    (no momentum, no weight decay)."""
    import torch

    module = load_module(code, f"archdsl_torch_{net.name}")
    model = module.load_weights(module.build_model(), weights).to(getattr(torch, dtype)).train()
    outputs, handles = _hooked(model, net)
    logits = model(torch.from_numpy(x.astype(dtype)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    for h in handles:
        h.remove()
    gradients = {k: p.grad.numpy().copy() for k, p in model.named_parameters() if p.grad is not None}
    torch.optim.SGD(model.parameters(), lr=lr).step()
    after = {k: v.numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return StepResult(loss.item(), outputs, gradients, after)
