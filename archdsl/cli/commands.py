"""What each `archdsl` subcommand does, given parsed arguments; `cli.py` only parses them."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtimes.export import Quantization

from ..atomic import check_output, write_atomic
from ..compiler import compile_file
from ..errors import ArchError, UsageError, did_you_mean
from ..extras import RUNTIME_MODULES, require


def _inputs(spec: str, root: Path | None) -> list[Path]:
    """The files a command on `spec` reads: the spec and every file it imports (an output path
    must never name one of them)."""
    from ..language.loader import display_path, load_file

    return [Path(spec), *(Path(display_path(p)) for p in sorted(load_file(spec, root).loaded))]


def compile_cmd(spec: str, backend: str, output: str | None, network: str | None, root: Path | None = None,
                deploy: bool = False) -> int:  # fmt: skip
    from ..codegen.registry import get_backend

    out = check_output(output, _inputs(spec, root)) if output is not None else None
    code = get_backend(backend).emit(compile_file(spec, network, root, deploy=deploy))
    if out is not None:
        write_atomic(out, code)
    else:
        sys.stdout.write(code)
    return 0


def ir_cmd(spec: str, output: str | None, network: str | None, root: Path | None = None, deploy: bool = False) -> int:
    """The resolved network as JSON: what cost models and backends read (`archdsl schema` says its form)."""
    import json

    out = check_output(output, _inputs(spec, root)) if output is not None else None
    text = json.dumps(compile_file(spec, network, root, deploy=deploy).model_dump(mode="json"), indent=2) + "\n"
    if out is not None:
        write_atomic(out, text)
    else:
        sys.stdout.write(text)
    return 0


def schema_cmd() -> int:
    """The JSON Schema of `archdsl ir`'s output, from the pydantic IR itself."""
    import json

    from ..ir.network import Network

    schema = Network.model_json_schema(mode="serialization")
    sys.stdout.write(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, indent=2) + "\n")
    return 0


def cost_cmd(spec: str, as_json: bool, dtype: str, network: str | None, root: Path | None = None,
             deploy: bool = False, profile: str | None = None) -> int:  # fmt: skip
    import json

    from ..analysis.report import cost_json, cost_table

    net = compile_file(spec, network, root, deploy=deploy)
    latency, note = None, ""
    if profile is not None:
        from ..analysis.latency import Predictor, read_profile

        prof = read_profile(profile)
        latency = Predictor(prof).network(net)
        form = "deploy" if deploy else "train (TFLite runs the deploy form: --deploy)"
        note = f"pred. ms: predicted per call from {profile} ({prof.runtime}, {prof.threads} thread(s)), {form} form\n"
    out = json.dumps(cost_json(net, dtype, latency), indent=2) + "\n" if as_json else cost_table(net, dtype, latency)
    sys.stdout.write(out + ("" if as_json else note))
    return 0


def calibrate_cmd(specs: list[str], output: str, runtime: str, threads: int, rounds: int, calls: int, warmup: int,
                  grid: bool, deploy: bool, network: str | None, root: Path | None) -> int:  # fmt: skip
    from ..runtimes.calibrate import RUNTIMES, calibrate

    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime '{runtime}'", None, did_you_mean(runtime, RUNTIMES))
    require(RUNTIME_MODULES[runtime], f"calibrating on {runtime}")
    if output == "-":  # the profile is read back to resume: it must be a file
        raise UsageError("calibrate writes a profile it resumes from: -o needs a file", hint="-o profile.json")
    path = check_output(output, [p for s in specs for p in _inputs(s, root)])
    nets = [compile_file(s, network, root, deploy=deploy) for s in specs]
    profile, measured = calibrate(nets, path, runtime, threads, rounds, calls, warmup, grid, sys.stderr.isatty())
    print(f"wrote {output}: {len(profile.entries)} units ({measured} measured now), {len(profile.networks)} "
          f"network(s) measured whole; {runtime}, {threads} thread(s)", file=sys.stderr)  # fmt: skip
    return 0


