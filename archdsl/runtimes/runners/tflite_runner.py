"""Convert the generated Keras model to TensorFlow Lite (float32) and run it with the TFLite
interpreter on CPU: the deployment path the MobileNetV4 paper benchmarks. Only the logits
are compared (the converter fuses layers, so block outputs are not kept), and the endpoints of
the network converted as a feature extractor, by their output names."""

from __future__ import annotations

import warnings

import numpy as np

from ...ir.network import Network
from . import Outputs, feature_key, model_outputs
from .keras_runner import build, to_nchw


def convert(model) -> bytes:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = []  # float32, no quantisation
    return bytes(converter.convert())


def interpreter(model):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_content=convert(model))


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    image = np.transpose(x, (0, 2, 3, 1)).astype(np.float32)
    outputs = {}
    found = interpreter(build(code, net, weights)).get_signature_runner()(image=image)
    if net.dense_head is None:
        (logits,) = found.values()
        outputs[net.blocks()[-1].path] = to_nchw(logits)
    else:  # named as the Keras model's dict of outputs
        outputs |= {key: to_nchw(found[n]) for key, (n, _) in zip(model_outputs(net), net.outputs(), strict=True)}
    if net.endpoints:  # the signature's outputs are named as the Keras model's dict of endpoints
        found = interpreter(build(code, net, weights, features_only=True)).get_signature_runner()(image=image)
        outputs |= {feature_key(e.name): to_nchw(found[e.name]) for e in net.endpoints}
    return outputs
