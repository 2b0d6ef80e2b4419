"""A full-integer TFLite model's multiplications by a constant scalar, folded into the scales of
the tensors after them: the pass TFLite's converter leaves undone.

Hard-swish written so that XNNPACK keeps it (`relu6(x + 3) * (x * 1/6)`, see
`quantize.unfuse_hard_swish`) and hard-sigmoid (`relu6(x + 3) * 1/6`) each leave an int8 MUL by
1/6. In int8 such a MUL only requantizes, yet it is a whole pass over the activation. Removing it
means its consumers read its input `u` (= v / c) instead of its output `v`: every value downstream
is then 1/c times what it was, which an int8 tensor expresses by its scale alone. So the scales
change and no integer does: a MUL or MEAN of the scaled value gets its output scale times 1/c;
ops that copy quantization (RESHAPE, PAD, pooling) take their input's; SHAPE reads none; a CONV_2D,
DEPTHWISE_CONV_2D or FULLY_CONNECTED that reads it absorbs the factor, its weight scales times c
(its bias re-expressed in the new input x weight scale), so its output is what it was. A MUL is
folded only when everything it reaches ends in such a layer; one that feeds a residual ADD, a
concatenation or an output is left as it is. The model computes what it did, one rounding less."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

_ABSORB = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the factor goes into the weights
_RESCALE = ("MUL", "MEAN")  # the output's scale follows the input's
_COPY = ("RESHAPE", "SQUEEZE", "PAD", "PADV2", "MAX_POOL_2D", "AVERAGE_POOL_2D")  # output quantization = input's
_SHAPE_ONLY = ("SHAPE",)  # reads no value (a flatten's dynamic shape)
_INT8 = 9  # TensorType.INT8
_SCALE_FREE_ACTS = (0, 1)  # fused activation NONE or RELU: both commute with a positive factor


@dataclass
class _Plan:
    """What folding one MUL changes: tensor -> its new (scale, zero point); weight tensor -> factor."""

    quant: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    weights: dict[int, tuple[float, int]] = field(default_factory=dict)  # weight tensor -> (factor, its op)


@dataclass(frozen=True)
class Folded:
    model: bytes
    folded: int  # MULs removed
    left: int  # MULs by a positive scalar kept: what they reach cannot take the factor

    def text(self) -> str:
        reach = "it reaches" if self.left == 1 else "they reach"
        kept = f"; {self.left} kept ({reach} a residual add, a concatenation or an output)" if self.left else ""
        return f"{self.folded} multiplications by a constant folded into the scales after them{kept}"


def fold_scalar_multiplications(model_bytes: bytes) -> Folded:
    """The model with every foldable int8 MUL-by-a-positive-scalar removed."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    folded = left = 0
    for graph in model.subgraphs:
        while True:
            candidates = list(_candidates(model, graph, names))
            fold = next(((i, u, v, plan) for i, u, v, plan in candidates if plan is not None), None)
            if fold is None:
                left += len(candidates)
                break
            _apply(model, graph, *fold)
            folded += 1
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if folded else model_bytes
    return Folded(out, folded, left)


def _op_name(model: Any, op: Any, names: dict[int, str]) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")


def _candidates(model: Any, graph: Any, names: dict[int, str]) -> Iterator[tuple[int, int, int, _Plan | None]]:
    """(op index, kept input u, removed output v, plan or None where it cannot fold) of every
    int8 MUL of a tensor by a positive constant scalar."""
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(i)
    for i, op in enumerate(graph.operators):
        if _op_name(model, op, names) != "MUL" or _fused_act(op) != 0:
            continue
        for side in (0, 1):
            u, c_index, v = int(op.inputs[side]), int(op.inputs[1 - side]), int(op.outputs[0])
            c = _scalar(model, graph.tensors[c_index])
            if c is None or c <= 0 or _scalar(model, graph.tensors[u]) is not None or not _int8(graph.tensors[u]):
                continue
            plan = _Plan()
            q = graph.tensors[u].quantization
            ok = _reach(model, graph, names, consumers, v, (q.scale, q.zeroPoint), 1.0 / c, plan, {i})
            yield i, u, v, plan if ok else None
            break


