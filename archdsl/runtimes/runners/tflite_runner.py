"""Convert the generated Keras model to TensorFlow Lite (float32) and run it with the TFLite
interpreter on CPU: the deployment path the MobileNetV4 paper benchmarks. Only the logits
are compared (the converter fuses layers, so block outputs are not kept)."""

from __future__ import annotations

import warnings

import numpy as np

from ...ir.network import Network
from . import Outputs
from .keras_runner import build, to_nchw


def convert(model) -> bytes:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = []  # float32, no quantisation
    return bytes(converter.convert())


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=convert(build(code, net, weights)))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], np.transpose(x, (0, 2, 3, 1)).astype(np.float32))
    interpreter.invoke()
    return {net.blocks()[-1].path: to_nchw(interpreter.get_tensor(out["index"]))}
