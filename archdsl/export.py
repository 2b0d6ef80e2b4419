"""`archdsl export`: deployable model files from generated code and canonical weights, written
so that nothing half-made is ever left at the output path."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from .atomic import write_atomic
from .backends.registry import get_backend
from .ir import Network
from .runners import load_module, runner


def export(net: Network, backend: str, weights: str, output: Path, precision: str = "fp32") -> None:
    runner("keras" if backend == "tflite" else backend)  # quiets TensorFlow before it loads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coremltools: untested torch / TF versions
        if backend == "tflite":
            from .runners.tflite_runner import convert

            module = load_module(get_backend("keras").emit(net), f"archdsl_keras_{net.name}")
            write_atomic(output, convert(module.load_weights(module.build_model(), weights)))
            return
        module = load_module(get_backend("coreml").emit(net), f"archdsl_coreml_{net.name}")
        _save_package(module.convert(weights, precision), output)


def _save_package(model, output: Path) -> None:  # type: ignore[no-untyped-def]
    """An .mlpackage is a directory: build it beside the target, then swap it in."""
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp.mlpackage")  # coremltools wants the suffix
    try:
        model.save(str(tmp))
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
