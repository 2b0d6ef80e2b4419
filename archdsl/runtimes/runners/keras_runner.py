"""Run generated Keras code, for inference or one training step: a probe model exposes every
block's output (the `Identity` layer named by the block's path); outputs come back NCHW, and
weights and gradients in PyTorch layout, to compare with PyTorch."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ...codegen.keras import layer_name
from ...errors import ArchError
from ...ir.network import Network
from . import Outputs, StepResult, feature_key, load_module, model_outputs, tensor_outputs


def build(code: str, net: Network, weights: str, features_only: bool = False):  # type: ignore[no-untyped-def]
    return _loaded(code, net, weights, features_only)[1]


def _loaded(code: str, net: Network, weights: str, features_only: bool = False):  # type: ignore[no-untyped-def]
    module = load_module(code, f"archdsl_keras_{net.name}")
    model = module.build_model(features_only=True) if features_only else module.build_model()
    return module, module.load_weights(model, weights)


def _probe(model, net: Network):  # type: ignore[no-untyped-def]
    """A model giving every block's output (`_keys` names them); a dense head's are its outputs,
    which `Identity` layers named by the outputs give."""
    import keras

    names = [layer_name(p) for p in tensor_outputs(net)] + ([n for n, _ in net.outputs()] if net.dense_head else [])
    return keras.Model(model.inputs, [model.get_layer(n).output for n in names])


def _keys(net: Network) -> list[str]:
    """The keys of the probe's outputs, in its order."""
    return tensor_outputs(net) + (model_outputs(net) if net.dense_head else [])


def to_nchw(y: np.ndarray) -> np.ndarray:
    return np.transpose(y, (0, 3, 1, 2)) if y.ndim == 4 else y


@contextmanager
def _floats(dtype: str):  # type: ignore[no-untyped-def]
    """Keras' float type and dtype policy set to `dtype` (for building and running a model)."""
    import keras

    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx(dtype)  # Keras' type promotion follows floatx too
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def run(code: str, net: Network, weights: str, x: np.ndarray, dtype: str = "float32") -> Outputs:
    import keras

    image = [np.transpose(x, (0, 2, 3, 1)).astype(dtype)]
    with _floats(dtype):
        outs = _probe(build(code, net, weights), net)(image, training=False)
        outputs = {p: to_nchw(keras.ops.convert_to_numpy(y)) for p, y in zip(_keys(net), outs, strict=True)}
        if net.endpoints:  # the backbone, built on its own: a dict of outputs by endpoint name
            found = build(code, net, weights, features_only=True)(image[0], training=False)
            outputs |= {feature_key(e.name): to_nchw(keras.ops.convert_to_numpy(found[e.name])) for e in net.endpoints}
        return outputs


def train_step(code: str, net: Network, weights: str, x: np.ndarray, labels: np.ndarray, lr: float,
               dtype: str) -> StepResult:  # fmt: skip
    """A Keras training step as its trainers take one, in `dtype` (the model built under that
    dtype policy): forward with training=True (BatchNorm updates its moving statistics), sparse
    categorical cross-entropy on the logits, gradients from the backend (TensorFlow's
    GradientTape, or torch autograd), keras.optimizers.SGD."""
    import keras

    with _floats(dtype):
        module, model = _loaded(code, net, weights)
        probe = _probe(model, net)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
        outs, loss, grads = _gradients(probe, np.transpose(x, (0, 2, 3, 1)).astype(dtype), labels, loss_fn)
        keras.optimizers.SGD(learning_rate=lr).apply_gradients(zip(grads, probe.trainable_variables, strict=True))
    layouts = [(f"{module._path(layer)}.{suffix}", to_canonical, v) for layer in model.layers
               for (suffix, to_canonical, _), v in zip(module._layouts(layer), layer.weights, strict=True)]  # fmt: skip
    numpy = keras.ops.convert_to_numpy
    names = {id(v): (key, to_canonical) for key, to_canonical, v in layouts}
    gradients = {}
    for v, g in zip(probe.trainable_variables, grads, strict=True):
        key, to_canonical = names[id(v)]
        gradients[key] = np.ascontiguousarray(to_canonical(numpy(g)))
    after = {key: np.ascontiguousarray(to_canonical(numpy(v))) for key, to_canonical, v in layouts}
    outputs = {p: to_nchw(numpy(y)) for p, y in zip(_keys(net), outs, strict=True)}
    return StepResult(float(numpy(loss)), outputs, gradients, after)


def _gradients(probe, x: np.ndarray, labels: np.ndarray, loss_fn):  # type: ignore[no-untyped-def]
    """(outputs, loss, gradients of the trainable variables): the backend's own autodiff."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outs = probe([x], training=True)
            loss = loss_fn(labels, outs[-1])
        return outs, loss, tape.gradient(loss, probe.trainable_variables)
    if backend == "torch":
        outs = probe([x], training=True)
        loss = loss_fn(labels, outs[-1])
        loss.backward()
        return [y.detach() for y in outs], loss.detach(), [v.value.grad for v in probe.trainable_variables]
    raise ArchError(f"verify --train cannot take gradients on the Keras backend '{backend}'", None,
                    "set KERAS_BACKEND to tensorflow or torch")  # fmt: skip
