"""One runtime's side of `archdsl bench`, in a process of its own (runtimes that share a process
slow each other: their thread pools spin after each call). Reads a request line on stdin, loads
and warms the model, answers `ready`; then each `round` line gets its timed calls, back to back,
(and, asked for, a call with a timer on every block), answered as a JSON line on stdout: the
median of the round's calls.

    python -m archdsl.runtimes.bench_worker < requests
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np


def _torch(request: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], dict[str, float]] | None]:
    import torch

    from .runners import load_module

    torch.set_num_threads(request["threads"])
    module = load_module(open(request["code"]).read(), "archdsl_bench")  # noqa: SIM115 - read once
    model = module.load_weights(module.build_model(), request["weights"]).eval()
    x = torch.from_numpy(_input(request))
    compiled = model
    if request["runtime"] == "torch-compile":
        import torch._inductor.config

        # Frozen for inference: the weights become constants prepacked for oneDNN, each conv fused
        # with its activation. Only the global setting does it (`options=` compiles unfrozen).
        torch._inductor.config.freezing = True
        compiled = torch.compile(model)

    def call() -> Any:
        with torch.inference_mode():
            return compiled(x)

    def per_block() -> dict[str, float]:
        starts: dict[str, float] = {}
        times: dict[str, float] = {}
        handles = []
        for path in request["blocks"]:
            sub = model.get_submodule(path)

            def start(_m: Any, _i: Any, path: str = path) -> None:
                starts[path] = time.perf_counter()

            def stop(_m: Any, _i: Any, _o: Any, path: str = path) -> None:
                times[path] = time.perf_counter() - starts[path]

            handles += [sub.register_forward_pre_hook(start), sub.register_forward_hook(stop)]
        with torch.inference_mode():
            model(x)
        for h in handles:
            h.remove()
        return times

    return call, per_block if request["runtime"] == "torch" else None


def _tflite(request: dict[str, Any]) -> tuple[Callable[[], Any], None]:
    import warnings

    import tensorflow as tf

    from . import quantize
    from .runners import load_module
    from .runners.tflite_runner import convert

    with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
        warnings.simplefilter("ignore", UserWarning)
        module = load_module(open(request["code"]).read(), "archdsl_bench")  # noqa: SIM115 - read once
        if request["runtime"] == "tflite-int8":
            quantize.unfuse_hard_swish(module)  # as `export --quantize int8` builds it
        model = module.load_weights(module.build_model(), request["weights"])
        if request["runtime"] == "tflite-int8":  # its speed, not its accuracy: calibrated on the timing input
            sample = np.transpose(_input(request), (0, 2, 3, 1))
            content, _ = quantize.convert(model, "int8", [sample, -sample], "float32")
        else:
            content = convert(model)
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=request["threads"])
    interpreter.allocate_tensors()
    (inp,), _ = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], np.transpose(_input(request), (0, 2, 3, 1)))
    return interpreter.invoke, None


def _onnx(request: dict[str, Any]) -> tuple[Callable[[], Any], None]:
    """The generated ONNX model in ONNX Runtime (CPU), its graph optimisations all on; or, for
    `onnx-torch-export`, what torch.onnx.export makes of the generated PyTorch model."""
    import onnxruntime as ort

    from .runners import load_module

    module = load_module(open(request["code"]).read(), "archdsl_bench")  # noqa: SIM115 - read once
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = request["threads"]
    if request["runtime"] == "onnx-torch-export":
        model = _torch_export(module, request)
    else:
        model = module.build_model(request["weights"]).SerializeToString()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {"image": _input(request)}
    return lambda: session.run(None, feed), None


def _torch_export(module: Any, request: dict[str, Any]) -> bytes:
    """torch.onnx.export of the model (its TorchScript exporter: the torch.export-based one needs
    onnxscript), opset 18 as the generated ONNX."""
    import io
    import warnings

    import torch

    model = module.load_weights(module.build_model(), request["weights"]).eval()
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.from_numpy(_input(request)),), out,  # type: ignore[arg-type]
                          input_names=["image"], opset_version=18, dynamo=False)  # fmt: skip
    return out.getvalue()


def _input(request: dict[str, Any]) -> np.ndarray:
    """The same input for every runtime: NCHW, standard normal, seed 0."""
    return np.random.default_rng(0).standard_normal((1, *request["shape"]), dtype=np.float32)


def main() -> None:
    # Answers go to the real stdout; anything a framework prints (Python or C) goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.readline())
    load = {"tflite": _tflite, "tflite-int8": _tflite, "onnx": _onnx, "onnx-torch-export": _onnx}
    call, per_block = load.get(request["runtime"], _torch)(request)
    for _ in range(request["warmup"]):
        call()
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        times = []
        for _ in range(request["calls"]):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        answer: dict[str, Any] = {"seconds": statistics.median(times)}
        if request["per_block"] and per_block is not None:
            answer["blocks"] = per_block()
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    main()
