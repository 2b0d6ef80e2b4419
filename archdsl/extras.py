"""The optional dependencies (pip extras) that commands need beyond the compiler itself, and the
usage error that names the extra to install when one is missing, before anything imports it."""

from __future__ import annotations

from importlib.util import find_spec

from .errors import UsageError

# module -> the extra that installs it
EXTRAS = {
    "torch": "torch",
    "tensorflow": "keras",
    "keras": "keras",
    "coremltools": "coreml",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "safetensors": "torch",
    "numpy": "torch",
    "matplotlib": "plot",
}

# what runs each backend's code, or each runtime: the modules it imports
RUNTIME_MODULES = {
    "torch": ("torch", "safetensors"),
    "torch-compile": ("torch", "safetensors"),
    "keras": ("tensorflow", "keras", "safetensors"),
    "tflite": ("tensorflow", "keras", "safetensors"),
    "tflite-int8": ("tensorflow", "keras", "safetensors"),
    "coreml": ("coremltools", "safetensors"),
    "onnx": ("onnx", "onnxruntime", "safetensors"),
    "onnx-torch-export": ("torch", "onnx", "onnxruntime", "safetensors"),
}


def require(modules: tuple[str, ...], what: str) -> None:
    """A usage error naming the extra to install if one of `modules` is not installed."""
    for module in modules:
        if find_spec(module) is None:
            extra = EXTRAS[module]
            raise UsageError(f"{what} needs {module}, which is not installed", None, f"pip install 'archdsl[{extra}]'")
