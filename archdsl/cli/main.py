"""`archdsl` command line: argument parsing only; the work is in `commands.py`.

Exit status: 0 success, 1 a spec error or stale/unformatted files, 2 a usage error.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path

# The CLI process uses no pydantic plugins; skipping their discovery (a scan of every installed
# package's metadata) saves a fifth of the compile time.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from .. import __version__  # noqa: E402
from ..errors import ArchError, ArchErrors, UsageError, escaped  # noqa: E402
from . import commands, search_commands  # noqa: E402
from .arg_types import count, hw, positive, ridges, seed  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archdsl", description="Compile architecture specs to framework code.")
    p.add_argument("--version", action="version", version=f"archdsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("spec", help="spec file (.arch)")
        c.add_argument("--network", help="network to use when the file defines several")
        c.add_argument("--import-root", type=Path, help="directory imports may reach (default: the project root)")
        c.add_argument(
            "--deploy",
            action="store_true",
            help="the inference form: BatchNorm folded into convs, MobileOne branches merged",
        )
        return c

    c = spec_command("compile", "generate framework code for a spec")
    c.add_argument(
        "--backend", default="torch", type=_code_backend, help="torch, keras, coreml or onnx (default: torch)"
    )
    c.add_argument("-o", "--output", help="write here (atomically) instead of stdout")

    c = spec_command("ir", "the resolved network (the IR that cost models and backends read) as JSON")
    c.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    sub.add_parser("schema", help="the JSON Schema of `archdsl ir`'s output (from the pydantic IR)")

    c = spec_command("cost", "params, MACs and memory traffic per block")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "int8"))
    c.add_argument("--profile", help="a latency profile (archdsl calibrate): adds the predicted time of each block")

    c = sub.add_parser("roofline", help="roofline latency per layer, and across hardware (ridge-point sweep)")
    c.add_argument("specs", nargs="+", metavar="spec", help="spec files; the first is the sweep's baseline")
    c.add_argument("--network", help="network to use when a file defines several")
    c.add_argument("--import-root", type=Path, help="directory imports may reach (default: the project root)")
    c.add_argument("--deploy", action="store_true", help="the inference form (BatchNorm folded, branches merged)")
    where = c.add_mutually_exclusive_group()
    where.add_argument(
        "--hardware", help="a built-in profile: pixel6-cpu (default), s23-cpu, pixel4-dsp, pixel8-edgetpu"
    )
    where.add_argument("--profile", help="a hardware profile file (TOML): peak_macs and bandwidth, or ridge")
    where.add_argument("--peak-macs", type=positive, help="peak MACs per second (with --bandwidth)")
    c.add_argument("--bandwidth", type=positive, help="memory bytes per second (with --peak-macs)")
    c.add_argument("--ridge", type=ridges, help="ridge points to sweep, MACs/byte (default: 0,5,20,50,100,200,500)")
    c.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "int8"), help="default: the profile's")
    c.add_argument("--layers", action="store_true", help="one row per layer instead of per block")
    c.add_argument("--json", action="store_true", help="machine-readable output, every layer included")
    c.add_argument("--plot", help="write a figure (.svg or .png): the sweep for several specs, layers for one")

    c = spec_command("bench", "measured batch-1 latency on real runtimes, taking turns in separate processes")
    c.add_argument(
        "--runtime",
        default="torch",
        help="comma-separated: torch, torch-compile, tflite, tflite-int8, onnx, onnx-torch-export (default: torch)",
    )
    c.add_argument("--threads", type=count(1, 256), default=1, help="threads per runtime (default 1)")
    c.add_argument("--rounds", type=count(1, 100_000), default=30, help="timed rounds per runtime (default 30)")
    c.add_argument("--warmup", type=count(0, 100_000), default=5, help="untimed calls first (default 5)")
    c.add_argument("--calls", type=count(1, 10_000), default=1,
                   help="back-to-back calls per round, their median the round's figure (default 1)")  # fmt: skip
    c.add_argument("--per-block", action="store_true", help="also time every block (torch)")
    c.add_argument("--train-form", action="store_true", help="measure the train form (default: the deploy form)")
    c.add_argument("--json", action="store_true", help="machine-readable output, every round included")

    c = sub.add_parser("calibrate", help="measure a latency profile on a real runtime, for archdsl latency")
    c.add_argument("specs", nargs="+", metavar="spec", help="spec files whose layers (and a grid around them) to time")
    c.add_argument("--network", help="network to use when a file defines several")
    c.add_argument("--import-root", type=Path, help="directory imports may reach (default: the project root)")
    c.add_argument("--train-form", action="store_true", help="time the train form's layers (default: the deploy form)")
    c.add_argument("--runtime", default="tflite", help="the runtime to measure (tflite)")
    c.add_argument("--threads", type=count(1, 256), default=1, help="runtime threads (default 1)")
    c.add_argument("--rounds", type=count(1, 10_000), default=7, help="interleaved rounds per unit (default 7)")
    c.add_argument("--calls", type=count(1, 10_000), default=5, help="timed calls per unit per round (default 5)")
    c.add_argument("--warmup", type=count(0, 10_000), default=3, help="untimed calls first, at least 1 (default 3)")
    # (the defaults are runtimes/calibrate.py's ROUNDS, CALLS, WARMUP: a test holds them equal)
    c.add_argument("--no-grid", action="store_true", help="only the specs' own layers, no widened convs")
    c.add_argument("-o", "--output", required=True, help="the profile (JSON); an existing one is completed")

    c = spec_command("latency", "predicted latency and its split over blocks, from a calibrated profile")
    c.add_argument("--profile", required=True, help="a latency profile written by archdsl calibrate")
    c.add_argument("--threads", type=count(1, 256), help="check the profile was measured with this many threads")
    c.add_argument("--train-form", action="store_true", help="predict the train form (default: the deploy form)")
    c.add_argument("--layers", action="store_true", help="one row per layer instead of per block")
    c.add_argument("--json", action="store_true", help="machine-readable output, every layer included")

    c = spec_command("init-weights", "write deterministic random canonical weights")
    c.add_argument("--seed", type=seed, default=0)
    c.add_argument("-o", "--output", required=True, help="safetensors file to write")

    c = spec_command("verify", "run backends on the same weights and input; compare block by block")
    c.add_argument("--backends", default=["torch", "keras"], type=_runners,
                   help="comma-separated: torch, keras, tflite, coreml, onnx; the first is the reference")  # fmt: skip
    c.add_argument("--seed", type=seed, default=0, help="seed of the random weights and input")
    c.add_argument("--weights", help="canonical weights to use instead of random ones")
    c.add_argument("--input", type=hw, help="input size HxW instead of the spec's")
    c.add_argument(
        "--tolerance",
        type=positive,
        help="max |a-b| / max(1, max|ref|) (default 1e-4; --train 1e-5, with --float32 1e-3)",
    )
    c.add_argument("--train", action="store_true",
                   help="compare one training step instead: loss, outputs, gradients, updated weights, BN statistics")  # fmt: skip
    c.add_argument("--batch", type=count(2, 256), default=4, help="--train: batch size (default 4)")
    c.add_argument("--lr", type=positive, default=0.1, help="--train: SGD learning rate (default 0.1)")
    c.add_argument("--float32", action="store_true",
                   help="--train in float32, as training runs (default float64: only semantics can differ)")  # fmt: skip
    c.add_argument("--json", action="store_true", help="the report as JSON (for CI): each pair's figures and verdict")

    c = spec_command("export", "write a deployable model: .tflite, .onnx or .mlpackage")
    c.add_argument("--backend", required=True, choices=("tflite", "onnx", "coreml"))
    c.add_argument("-o", "--output", required=True, help="the model file (a .tflite or .onnx may go to stdout: -o -)")
    c.add_argument("--weights", help="canonical weights (required, unless --random-weights)")
    c.add_argument("--random-weights", action="store_true", help="export random weights (from --seed), to test or time")
    c.add_argument("--seed", type=seed, help="--random-weights: their seed (default 0)")
    c.add_argument("--precision", choices=("fp32", "fp16"), help="CoreML compute precision (default fp32)")
    c.add_argument("--features", action="store_true",
                   help="the backbone: one named output per feature endpoint (`out` in the spec), no head")  # fmt: skip
    c.add_argument("--quantize", choices=("fp16", "dynamic", "int8"),
                   help="tflite: float16 weights, int8 weights (dynamic range), or full-integer int8 (needs --calibration)")  # fmt: skip
    c.add_argument(
        "--calibration", help="int8: a directory of images, or an .npz (uint8 NxHxWxC images or float32 inputs)"
    )
    c.add_argument(
        "--io", choices=("float32", "int8"), default="float32", help="int8: the model's input and output type"
    )
    c.add_argument("--input-type", choices=("tensor", "image"),
                   help="coreml: the input as a normalized tensor (default) or an RGB image (0..255, normalized by the spec's preprocess)")  # fmt: skip
    c.add_argument("--labels", help="coreml: a classifier with these class labels (a file, one per line)")
    c.add_argument("--sizes", help="coreml: the input sizes it takes, e.g. 224,256 or 224x320 (enumerated shapes)")

    c = sub.add_parser(
        "fold-weights", help="fold train-form weights into the deploy form (BatchNorm, MobileOne branches)"
    )
    c.add_argument("spec", help="spec file (.arch)")
    c.add_argument("weights", help="train-form canonical weights (safetensors)")
    c.add_argument("-o", "--output", required=True, help="the deploy-form weights (written atomically)")
    c.add_argument("--network", help="network to use when the file defines several")
    c.add_argument("--import-root", type=Path, help="directory imports may reach (default: the project root)")

    c = spec_command("import-weights", "convert a reference checkpoint to canonical weights")
    c.add_argument("--from", dest="source", required=True, choices=("timm", "efficientnet-pytorch", "mobile-former"),
                   help="whose tensor names it uses: timm's, EfficientNet-PyTorch's (a .pth or .safetensors file), "
                   "or the Mobile-Former authors' (AAboys/MobileFormer)")  # fmt: skip
    c.add_argument("checkpoint", help="safetensors state dict")
    c.add_argument("-o", "--output", required=True)

    c = sub.add_parser("fmt", help="print specs in canonical format")
    c.add_argument("files", nargs="+")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is not canonical")
    mode.add_argument("--write", action="store_true", help="rewrite files in place")
    mode.add_argument("--diff", action="store_true", help="print the unified diff of each file that would change")

    search_commands.add_parsers(sub)
    sub.add_parser("lsp", help="run the language server on standard input and output (for editors)")

    for name, help in (("check", "fail with a diff if generated/ is stale"), ("regen", "rewrite generated/")):
        c = sub.add_parser(name, help=help)
        c.add_argument("--root", default=".", help="project root holding specs/ and generated/")
    return p


def _code_backend(text: str) -> str:
    from ..codegen.registry import names

    if text in names():
        return text
    hint = " (tflite is an export format: archdsl export --backend tflite)" if text == "tflite" else ""
    raise argparse.ArgumentTypeError(f"unknown backend {text!r}; choose from {', '.join(names())}{hint}")


def _runners(text: str) -> list[str]:
    from ..runtimes.runners import RUNNERS

    chosen = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in RUNNERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend {unknown[0]!r}; choose from {', '.join(RUNNERS)}")
    if len(set(chosen)) < 2:
        raise argparse.ArgumentTypeError("verify needs at least two different backends, e.g. torch,keras")
    if len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(f"a backend is named twice in {text!r}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    _closed_streams()
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile":
            return commands.compile_cmd(
                args.spec, args.backend, args.output, args.network, args.import_root, args.deploy
            )
        if args.command == "ir":
            return commands.ir_cmd(args.spec, args.output, args.network, args.import_root, args.deploy)
        if args.command == "schema":
            return commands.schema_cmd()
        if args.command == "cost":
            return commands.cost_cmd(args.spec, args.json, args.dtype, args.network, args.import_root, args.deploy,
                                     args.profile)  # fmt: skip
        if args.command == "calibrate":
            return commands.calibrate_cmd(args.specs, args.output, args.runtime, args.threads, args.rounds, args.calls,
                                          args.warmup, not args.no_grid, not args.train_form, args.network,
                                          args.import_root)  # fmt: skip
        if args.command == "latency":
            if args.train_form and args.deploy:
                raise UsageError(
                    "--train-form and --deploy contradict each other", hint="latency predicts --deploy by default"
                )
            return commands.latency_cmd(args.spec, args.profile, args.threads, not args.train_form, args.layers,
                                        args.json, args.network, args.import_root)  # fmt: skip
        if args.command == "roofline":
            if (args.peak_macs is None) != (args.bandwidth is None):
                raise UsageError("--peak-macs and --bandwidth go together", hint="or name a --hardware or --profile")
            peaks = (args.peak_macs, args.bandwidth) if args.peak_macs is not None else None
            return commands.roofline_cmd(args.specs, args.hardware, args.profile, peaks, args.ridge, args.dtype,
                                         args.json, args.layers, args.plot, args.network, args.import_root,
                                         args.deploy)  # fmt: skip
        if args.command == "bench":
            if args.train_form and args.deploy:
                raise UsageError(
                    "--train-form and --deploy contradict each other", hint="bench measures --deploy by default"
                )
            return commands.bench_cmd(args.spec, args.runtime, args.threads, args.rounds, args.warmup, args.calls,
                                      args.per_block, args.train_form, args.json, args.network,
                                      args.import_root)  # fmt: skip
        if args.command == "init-weights":
            return commands.init_weights_cmd(
                args.spec, args.seed, args.output, args.network, args.import_root, args.deploy
            )
        if args.command == "verify":
            train = (args.batch, args.lr, "float32" if args.float32 else "float64") if args.train else None
            return commands.verify_cmd(args.spec, args.backends, args.seed, args.weights, args.input, args.tolerance,
                                       args.network, args.import_root, args.deploy, train, args.json)  # fmt: skip
        if args.command == "export":
            return commands.export_cmd(args.spec, args.backend, args.output, args.weights, args.seed, args.precision,
                                       args.network, args.import_root, args.deploy, args.features,
                                       (args.quantize, args.calibration, args.io), args.random_weights,
                                       (args.input_type, args.labels, args.sizes))  # fmt: skip
        if args.command == "fold-weights":
            return commands.fold_weights_cmd(args.spec, args.weights, args.output, args.network, args.import_root)
        if args.command == "import-weights":
            return commands.import_weights_cmd(args.spec, args.checkpoint, args.output, args.network, args.import_root,
                                               args.deploy, args.source)  # fmt: skip
        if args.command in search_commands.COMMANDS:
            return search_commands.run(args)
        if args.command == "fmt":
            return commands.fmt_cmd(args.files, args.check, args.write, args.diff)
        if args.command == "check":
            return commands.check_cmd(args.root)
        if args.command == "lsp":
            try:
                from ..lsp.server import serve
            except ImportError as e:
                raise UsageError(f"the language server needs {e.name}", None, "pip install 'archdsl[lsp]'") from None
            return serve()
        return commands.regen_cmd(args.root)
    except UsageError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except (ArchError, ArchErrors) as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        return 0
    except OSError as e:  # an output path that cannot be written
        print(escaped(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")), file=sys.stderr)
        return 1


class _ClosedStream:
    """Stands for a standard stream the caller closed (`archdsl cost x.arch >&-`): writing to it
    is an error with a message, not an AttributeError on None."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed", "<stdout>")

    def flush(self) -> None:
        pass


def _closed_streams() -> None:
    if sys.stdout is None:
        sys.stdout = _ClosedStream()  # type: ignore[assignment]
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like an exception, so every half-written temporary file is removed."""
    raise SystemExit(128 + signum)


def run() -> None:
    """The process entry point: `main`, then exit. Where no framework was loaded, nothing needs
    tearing down (outputs are written and closed by then), so the interpreter's teardown of
    pydantic, Lark and Jinja, a tenth of a compile, is skipped."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C: temporary files are gone by now (see atomic.py)
        print("interrupted", file=sys.stderr)
        code = 128 + signal.SIGINT
    if any(name in sys.modules for name in ("torch", "tensorflow", "keras", "coremltools", "onnxruntime")):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # ValueError: closed already (the language server's exit)
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