def latency_cmd(spec: str, profile: str, threads: int | None, deploy: bool, per_layer: bool, as_json: bool,
                network: str | None, root: Path | None) -> int:  # fmt: skip
    import json

    from ..analysis.latency import Predictor, read_profile
    from ..analysis.latency_report import report_json, report_text

    prof = read_profile(profile)
    if threads is not None and threads != prof.threads:
        raise ArchError(f"{profile}: measured with {prof.threads} thread(s), not {threads}",
                        hint=f"calibrate with --threads {threads}")  # fmt: skip
    net = compile_file(spec, network, root, deploy=deploy)
    predicted = Predictor(prof).network(net)
    form = "deploy" if deploy else "train"
    if as_json:
        sys.stdout.write(json.dumps(report_json(net, prof, predicted, form), indent=2) + "\n")
    else:
        sys.stdout.write(report_text(net, prof, predicted, form, per_layer))
    return 0


def roofline_cmd(specs: list[str], hardware: str | None, profile: str | None, peaks: tuple[float, float] | None,
                 ridges: list[float] | None, dtype: str | None, as_json: bool, per_layer: bool, plot: str | None,
                 network: str | None, root: Path | None = None, deploy: bool = False) -> int:  # fmt: skip
    import json

    from ..analysis import hardware as hw_profiles
    from ..analysis.roofline import report_json, report_text

    if plot is not None:
        check_output(plot, [p for s in specs for p in _inputs(s, root)])
        if not plot.endswith((".svg", ".png")):
            raise UsageError(f"cannot tell the plot format of {plot!r}", hint="name a .svg or .png file")
        require(("matplotlib",), "a roofline plot")
    if profile is not None:
        hw = hw_profiles.load_profile(profile)
    elif peaks is not None:
        hw = hw_profiles.from_peaks(*peaks, dtype or "float32")
    else:
        hw = hw_profiles.builtin(hardware or "pixel6-cpu")
    dtype = dtype or hw.dtype
    nets = [compile_file(s, network, root, deploy=deploy) for s in specs]
    sweep = ridges or list(hw_profiles.DEFAULT_RIDGES)
    if as_json:
        sys.stdout.write(json.dumps(report_json(nets, hw, sweep, dtype), indent=2) + "\n")
    else:
        sys.stdout.write(report_text(nets, hw, sweep, dtype, per_layer))
    if plot is not None:
        from ..analysis.roofline_plot import layers_figure, sweep_figure

        fmt = plot.rsplit(".", 1)[1]
        image = sweep_figure(nets, dtype, fmt) if len(nets) > 1 else layers_figure(nets[0], dtype, fmt)
        write_atomic(Path(plot), image)
    return 0


def bench_cmd(spec: str, runtimes: str, threads: int, rounds: int, warmup: int, calls: int, per_block: bool,
              train_form: bool, as_json: bool, network: str | None, root: Path | None = None) -> int:  # fmt: skip
    import json

    from ..runtimes.bench import bench, parse_runtimes, report_json, report_text
    from ..runtimes.weights import init_weights, save_weights

    chosen = parse_runtimes(runtimes)
    net = compile_file(spec, network, root, deploy=not train_form)
    form = "train" if train_form else "deploy"
    with tempfile.TemporaryDirectory(prefix="archdsl-") as tmp:
        weights = str(Path(tmp) / "weights.safetensors")
        save_weights(init_weights(net, 0), weights)
        timings = bench(net, weights, chosen, threads, rounds, warmup, per_block, sys.stderr.isatty(), calls)
    if as_json:
        sys.stdout.write(json.dumps(report_json(net, timings, threads, form, calls), indent=2) + "\n")
    else:
        sys.stdout.write(report_text(net, timings, threads, form))
    return 0


