"""Run generated ONNX code: build the model, expose every block's output (the `Identity` named
by the block's path) as a graph output, and run it with ONNX Runtime on CPU."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...ir.network import Network
from . import Outputs, feature_key, load_module, model_outputs, tensor_outputs


def session(model, extra: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """An ONNX Runtime session of `model` that also gives the values `extra` (CPU, 2 threads:
    results do not depend on the machine's core count)."""
    import onnx
    import onnxruntime as ort

    given = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in extra if n not in given)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3  # its warnings on unused initializers are not ours to show
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    module = load_module(code, f"archdsl_onnx_{net.name}")
    names = [n for n, _ in net.outputs()]  # the model's outputs
    blocks = tensor_outputs(net)
    values = session(module.build_model(weights), blocks).run([*blocks, *names], {"image": x})
    outputs = dict(zip(blocks, values[: len(blocks)], strict=True))
    outputs |= dict(zip(model_outputs(net), values[len(blocks) :], strict=True))
    if net.endpoints:  # the backbone, built on its own: one output per endpoint
        found = session(module.build_model(weights, features_only=True)).run(None, {"image": x})
        outputs |= {feature_key(e.name): v for e, v in zip(net.endpoints, found, strict=True)}
    return outputs
