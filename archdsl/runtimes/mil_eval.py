"""A reference evaluator for the MIL programs the CoreML backend builds: runs a program op by op
with NumPy kernels, in float32, so CoreML output can be checked where CoreML itself cannot run
(prediction needs macOS). It covers exactly the ops the backend emits; any other op raises.

Kernels follow the MIL op definitions (coremltools `mil/ops/defs`): NCHW tensors, conv weights
(C_out, C_in / groups, kH, kW), `pad` as (top, bottom, left, right).
"""

from __future__ import annotations

from math import erf, sqrt
from typing import Any, Callable

import numpy as np

Kernel = Callable[..., np.ndarray]
_KERNELS: dict[str, Kernel] = {}


def kernel(op_type: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        _KERNELS[op_type] = fn
        return fn

    return register


class UnsupportedOp(Exception):
    pass


def run_program(program: Any, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every op output of the program's `main` function, by name, given its inputs by name.

    An op whose output is float16 (a converted fp16 program) is computed in float32 from its
    float16 inputs and its result rounded to float16: fp16 storage between ops, wider
    accumulation inside them, as GPUs and the Neural Engine do. A classifier's `classify` gives
    the top class and the {class: probability} dictionary, like CoreML's prediction."""
    function = program.functions["main"]
    values: dict[str, Any] = {name: np.asarray(v, dtype=np.float32) for name, v in inputs.items()}
    for op in function.operations:
        if op.op_type == "const":
            val = op.outputs[0].val
            floating = isinstance(val, np.ndarray) and np.issubdtype(val.dtype, np.floating)
            values[op.outputs[0].name] = val.astype(np.float32) if floating else val
            continue
        if op.op_type == "classify":
            probabilities = values[op.inputs["probabilities"].name].reshape(-1)
            classes = list(op.inputs["classes"].sym_val)
            label, table = op.outputs
            values[label.name] = classes[int(np.argmax(probabilities))]
            values[table.name] = dict(zip(classes, probabilities.tolist(), strict=True))
            continue
        if op.op_type not in _KERNELS:
            raise UnsupportedOp(f"no reference kernel for MIL op {op.op_type!r} ({op.name})")
        args = {  # consts came first; a tuple input (concat's values) is a list of variables
            k: [values[x.name] for x in v] if isinstance(v, (list, tuple)) else values[v.name]
            for k, v in op.inputs.items()
        }
        out = np.asarray(_KERNELS[op.op_type](**args), dtype=np.float32)
        if getattr(op.outputs[0].dtype, "__name__", "") == "fp16":
            out = out.astype(np.float16).astype(np.float32)
        values[op.outputs[0].name] = out
    return values


@kernel("cast")
def cast(x, dtype) -> np.ndarray:
    if dtype not in ("fp16", "fp32"):
        raise UnsupportedOp(f"cast to {dtype!r}")
    return x  # the rounding to float16 follows the output's type, as for every op


@kernel("conv")
def conv(x, weight, strides, pad_type, dilations, groups, pad=(0, 0, 0, 0), bias=None) -> np.ndarray:
    if pad_type not in ("custom", "valid") or len(set(int(d) for d in dilations)) != 1:
        raise UnsupportedOp(f"conv with pad_type={pad_type!r}, dilations={list(dilations)}")
    top, bottom, left, right = (int(p) for p in pad) if pad_type == "custom" else (0, 0, 0, 0)
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, _, _ = x.shape
    o, cg, kh, kw = weight.shape
    sh, sw = (int(s) for s in strides)
    d = int(dilations[0])  # a dilated window spans d x (k - 1) + 1 pixels, every d-th one a tap
    windows = np.lib.stride_tricks.sliding_window_view(x, (d * (kh - 1) + 1, d * (kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::d, ::d]
    g = int(groups)
    windows = windows.reshape(n, g, c // g, *windows.shape[2:])  # n, g, cg, oh, ow, kh, kw
    w = weight.reshape(g, o // g, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", windows, w, optimize=True).reshape(n, o, *windows.shape[3:5])
    return out + bias.reshape(1, -1, 1, 1) if bias is not None else out


@kernel("batch_norm")
def batch_norm(x, mean, variance, gamma, beta, epsilon) -> np.ndarray:
    shape = (1, -1, *(1,) * (x.ndim - 2))  # per channel (axis 1) of a rank 3 to 5 tensor
    scale = gamma.reshape(shape) / np.sqrt(variance.reshape(shape) + np.float32(epsilon))
    return (x - mean.reshape(shape)) * scale + beta.reshape(shape)


@kernel("relu")
def relu(x) -> np.ndarray:
    return np.maximum(x, 0)


@kernel("relu6")
def relu6(x) -> np.ndarray:
    return np.clip(x, 0, 6)


@kernel("sigmoid_hard")
def sigmoid_hard(x, alpha, beta) -> np.ndarray:
    return np.clip(np.float32(alpha) * x + np.float32(beta), 0, 1)


@kernel("sigmoid")
def sigmoid(x) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@kernel("silu")
def silu(x) -> np.ndarray:
    return x * sigmoid(x)


_erf = np.vectorize(erf, otypes=[np.float64])


@kernel("gelu")
def gelu(x, mode="EXACT") -> np.ndarray:
    if mode == "EXACT":
        return 0.5 * x * (1 + _erf(x / sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    raise UnsupportedOp(f"gelu mode {mode!r}")


@kernel("identity")
def identity(x) -> np.ndarray:
    return x


@kernel("add")
def add(x, y) -> np.ndarray:
    return x + y


@kernel("mul")
def mul(x, y) -> np.ndarray:
    return x * y


@kernel("sub")
def sub(x, y) -> np.ndarray:
    return x - y


@kernel("maximum")
def maximum(x, y) -> np.ndarray:
    return np.maximum(x, y)


@kernel("reduce_mean")
def reduce_mean(x, axes, keep_dims=False) -> np.ndarray:
    return np.mean(x, axis=tuple(int(a) for a in axes), keepdims=bool(keep_dims))


@kernel("reduce_max")
def reduce_max(x, axes, keep_dims=False) -> np.ndarray:
    return np.max(x, axis=tuple(int(a) for a in axes), keepdims=bool(keep_dims))


@kernel("reshape")
def reshape(x, shape) -> np.ndarray:
    return x.reshape(tuple(int(s) for s in shape))


@kernel("linear")
def linear(x, weight, bias=None) -> np.ndarray:
    out = x @ weight.T
    return out + bias if bias is not None else out


@kernel("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5) -> np.ndarray:
    """Normalized over `axes` (population variance); gamma and beta shaped x.shape[axes], in
    the order `axes` lists them."""
    axes = tuple(range(x.ndim)) if axes is None else tuple(int(a) % x.ndim for a in axes)
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(epsilon))
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    order = np.argsort(axes)  # gamma's axes in x's order
    if gamma is not None:
        y = y * np.transpose(gamma, order).reshape(shape)
    return y + np.transpose(beta, order).reshape(shape) if beta is not None else y


def _pool(x, kernel_sizes, strides, pad, fill: float, reduce: Callable, count: bool) -> np.ndarray:
    top, bottom, left, right = (int(p) for p in pad)
    kh, kw = (int(k) for k in kernel_sizes)
    sh, sw = (int(s) for s in strides)
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    out = reduce(windows, axis=(4, 5))
    if count:  # average over the real (unpadded) elements of each window
        ones = np.pad(np.ones(x.shape[2:], np.float32), ((top, bottom), (left, right)))
        n = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw))[::sh, ::sw].sum(axis=(2, 3))
        out = out * (kh * kw) / n
    return out


@kernel("max_pool")
def max_pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode=False) -> np.ndarray:
    if pad_type != "custom" or ceil_mode:
        raise UnsupportedOp(f"max_pool with pad_type={pad_type!r}, ceil_mode={ceil_mode}")
    return _pool(x, kernel_sizes, strides, pad, -np.inf, np.max, count=False)


@kernel("avg_pool")
def avg_pool(
    x, kernel_sizes, strides, pad_type, pad, exclude_padding_from_average=False, ceil_mode=False
) -> np.ndarray:
    if pad_type != "custom" or ceil_mode:
        raise UnsupportedOp(f"avg_pool with pad_type={pad_type!r}, ceil_mode={ceil_mode}")
    return _pool(x, kernel_sizes, strides, pad, 0.0, np.mean, count=bool(exclude_padding_from_average))


@kernel("transpose")
def transpose(x, perm) -> np.ndarray:
    return np.transpose(x, tuple(int(p) for p in perm))


@kernel("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False) -> np.ndarray:
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)  # batch dimensions broadcast, as in MIL


@kernel("softmax")
def softmax(x, axis=-1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=int(axis), keepdims=True))
    return e / np.sum(e, axis=int(axis), keepdims=True)


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows of interpolation weights: half-pixel centres, source clamped to [0, n_in - 1]."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


@kernel("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    if align_corners or half_pixel_centers is False:
        raise UnsupportedOp("upsample_bilinear other than half-pixel centres (align_corners=False)")
    h, w = x.shape[-2:]
    rows = _bilinear_matrix(h, int(h * scale_factor_height))
    cols = _bilinear_matrix(w, int(w * scale_factor_width))
    return np.einsum("oh,nchw,pw->ncop", rows, x, cols)


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(x, scale_factor_height=1, scale_factor_width=1):
    if int(scale_factor_height) != scale_factor_height or int(scale_factor_width) != scale_factor_width:
        raise UnsupportedOp("upsample_nearest_neighbor by a fractional factor")
    return x.repeat(int(scale_factor_height), axis=-2).repeat(int(scale_factor_width), axis=-1)


@kernel("resize_bilinear")
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    if sampling_mode != "UNALIGN_CORNERS":
        raise UnsupportedOp(f"resize_bilinear with sampling_mode={sampling_mode!r} (only half-pixel centres)")
    h, w = x.shape[-2:]
    rows, cols = _bilinear_matrix(h, int(target_size_height)), _bilinear_matrix(w, int(target_size_width))
    return np.einsum("oh,nchw,pw->ncop", rows, x, cols)


@kernel("concat")
def concat(values, axis, interleave=False) -> np.ndarray:
    axis = int(axis) % values[0].ndim
    if interleave:  # equal shapes, taken one slice of each in turn (the converter's channel shuffle)
        stacked = np.stack(values, axis=axis + 1)
        return stacked.reshape(*values[0].shape[:axis], -1, *values[0].shape[axis + 1 :])
    return np.concatenate(values, axis=axis)


@kernel("slice_by_size")
def slice_by_size(x, begin, size) -> np.ndarray:
    index = tuple(slice(int(b), None if int(n) == -1 else int(b) + int(n)) for b, n in zip(begin, size, strict=True))
    return x[index]


@kernel("shape")
def shape(x) -> np.ndarray:
    return np.array(x.shape)


@kernel("slice_by_index")
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None) -> np.ndarray:
    if any(m is not None and np.any(m) for m in (begin_mask, end_mask, squeeze_mask)):
        raise UnsupportedOp("slice_by_index with masks")
    steps = [1] * len(begin) if stride is None else stride
    return x[tuple(slice(int(b), int(e), int(s)) for b, e, s in zip(begin, end, steps, strict=True))]