def _reach(model: Any, graph: Any, names: dict[int, str], consumers: dict[int, list[int]], tensor: int,
           quant: tuple[Any, Any], k: float, plan: _Plan, seen: set[int]) -> bool:  # fmt: skip
    """Plan every op that reads `tensor`, whose value becomes k times what it was and whose
    quantization (scale, zero point) `quant`; False if one cannot take it."""
    if tensor in graph.outputs:
        return False
    for j in consumers.get(tensor, []):
        if j in seen:
            return False
        seen.add(j)
        op = graph.operators[j]
        name = _op_name(model, op, names)
        out = int(op.outputs[0]) if len(op.outputs) == 1 else -1
        if name in _SHAPE_ONLY:
            continue
        if name in _ABSORB and int(op.inputs[0]) == tensor and _weight_only_here(consumers, op, j):
            plan.weights[int(op.inputs[1])] = (1.0 / k, j)
        elif (
            name in _RESCALE and out >= 0 and _fused_act(op) in _SCALE_FREE_ACTS and list(op.inputs).count(tensor) == 1
        ):
            q = graph.tensors[out].quantization
            plan.quant[out] = (np.asarray(q.scale, np.float32) * np.float32(k), np.asarray(q.zeroPoint))
            if not _reach(model, graph, names, consumers, out, plan.quant[out], k, plan, seen):
                return False
        elif name in _COPY and out >= 0 and int(op.inputs[0]) == tensor and _fused_act(op) in _SCALE_FREE_ACTS:
            plan.quant[out] = (np.asarray(quant[0], np.float32), np.asarray(quant[1]))
            if not _reach(model, graph, names, consumers, out, plan.quant[out], k, plan, seen):
                return False
        else:
            return False
    return True


def _apply(model: Any, graph: Any, index: int, u: int, v: int, plan: _Plan) -> None:
    for op in graph.operators:
        op.inputs = [u if int(t) == v else int(t) for t in op.inputs]
    del graph.operators[index]
    for t, (scale, zero) in plan.quant.items():
        graph.tensors[t].quantization.scale = scale
        graph.tensors[t].quantization.zeroPoint = zero
    for w, (factor, op_index) in plan.weights.items():
        op = graph.operators[op_index - (op_index > index)]
        wq = graph.tensors[w].quantization
        wq.scale = np.asarray(wq.scale, np.float32) * np.float32(factor)
        if len(op.inputs) > 2 and int(op.inputs[2]) >= 0:
            _requantize_bias(model, graph, op, wq)


def _requantize_bias(model: Any, graph: Any, op: Any, wq: Any) -> None:
    """The int32 bias in the scale the kernel expects: input scale x weight scale."""
    bias = graph.tensors[int(op.inputs[2])]
    buffer = model.buffers[bias.buffer]
    values = np.frombuffer(bytes(bytearray(buffer.data)), np.int32).astype(np.float64)
    old = np.asarray(bias.quantization.scale, np.float64)
    new = np.float64(graph.tensors[int(op.inputs[0])].quantization.scale[0]) * np.asarray(wq.scale, np.float64)
    fixed = np.clip(np.round(values * old / new), -(2**31), 2**31 - 1).astype(np.int32)
    buffer.data = np.frombuffer(fixed.tobytes(), np.uint8)
    bias.quantization.scale = new.astype(np.float32)


def _weight_only_here(consumers: dict[int, list[int]], op: Any, j: int) -> bool:
    return len(op.inputs) > 1 and consumers.get(int(op.inputs[1])) == [j]


def _fused_act(op: Any) -> int:
    return int(getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0)


def _int8(tensor: Any) -> bool:
    """An int8 tensor quantized per tensor (as activations are)."""
    q = tensor.quantization
    return tensor.type == _INT8 and q is not None and q.scale is not None and len(q.scale) == 1


def _scalar(model: Any, tensor: Any) -> float | None:
    """A constant one-element int8 tensor's real value."""
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) != 1 or not _int8(tensor):
        return None
    q = tensor.quantization
    return float(q.scale[0]) * (int(np.frombuffer(bytes(bytearray(data)), np.int8)[0]) - int(q.zeroPoint[0]))
