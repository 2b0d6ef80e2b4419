"""One latency unit (`analysis/latency.py`) as a Keras model of its own, built with the layers and
formulas the generated Keras code uses (`backends/keras/module.py.j2`), so that the TFLite
converter gives it the kernels it gives the unit inside a whole network (a test compares them).
Weights are random: a float32 kernel's time does not depend on its values."""

from __future__ import annotations

from typing import Any, Callable

import keras
from keras import layers, ops

from ..analysis.latency import Unit, is_depthwise


def _act(name: str) -> Callable[[Any], Any]:
    return {
        "relu": ops.relu,
        "relu6": ops.relu6,
        "hard_swish": lambda x: x * (ops.relu6(x + 3.0) / 6.0),
        "hard_sigmoid": lambda x: ops.relu6(x + 3.0) / 6.0,
        "swish": ops.silu,
        "gelu": lambda x: ops.gelu(x, approximate=False),
        "gelu_tanh": lambda x: ops.gelu(x, approximate=True),
        "sigmoid": ops.sigmoid,
        "identity": keras.activations.linear,
    }[name]


def _pad(pad: list[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    top, bottom, left, right = pad
    return (top, bottom), (left, right)


def _conv(u: Unit, x: Any) -> Any:
    if any(u["pad"]):
        x = layers.ZeroPadding2D(_pad(u["pad"]))(x)
    d = u.get("d", 1)
    if is_depthwise(u):
        x = layers.DepthwiseConv2D(u["k"], u["s"], padding="valid", dilation_rate=d)(x)
    else:
        x = layers.Conv2D(u["cout"], u["k"], u["s"], padding="valid", groups=u["groups"], dilation_rate=d)(x)
    return layers.Activation(_act(u["act"]))(x)  # the BatchNorm is folded into the bias


def _se(u: Unit, x: Any) -> Any:
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Activation(_act(u["act"]))(layers.Conv2D(u["reduced"], 1)(s))
    s = layers.Activation(_act(u["gate"]))(layers.Conv2D(u["c"], 1)(s))
    return layers.Multiply()([x, s])


def _pool(u: Unit, x: Any) -> Any:
    kind = "Average" if u["mode"] == "avg" else "Max"
    if u["global"]:
        return getattr(layers, f"Global{kind}Pooling2D")(keepdims=True)(x)
    if any(u["pad"]):
        fill = 0.0 if u["mode"] == "avg" else float("-inf")
        x = layers.Lambda(lambda t: ops.pad(t, ((0, 0), *_pad(u["pad"]), (0, 0)), constant_values=fill))(x)
    return getattr(layers, f"{kind}Pooling2D")(u["k"], u["s"])(x)


def _blur(u: Unit, x: Any) -> Any:
    """A fixed 3x3 filter per channel at stride 2 after zero padding 1: TFLite's PAD and
    DEPTHWISE_CONV_2D with a constant kernel, as the generated BlurPool converts to."""
    return layers.DepthwiseConv2D(3, 2, padding="valid", use_bias=False)(layers.ZeroPadding2D(1)(x))


def _shuffle(u: Unit, x: Any) -> Any:
    (h, w), c, g = u["hw"], u["c"], u["groups"]
    x = ops.reshape(x, (-1, h, w, g, c // g))
    return ops.reshape(ops.transpose(x, (0, 1, 2, 4, 3)), (-1, h, w, c))


def _attention(u: Unit, q: Any, k: Any, v: Any) -> Any:
    heads, kv, kd, vd, n, m = (u[f] for f in ("heads", "kv_heads", "key_dim", "value_dim", "queries", "keys"))
    q = ops.transpose(ops.reshape(q, (-1, n, heads, kd)), (0, 2, 1, 3))
    k = ops.transpose(ops.reshape(k, (-1, m, kv, kd)), (0, 2, 3, 1))
    v = ops.transpose(ops.reshape(v, (-1, m, kv, vd)), (0, 2, 1, 3))
    attn = ops.softmax(ops.matmul(q * kd**-0.5, k), axis=-1)
    return ops.reshape(ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3)), (-1, n, 1, heads * vd))


class ChannelShift(layers.Layer):
    """A per-channel shift: what is left of a lone BatchNorm once the converter has folded its
    scale forward. (A public name: the converter fails on a layer class named with an underscore.)"""

    def build(self, input_shape: Any) -> None:
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="random_normal")

    def call(self, x: Any) -> Any:
        return x + self.beta


def _image(u: Unit, c: int | None = None, hw: list[int] | None = None) -> Any:
    h, w = hw or u["hw"]
    return keras.Input((h, w, c if c is not None else u["c"]), batch_size=1)


def unit_model(u: Unit) -> keras.Model:
    op = u["op"]
    if op == "conv":
        x = _image(u, u["cin"])
        return keras.Model(x, _conv(u, x))
    if op == "add":
        xs = [_image(u) for _ in range(u["terms"])]
        return keras.Model(xs, layers.Add()(xs))
    if op == "concat":  # two halves (a ghost module's or ShuffleNet's two parts)
        xs = [_image(u, u["c"] - u["c"] // 2), _image(u, u["c"] // 2)]
        return keras.Model(xs, layers.Concatenate()(xs))
    if op == "attention":
        q = keras.Input((u["queries"], 1, u["heads"] * u["key_dim"]), batch_size=1)
        k = keras.Input((u["keys"], 1, u["kv_heads"] * u["key_dim"]), batch_size=1)
        v = keras.Input((u["keys"], 1, u["kv_heads"] * u["value_dim"]), batch_size=1)
        return keras.Model([q, k, v], _attention(u, q, k, v))
    if op == "gate":  # x times per-channel factors
        x, s = _image(u), _image(u, hw=[1, 1])
        return keras.Model([x, s], layers.Multiply()([x, s]))
    if op == "fc" and "rows" in u:  # a linear layer on each of `rows` tokens
        x = keras.Input((u["rows"], u["cin"]), batch_size=1)
        return keras.Model(x, layers.Activation(_act(u.get("act", "identity")))(layers.Dense(u["classes"])(x)))
    if op == "fc":
        x = keras.Input((1, 1, u["cin"]), batch_size=1)
        y = layers.Dense(u["classes"])(layers.Flatten()(x))
        return keras.Model(x, layers.Activation(_act(u["act"]))(y) if "act" in u else y)
    if op in ("layer_norm", "mul"):  # on tokens: (rows, c)
        xs = [keras.Input((u["rows"], u["c"]), batch_size=1) for _ in range(1 if op == "layer_norm" else 2)]
        return keras.Model(xs, layers.LayerNormalization(epsilon=1e-5)(xs[0]) if op == "layer_norm" else
                           layers.Multiply()(xs))  # fmt: skip
    if op == "dynamic_relu":  # max(x a, x b) with per-channel a, b
        x, a, b = _image(u), _image(u, hw=[1, 1]), _image(u, hw=[1, 1])
        return keras.Model([x, a, b], ops.maximum(x * a, x * b))
    x = _image(u, u.get("cin"))
    build: dict[str, Callable[[Unit, Any], Any]] = {
        "se": _se,
        "pool": _pool,
        "shuffle": _shuffle,
        "blur": _blur,
        "norm": lambda u, x: ChannelShift()(x),
        "act": lambda u, x: layers.Activation(_act(u["act"]))(x),
        "upsample": lambda u, x: layers.Resizing(*u["out_hw"], interpolation="bilinear")(x),
        "none": lambda u, x: layers.Activation("relu")(x),  # the interpreter's fixed cost per call
    }
    return keras.Model(x, build[op](u, x))
