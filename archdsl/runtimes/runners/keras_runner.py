"""Run generated Keras code: a probe model exposes every block's output (the `Identity` layer
named by the block's path); outputs come back NCHW to compare with PyTorch."""

from __future__ import annotations

import numpy as np

from ...ir.network import Network
from . import Outputs, block_paths, load_module


def build(code: str, net: Network, weights: str):  # type: ignore[no-untyped-def]
    module = load_module(code, f"archdsl_keras_{net.name}")
    return module.load_weights(module.build_model(), weights)


def to_nchw(y: np.ndarray) -> np.ndarray:
    return np.transpose(y, (0, 3, 1, 2)) if y.ndim == 4 else y


def run(code: str, net: Network, weights: str, x: np.ndarray) -> Outputs:
    import keras

    model = build(code, net, weights)
    paths = block_paths(net)
    probe = keras.Model(model.inputs, [model.get_layer(p).output for p in paths])
    outs = probe([np.transpose(x, (0, 2, 3, 1))], training=False)
    return {p: to_nchw(np.asarray(y)) for p, y in zip(paths, outs, strict=True)}