def _weights(spec: str, network: str | None, root: Path | None, deploy: bool, seed: int = 0,
             given: str | None = None, imported: tuple[str, str] | None = None) -> dict:  # fmt: skip
    """Canonical weights of the spec's network: given (in either form), imported (layout, checkpoint
    path), or random from `seed`; folded into the deploy form when asked."""
    from ..runtimes.weights import fold_checked, init_weights, load_canonical

    net = compile_file(spec, network, root)
    if given is not None:
        weights, form = load_canonical(given, net, deploy, spec)
        if deploy:
            done = "folded into the deploy form" if form == "train" else "used as they are"
            print(f"note: {given} holds the {form} form of {net.name}: {done}", file=sys.stderr)
        return weights
    if imported is not None and imported[0] == "efficientnet-pytorch":
        from ..runtimes.importers.efficientnet_pytorch import import_efficientnet_pytorch, read

        state, dtypes = read(imported[1])
        source = f"checkpoint {imported[1]!r}"
        weights = import_efficientnet_pytorch(net, state, dtypes, source)
    elif imported is not None and imported[0] == "mobile-former":
        from ..runtimes.importers.mobile_former import import_mobile_former
        from ..runtimes.importers.timm import read_checkpoint

        state, dtypes, _ = read_checkpoint(imported[1])
        weights = import_mobile_former(net, state, dtypes, source := f"checkpoint {imported[1]!r}")
    elif imported is not None:
        from ..runtimes.importers.timm import import_timm, read_checkpoint

        state, dtypes, widened = read_checkpoint(imported[1])
        if widened:
            print(f"note: {imported[1]}: {widened} float16/bfloat16/float64 tensor(s) converted to float32",
                  file=sys.stderr)  # fmt: skip
        source = f"checkpoint {imported[1]!r}"
        weights = import_timm(net, state, dtypes, source)
    else:
        weights, source = init_weights(net, seed), f"random weights (seed {seed})"
    return fold_checked(net, weights, source) if deploy else weights


def _save(
    weights: dict, output: str, spec: str, network: str | None, root: Path | None, deploy: bool, **meta: str
) -> None:
    from ..runtimes.weights import save_weights

    net = compile_file(spec, network, root, deploy=deploy)
    save_weights(weights, output, {"network": net.name, "source_hash": net.source_hash, "deploy": str(deploy), **meta})


def init_weights_cmd(spec: str, seed: int, output: str, network: str | None, root: Path | None = None,
                     deploy: bool = False) -> int:  # fmt: skip
    check_output(output, _inputs(spec, root))
    _save(_weights(spec, network, root, deploy, seed=seed), output, spec, network, root, deploy, seed=str(seed))
    return 0


def fold_weights_cmd(spec: str, weights: str, output: str, network: str | None, root: Path | None = None) -> int:
    """Train-form weights (from either framework's `save_weights`, `init-weights` or
    `import-weights`) folded into the deploy form: BatchNorm into each conv, MobileOne's branches
    merged, in float64."""
    check_output(output, [*_inputs(spec, root), weights])
    folded = _weights(spec, network, root, True, given=weights)
    _save(folded, output, spec, network, root, True, source=f"folded from {Path(weights).name}")
    print(f"wrote {output}: {len(folded)} tensors (the deploy form)", file=sys.stderr)
    return 0


def import_weights_cmd(spec: str, checkpoint: str, output: str, network: str | None, root: Path | None = None,
                       deploy: bool = False, layout: str = "timm") -> int:  # fmt: skip
    check_output(output, [*_inputs(spec, root), checkpoint])
    weights = _weights(spec, network, root, deploy, imported=(layout, checkpoint))
    _save(weights, output, spec, network, root, deploy, source=layout)
    print(f"wrote {output}: {len(weights)} tensors", file=sys.stderr)
    return 0


