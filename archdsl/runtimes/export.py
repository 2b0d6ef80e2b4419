"""`archdsl export`: deployable model files from generated code and canonical weights, written
so that nothing half-made is ever left at the output path."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from ..atomic import require_text, temporary_name, write_atomic
from ..codegen.registry import get_backend
from ..errors import ArchError, UsageError
from ..ir.network import Network
from .coreml_deploy import NO_DEPLOY_OPTIONS, CoreMLOptions, check_model, check_sizes
from .runners import load_module, runner, stdout_to_stderr


@dataclass(frozen=True)
class Quantization:
    """How `export --backend tflite` quantizes (`quantize.MODES`), on what it calibrates (int8),
    and the type of the model's input and output (int8 models)."""

    mode: str
    calibration: str | None = None
    io: str = "float32"


def export(net: Network, backend: str, weights: str, output: Path | None, precision: str = "fp32",
           features: bool = False, quantization: Quantization | None = None,
           coreml: CoreMLOptions = NO_DEPLOY_OPTIONS, resized: dict[tuple[int, int], Network] | None = None) -> list[str]:  # fmt: skip
    """Write the model to `output` (None: a .tflite to stdout). `features`: the backbone, one
    output per endpoint, named as the endpoint; `coreml`: an ML package's deployment options,
    `resized` the network at each of their sizes. Returns what there is to report of the model (a
    quantized model's ops, how it agrees with float32, what checked it), its last line what was
    written."""
    build = {"features_only": True} if features else {}
    runner("keras" if backend == "tflite" else backend)  # quiets TensorFlow before it loads
    with warnings.catch_warnings(), stdout_to_stderr():
        # coremltools leaves a temporary directory to the garbage collector; other warnings show
        warnings.simplefilter("ignore", ResourceWarning)
        report: list[str] = []
        if backend == "tflite":
            from .runners.tflite_runner import convert

            module = load_module(get_backend("keras").emit(net), f"archdsl_keras_{net.name}")
            if quantization is not None and quantization.mode == "int8":
                from .quantize import unfuse_hard_swish

                unfuse_hard_swish(module)
            model = module.load_weights(module.build_model(**build), weights)
            if quantization is None:
                model_bytes, kind = convert(model), "TFLite float32"
            else:
                model_bytes, report = _quantized(
                    net, model, quantization, logits=not features and net.dense_head is None
                )
                kind = (
                    "TFLite "
                    + quantization.mode
                    + (f", {quantization.io} input and output" if quantization.mode == "int8" else "")
                )
        elif backend == "onnx":
            model_bytes, kind = _onnx(net, weights, features)
        else:
            assert output is not None, "an ML package is a directory: it cannot go to stdout"
            model, checked = _coreml(net, weights, precision, build, coreml, resized or {})
            _save_package(model, output)
            size = sum(f.stat().st_size for f in output.rglob("*") if f.is_file())
            kind = ", ".join(["ML Program", precision, *(["backbone"] if features else []), *coreml.described()])
            return [checked, f"wrote {output} ({size:,} bytes; {kind})"]
    if output is None:
        sys.stdout.buffer.write(model_bytes)
        sys.stdout.flush()
    else:
        write_atomic(output, model_bytes)
    where = "stdout" if output is None else str(output)
    return [*report, f"wrote {where} ({len(model_bytes):,} bytes; {kind}{', backbone' if features else ''})"]


def _coreml(net: Network, weights: str, precision: str, build: dict, options: CoreMLOptions,
            resized: dict[tuple[int, int], Network]) -> tuple[Any, str]:  # fmt: skip
    """The converted model, checked against the fp32 program at every input size it takes."""
    code = get_backend("coreml").emit(net)
    spec_size = (net.input_shape[1], net.input_shape[2])
    codes = {spec_size: code} | {size: get_backend("coreml").emit(n) for size, n in resized.items()}
    check_sizes(codes, spec_size)
    module = load_module(code, f"archdsl_coreml_{net.name}")
    model = module.convert(weights, precision, **build, **options.convert_args())
    programs = {size: partial(_build, codes[size], weights, build) for size in options.sizes or (spec_size,)}
    return model, check_model(model, programs, net, precision, options, bool(build))


def _build(code: str, weights: str, build: dict) -> Any:
    return load_module(code, "archdsl_coreml_sized").build_program(weights, **build)


def _onnx(net: Network, weights: str, features: bool) -> tuple[bytes, str]:
    """The serialized ONNX model, checked by onnx's checker with full shape inference, and its kind."""
    import onnx

    module = load_module(get_backend("onnx").emit(net), f"archdsl_onnx_{net.name}")
    model = module.build_model(weights, features_only=True) if features else module.build_model(weights)
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString()), f"ONNX opset {module.OPSET}, float32, checked"


def _quantized(net: Network, model, q: Quantization, logits: bool) -> tuple[bytes, list[str]]:  # type: ignore[no-untyped-def]
    """The quantized model and its report (with `logits`, how it agrees with float32 on the
    calibration images); an int8 model with a float op left is refused."""
    from . import quantize
    from .runners.tflite_runner import convert

    originals, samples = quantize.calibration_inputs(q.calibration, net) if q.calibration else ([], [])
    model_bytes, folded = quantize.convert(model, q.mode, samples, q.io)
    ops = quantize.op_report(model_bytes)
    report = [f"{q.mode}: {ops.text(q.mode)}", *([folded] if folded else [])]
    if q.mode == "int8" and ops.float_ops:
        raise ArchError(f"the int8 model computes in float: {'; '.join(ops.float_ops[:5])}",
                        hint="an op TFLite cannot quantize; nothing was written")  # fmt: skip
    if originals and logits:
        reference = quantize.run(convert(model), originals)
        report.append(quantize.agreement(reference, quantize.run(model_bytes, originals)).text())
    return model_bytes, report


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
