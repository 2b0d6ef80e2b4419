"""Quantized TensorFlow Lite: float16 weights (`fp16`), int8 weights with float activations
(`dynamic`), or full-integer int8 post-training quantization (`int8`), calibrated on images
prepared as the spec's `preprocess` says (timm's eval transform: resize, centre crop, scale to
[0, 1], per-channel mean and std). After converting, every op of the model is read back with its
tensor types, so that no float op of an int8 model goes unreported, and the int8 model is
compared with the float32 one on the calibration images."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchError
from ..ir.network import Network

MODES = ("fp16", "dynamic", "int8")
IO_TYPES = ("float32", "int8")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_IMAGES = 1024  # calibration images read, each at most MAX_IMAGE_BYTES
MAX_IMAGE_BYTES = 64 * 1024 * 1024
_BOUNDARY = ("QUANTIZE", "DEQUANTIZE")  # float <-> int8 at the input and output of a float-IO model


def prepare(image: np.ndarray, net: Network, crop_pct: float | None = None) -> np.ndarray:
    """One HxWxC uint8 image as the network's float32 NHWC input (batch of 1); `crop_pct`
    replaces the spec's (smaller: a closer crop)."""
    import tensorflow as tf

    c, h, w = net.input_shape
    p = net.preprocess
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] != c:
        image = image[:, :, :3] if image.shape[2] == 4 and c == 3 else np.repeat(image[:, :, :1], c, axis=2)
    scale = math.floor(max(h, w) / (crop_pct or p.crop_pct))  # timm: the shorter side to size / crop_pct, then crop
    ih, iw = image.shape[:2]
    size = (max(h, round(ih * scale / min(ih, iw))), max(w, round(iw * scale / min(ih, iw))))
    resized = tf.image.resize(image.astype(np.float32), size, method=p.interpolation, antialias=True).numpy()
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    x = np.clip(resized[top : top + h, left : left + w], 0.0, 255.0) / 255.0
    return ((x - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32))[None].astype(np.float32)


def calibration_inputs(source: str, net: Network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The network's inputs (NHWC, batch 1) from a directory of images or an `.npz` (uint8 images
    NxHxWxC, prepared here; or float32 inputs NxCxHxW, used as they are): the images as the
    network sees them, and those with what training-time augmentation would show besides (each
    image also cropped closer, and every input left-right flipped) to calibrate on."""
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise ArchError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate on",
                            hint="give a directory of photos like those the model will see, or an .npz")  # fmt: skip
        images = [_decode(f, net.input_shape[0]) for f in _bounded(files, source)]
    elif path.suffix == ".npz" and path.is_file():
        images = _from_npz(path, net)
        if images and images[0].dtype == np.float32:
            return images, _mirrored(images)
    else:
        raise ArchError(f"{source}: not a directory of images nor an .npz file", hint="--calibration DIR or FILE.npz")
    seen = [prepare(im, net) for im in images]
    closer = [prepare(im, net, 0.7 * net.preprocess.crop_pct) for im in images]
    return seen, _mirrored(seen + closer)


def _mirrored(inputs: list[np.ndarray]) -> list[np.ndarray]:
    return inputs + [np.ascontiguousarray(x[:, :, ::-1]) for x in inputs]


def _bounded(files: list[Path], source: str) -> list[Path]:
    if len(files) > MAX_IMAGES:
        raise ArchError(f"{source}: {len(files)} images; archdsl calibrates on at most {MAX_IMAGES}",
                        hint="a few hundred representative images are enough")  # fmt: skip
    for f in files:
        if f.stat().st_size > MAX_IMAGE_BYTES:
            raise ArchError(f"{f}: larger than {MAX_IMAGE_BYTES >> 20} MiB", hint="downscale it first")
    return files


def _decode(file: Path, channels: int) -> np.ndarray:
    import tensorflow as tf

    try:
        return tf.io.decode_image(file.read_bytes(), channels=channels if channels in (1, 3) else 0,
                                  expand_animations=False).numpy()  # fmt: skip
    except tf.errors.InvalidArgumentError as e:
        raise ArchError(f"{file}: not an image TensorFlow can decode ({e.message.splitlines()[0]})") from None


def _from_npz(path: Path, net: Network) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        if len(data.files) != 1:
            raise ArchError(f"{path}: holds {len(data.files)} arrays; calibration takes one",
                            hint="uint8 images NxHxWxC, or float32 inputs NxCxHxW")  # fmt: skip
        array = data[data.files[0]]
    c, h, w = net.input_shape
    if array.dtype == np.uint8 and array.ndim == 4 and array.shape[3] == c and len(array) <= MAX_IMAGES:
        return list(array)
    if array.dtype == np.float32 and array.shape[1:] == (c, h, w) and len(array) <= MAX_IMAGES:
        return [np.transpose(x, (1, 2, 0))[None] for x in array]
    raise ArchError(f"{path}: an array {array.dtype} {tuple(array.shape)}",
                    hint=f"uint8 images Nx H x W x{c}, or float32 inputs Nx{c}x{h}x{w}, at most {MAX_IMAGES}")  # fmt: skip


def unfuse_hard_swish(module: Any) -> None:
    """Before an int8 build: the generated Keras module's hard-swish, spelled as TFLite's
    converter does not fuse. The converter turns every `x * relu6(x + 3) / 6` it recognises into
    HARD_SWISH, which XNNPACK runs in float only: an int8 one falls back to TFLite's reference
    kernel (1.24 ms for 56x56x96 against 0.07 ms for the 1x1 convs around it), two thirds of int8
    MobileNetV3's time. `relu6(x + 3) * (x / 6)` becomes ADD (with ReLU6 fused), MUL and MUL, all
    delegated. Float models keep the fused op, which is faster there."""
    if hasattr(module, "hard_swish"):
        from keras import ops

        module.hard_swish = lambda x: ops.relu6(x + 3.0) * (x * (1.0 / 6.0))


def convert(model: Any, mode: str, samples: list[np.ndarray] | None = None, io: str = "float32",
            fold: bool = True) -> tuple[bytes, str | None]:  # fmt: skip
    """The Keras model converted to TFLite in `mode`; `int8` needs `samples` (NHWC inputs). With
    `fold`, an int8 model's multiplications by a constant go into the scales after them
    (`tflite_fold`). Returns the model, and for int8 what folding did."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        assert samples, "int8 calibrates on samples"
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "int8":
            converter.inference_input_type = converter.inference_output_type = tf.int8
    model_bytes = bytes(converter.convert())
    if mode != "int8" or not fold:
        return model_bytes, None
    from .tflite_fold import fold_scalar_multiplications

    folded = fold_scalar_multiplications(model_bytes)
    return folded.model, folded.text()


