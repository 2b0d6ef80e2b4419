"""Backends by name, imported only when asked for, so `import archdsl` stays light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UsageError, did_you_mean

if TYPE_CHECKING:  # the command line reads `names()` without loading Jinja and the IR
    from .base import Backend

_BACKENDS = {
    "torch": "archdsl.codegen.torch:TorchBackend",
    "keras": "archdsl.codegen.keras:KerasBackend",
    "coreml": "archdsl.codegen.coreml:CoreMLBackend",
    "onnx": "archdsl.codegen.onnx:OnnxBackend",
}


def names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise UsageError(f"unknown backend '{name}'", None, did_you_mean(name, _BACKENDS))
    module, cls = _BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()  # type: ignore[no-any-return]