def verify_cmd(spec: str, backends: list[str], seed: int, weights: str | None, size: tuple[int, int] | None,
               tolerance: float | None, network: str | None, root: Path | None = None, deploy: bool = False,
               train: tuple[int, float, str] | None = None, as_json: bool = False) -> int:  # fmt: skip
    """Inference compared block by block, or (`train`: batch size, learning rate, dtype) one training step;
    `as_json`: the reports as JSON."""
    from ..runtimes.runners import train_step
    from ..runtimes.verify import report_text, verify
    from ..runtimes.verify_train import train_report_text, verify_train
    from ..runtimes.weights import save_weights

    if len(backends) < 2:
        raise ArchError("verify needs at least two backends", None, "e.g. --backends torch,keras")
    if train is not None:
        for name in backends:
            train_step(name)  # refuses, with a hint, a backend that cannot train
    net = compile_file(spec, network, root, resolution=size, deploy=deploy)
    if train is not None and net.dense_head is not None:
        raise UsageError(f"verify --train takes a step of cross-entropy on a classifier's logits: {net.name} has a "
                         f"dense-prediction head ({net.dense_head.kind})", None,
                         "verify its inference (without --train); its backbone trains as the classifiers' do")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "weights.safetensors")
        save_weights(_weights(spec, network, root, deploy, seed=seed, given=weights), path)
        if train is None:
            tolerance = tolerance or 1e-4
            pairs = verify(net, backends, path, seed, tolerance)
            text = (
                _reports_json(net, pairs, tolerance) if as_json else report_text(net, pairs, tolerance, weights, seed)
            )
            sys.stdout.write(text)
            return 0 if all(r.ok for r in pairs) else 1
        source = weights or f"random canonical weights (seed {seed})"
        default = 1e-5 if train[2] == "float64" else 1e-3
        steps = verify_train(net, backends, path, seed, tolerance or default, *train)
        sys.stdout.write(_reports_json(net, steps, tolerance or default) if as_json else
                         train_report_text(net, steps, *train, source))  # fmt: skip
    return 0 if all(r.ok for r in steps) else 1


def _reports_json(net: Any, reports: list[Any], tolerance: float) -> str:
    """verify's reports as JSON, for CI: every pair's figures and verdict; a NaN or infinite
    figure (a backend that produced one) is null."""
    import dataclasses
    import json
    import math

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    pairs = [{**clean(dataclasses.asdict(r)), "ok": r.ok} for r in reports]
    document = {"network": net.name, "tolerance": tolerance, "ok": all(r.ok for r in reports), "pairs": pairs}
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def export_cmd(spec: str, backend: str, output: str, weights: str | None, seed: int | None, precision: str | None,
               network: str | None, root: Path | None = None, deploy: bool = False,
               features: bool = False, quantize: tuple[str | None, str | None, str] = (None, None, "float32"),
               random_weights: bool = False,
               deploy_options: tuple[str | None, str | None, str | None] = (None, None, None)) -> int:  # fmt: skip
    from ..runtimes.export import check_package_output, export
    from ..runtimes.weights import save_weights

    quantization = _quantization(backend, *quantize)
    input_type, labels, sizes = deploy_options
    given = [flag for flag, value in zip(("--input-type", "--labels", "--sizes"), deploy_options, strict=True) if value]
    if given and backend != "coreml":
        raise UsageError(f"{given[0]} is for CoreML models", hint="use it with --backend coreml")
    if precision is not None and backend != "coreml":
        raise UsageError("--precision is CoreML's compute precision", hint="for tflite: --quantize fp16")
    if output == "-" and backend == "coreml":
        raise UsageError("an .mlpackage is a directory: it cannot go to stdout", hint="give -o NAME.mlpackage")
    if weights and (random_weights or seed is not None):
        raise UsageError("--weights and --random-weights/--seed exclude each other", hint="keep one of them")
    inputs: list[str | Path] = [*_inputs(spec, root), *([weights] if weights else [])]
    out = None if output == "-" else (check_package_output(output, inputs) if backend == "coreml"
                                      else check_output(output, inputs))  # fmt: skip
    if weights is None and not random_weights:  # a model with random weights, shipped by mistake, is no model
        raise ArchError("export needs the model's weights: --weights W",
                        hint="make W with archdsl import-weights (a checkpoint), init-weights, or a trained model's "
                             "save_weights; --random-weights (with --seed N) exports random ones, to test or time")  # fmt: skip
    net = compile_file(spec, network, root, deploy=deploy)
    if features and not net.endpoints:
        raise UsageError(f"{net.name} has no feature endpoints to export",
                         hint="mark blocks or stages `out` in the spec (docs/backbones.md)")  # fmt: skip
    coreml = _coreml_options(net, input_type == "image", labels, sizes, features)
    resized = {size: compile_file(spec, network, root, resolution=size, deploy=deploy) for size in coreml.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "weights.safetensors")
        save_weights(_weights(spec, network, root, deploy, seed=seed or 0, given=weights), path)
        for line in export(net, backend, path, out, precision or "fp32", features, quantization, coreml, resized):
            print(line, file=sys.stderr)
    return 0