@dataclass(frozen=True)
class OpReport:
    counts: dict[str, int]  # op name -> how many
    float_ops: list[str]  # ops computing in float (other than the float-IO boundary)
    input_type: str
    output_type: str

    def text(self, mode: str) -> str:
        ops = ", ".join(f"{name} x{n}" for name, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if mode == "int8":
            floats = f"float ops: {', '.join(self.float_ops)}" if self.float_ops else "every op integer"
        else:  # fp16 and dynamic keep float activations by design
            floats = f"{len(self.float_ops)} ops compute in float ({mode} quantizes weights only)"
        return f"{sum(self.counts.values())} ops ({ops}); {floats}; input {self.input_type}, output {self.output_type}"


def op_report(model_bytes: bytes) -> OpReport:
    """Every op of a TFLite model, and those whose outputs are float."""
    interpreter = _interpreter(model_bytes, delegates=False)  # the model's own ops, not XNNPACK's DELEGATE
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    counts: dict[str, int] = {}
    floats = []
    for op in interpreter._get_ops_details():  # the interpreter's op list (its only public view of ops)
        name = op["op_name"]
        counts[name] = counts.get(name, 0) + 1
        if name not in _BOUNDARY and any(tensors[i]["dtype"] in (np.float32, np.float16) for i in op["outputs"]):
            floats.append(f"{name} -> {tensors[op['outputs'][0]]['name']}")
    (inp,), outs = interpreter.get_input_details(), interpreter.get_output_details()
    return OpReport(
        counts, floats, np.dtype(inp["dtype"]).name, "/".join(sorted({np.dtype(o["dtype"]).name for o in outs}))
    )


def _interpreter(model_bytes: bytes, delegates: bool = True) -> Any:
    import warnings

    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType
    kind = resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=model_bytes, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    return interpreter


def run(model_bytes: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """The model's float outputs for each float NHWC input, (de)quantizing at int8 boundaries."""
    interpreter = _interpreter(model_bytes)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for x in inputs:
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y.reshape(len(y), -1)[0])
    return np.stack(results)


@dataclass(frozen=True)
class Agreement:
    images: int
    top1: int  # images whose top-1 class is the float model's
    top5_overlap: float  # mean |top-5 int8 & top-5 float| / 5
    sqnr_db: float  # of the logits: 10 log10(sum ref^2 / sum (ref - q)^2)

    def text(self) -> str:
        return (f"int8 vs float32 on {self.images} images: top-1 agrees on {self.top1}/{self.images}, "
                f"top-5 overlap {self.top5_overlap:.2f} (of 1), logits SQNR {self.sqnr_db:.1f} dB")  # fmt: skip


def agreement(reference: np.ndarray, quantized: np.ndarray) -> Agreement:
    top1 = int((reference.argmax(1) == quantized.argmax(1)).sum())
    k = min(5, reference.shape[1])
    ref5, q5 = np.argsort(-reference, 1)[:, :k], np.argsort(-quantized, 1)[:, :k]
    overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref5, q5, strict=True)]))
    noise = float(np.sum((reference - quantized) ** 2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(float(np.sum(reference**2)) / noise)
    return Agreement(len(reference), top1, overlap, sqnr)
