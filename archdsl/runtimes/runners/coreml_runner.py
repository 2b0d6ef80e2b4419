"""Run generated CoreML code: the MIL program op by op with archdsl's reference kernels (every
block's output), and on macOS also the converted ML Program through CoreML's own `predict`,
whose logits then replace the evaluator's."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from ...ir.network import Network
from ..mil_eval import run_program
from . import Outputs, feature_key, load_module, model_outputs, tensor_outputs


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    with warnings.catch_warnings():  # coremltools leaves a temporary directory to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        module = load_module(code, f"archdsl_coreml_{net.name}")
        values = run_program(module.build_program(weights), {"image": x})
        names = [n for n, _ in net.outputs()]  # the program's outputs
        outputs = {p: values[p] for p in tensor_outputs(net)}
        if sys.platform == "darwin":
            values |= module.convert(weights).predict({"image": x})
        outputs |= {key: np.asarray(values[n]) for key, n in zip(model_outputs(net), names, strict=True)}
        if net.endpoints:  # the backbone, built on its own: one output per endpoint
            found = run_program(module.build_program(weights, features_only=True), {"image": x})
            if sys.platform == "darwin":
                found |= module.convert(weights, features_only=True).predict({"image": x})
            outputs |= {feature_key(e.name): np.asarray(found[e.name]) for e in net.endpoints}
    return outputs