def _coreml_options(net: Any, image: bool, labels: str | None, sizes: str | None, features: bool) -> Any:
    from ..runtimes.coreml_deploy import CoreMLOptions, parse_sizes, read_labels

    if image and net.input_shape[0] not in (1, 3):
        raise UsageError(f"--input-type image: {net.name} takes {net.input_shape[0]} channels, an image 3 (RGB) or 1",
                         hint="leave the input a tensor (--input-type tensor)")  # fmt: skip
    if labels and (features or net.dense_head is not None):
        what = "its backbone" if features else f"its {net.dense_head.kind} head"
        raise UsageError(f"--labels makes a classifier: {net.name}'s export is {what}", hint="leave out --labels")
    return CoreMLOptions(image, read_labels(labels, net.classes) if labels else None,
                         parse_sizes(sizes) if sizes else ())  # fmt: skip


def _quantization(backend: str, mode: str | None, calibration: str | None, io: str) -> Quantization | None:
    """`export`'s quantization options, checked together before any work."""
    from ..runtimes.export import Quantization

    if mode is None:
        if calibration or io != "float32":
            raise UsageError("--calibration and --io go with --quantize int8", hint="add --quantize int8")
        return None
    if backend != "tflite":
        raise UsageError(
            f"--quantize is for tflite; {backend} exports float32"
            + (", or --precision fp16" if backend == "coreml" else ""),
            hint="--backend tflite --quantize ...",
        )
    if mode == "int8" and not calibration:
        raise UsageError("--quantize int8 calibrates on images: give --calibration DIR (or FILE.npz)")
    if mode != "int8" and (calibration or io != "float32"):
        raise UsageError(f"--calibration and --io go with --quantize int8, not {mode}")
    return Quantization(mode, calibration, io)


def fmt_cmd(files: list[str], check: bool, write: bool, diff: bool = False) -> int:
    from ..language.fmt import format_module
    from ..language.loader import read_spec
    from ..language.syntax import parse

    changed = []
    for name in files:
        path = Path(name)
        text = read_spec(path)
        out = format_module(parse(text, name))
        if not (check or write or diff):
            sys.stdout.write(out)  # every file, in argument order
        if out == text:
            continue
        changed.append(name)
        if write:
            write_atomic(path, out)
        if diff:
            sys.stdout.write(_unified_diff(name, text, out))
    if check and changed:
        for name in changed:
            print(f"{name}: not in canonical format (run: archdsl fmt --write {name})", file=sys.stderr)
        return 1
    if diff and changed:
        print(f"{len(changed)} file(s) not in canonical format (run: archdsl fmt --write FILE...)", file=sys.stderr)
        return 1
    return 0


def _unified_diff(name: str, text: str, out: str) -> str:
    """`--- a/NAME` / `+++ b/NAME` and the hunks that turn `text` into `out`, as `git diff`, ruff
    and black print them (a last line without a newline is marked, so the diff applies)."""
    import difflib
    import re

    def split(t: str) -> list[str]:  # at "\n" only: a "\r" or "\f" is part of its line, as in git
        return re.findall(r"[^\n]*\n|[^\n]+$", t)

    lines = difflib.unified_diff(split(text), split(out), f"a/{name}", f"b/{name}")
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines)


def check_cmd(root: str) -> int:
    from .generated_tree import stale

    diffs = stale(Path(root))
    if diffs:
        sys.stdout.write("".join(diffs))
        print(f"\n{len(diffs)} generated file(s) are stale; refresh with: archdsl regen", file=sys.stderr)
        return 1
    print("generated/ is up to date", file=sys.stderr)
    return 0


def regen_cmd(root: str) -> int:
    from .generated_tree import regen

    written, removed = regen(Path(root))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    for path in removed:
        print(f"removed {path} (no spec generates it)", file=sys.stderr)
    return 0
