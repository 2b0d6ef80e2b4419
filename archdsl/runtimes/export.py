"""`archdsl export`: deployable model files from generated code and canonical weights, written
so that nothing half-made is ever left at the output path."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Iterable

from ..atomic import require_text, temporary_name, write_atomic
from ..codegen.registry import get_backend
from ..errors import ArchError, UsageError
from ..ir.network import Network
from .runners import load_module, runner


def export(net: Network, backend: str, weights: str, output: Path, precision: str = "fp32",
           features: bool = False) -> None:  # fmt: skip
    """`features`: the backbone, one output per endpoint, named as the endpoint."""
    build = {"features_only": True} if features else {}
    runner("keras" if backend == "tflite" else backend)  # quiets TensorFlow before it loads
    with warnings.catch_warnings():
        # coremltools leaves a temporary directory to the garbage collector; other warnings show
        warnings.simplefilter("ignore", ResourceWarning)
        if backend == "tflite":
            from .runners.tflite_runner import convert

            module = load_module(get_backend("keras").emit(net), f"archdsl_keras_{net.name}")
            write_atomic(output, convert(module.load_weights(module.build_model(**build), weights)))
            return
        module = load_module(get_backend("coreml").emit(net), f"archdsl_coreml_{net.name}")
        _save_package(module.convert(weights, precision, **build), output)


def check_package_output(output: str, inputs: Iterable[str | Path] = ()) -> Path:
    """An `.mlpackage` output: a new path, or an ML package (which is replaced). Anything else
    that exists there, a user's directory above all, and a package holding one of the command's
    `inputs`, is refused before any work."""
    require_text(output)
    path = Path(output.rstrip("/" + os.sep) or output)  # `-o m.mlpackage/`, as a shell completes it
    if path.name in ("", ".", ".."):
        raise UsageError(
            f"the output path {output!r} names a directory", hint="give a package name, e.g. -o model.mlpackage"
        )
    if path.is_symlink():
        raise ArchError(f"refusing to replace {output!r}: it is a symbolic link", hint="give the package's own path")
    if path.exists() and not is_ml_package(path):
        raise ArchError(
            f"refusing to replace {output!r}: it exists and is not an ML package",
            hint="choose a new path; archdsl replaces only an .mlpackage (a folder of Manifest.json and Data/)",
        )
    if path.exists():
        inside = [str(given) for given in inputs if Path(given).resolve().is_relative_to(path.resolve())]
        if inside:
            raise ArchError(f"refusing to replace {output!r}: it holds the input file {inside[0]!r}",
                            hint="move the input out of the package, or choose another output path")  # fmt: skip
    return path


def is_ml_package(path: Path) -> bool:
    """A directory laid out as CoreML writes an ML package: `Manifest.json` naming its items, and
    `Data/`, and nothing else."""
    import json

    if path.is_symlink() or not path.is_dir() or {p.name for p in path.iterdir()} != {"Manifest.json", "Data"}:
        return False
    try:
        manifest = json.loads((path / "Manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "itemInfoEntries" in manifest and (path / "Data").is_dir()


def _save_package(model, output: Path) -> None:  # type: ignore[no-untyped-def]
    """An .mlpackage is a directory: build it beside the target, move the old one aside, swap
    the new one in, then remove the old one; on failure the old package is put back."""
    check_package_output(str(output))  # again: the path may have changed during the conversion
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(output.parent, ".mlpackage")  # coremltools wants the suffix
    old = temporary_name(output.parent, ".old.mlpackage")
    try:
        model.save(str(tmp))
        if output.exists():
            os.rename(output, old)
            try:
                os.rename(tmp, output)
            except BaseException:
                os.rename(old, output)
                raise
        else:
            os.rename(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
