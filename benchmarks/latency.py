"""Latency of generated PyTorch models on CPU at batch 1: the train form, the `--deploy` form
(BatchNorm folded, MobileOne branches merged) and `torch.compile` of the deploy form, measured
alternately in one run (round-robin, so machine load hits all alike), medians compared.

    python benchmarks/latency.py [--specs mnv4_conv_s,mnv4_conv_m,mnv3_large,mobileone_s0]
                                 [--rounds 30] [--threads 2]

Every form runs on the same canonical weights (the deploy form on the folded ones) and is
checked to give the train form's logits before it is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.codegen.registry import get_backend  # noqa: E402
from archdsl.compiler import compile_file  # noqa: E402
from archdsl.ir.deploy_form import deploy_form, deploy_weights  # noqa: E402
from archdsl.runtimes.weights import init_weights, save_weights  # noqa: E402


def _load(net, weights: dict, tmp: Path, name: str) -> torch.nn.Module:
    path = tmp / f"{name}.py"
    path.write_text(get_backend("torch").emit(net))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_weights(weights, tmp / f"{name}.safetensors")
    return module.load_weights(module.build_model(), str(tmp / f"{name}.safetensors")).eval()


def _forms(spec: str, tmp: Path) -> dict[str, torch.nn.Module]:
    train = compile_file(ROOT / "specs" / f"{spec}.arch")
    weights = init_weights(train, 0)
    deploy = _load(deploy_form(train), deploy_weights(train, weights), tmp, f"{spec}_deploy")
    return {
        "train": _load(train, weights, tmp, f"{spec}_train"),
        "deploy": deploy,
        "compiled": torch.compile(deploy, fullgraph=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="mnv4_conv_s,mnv4_conv_m,mnv3_large,mobileone_s0")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, medians of {args.rounds} rounds")
    print(f"{'spec':<14} {'input':>7} {'train ms':>9} {'deploy ms':>10} {'compiled ms':>12} "
          f"{'train/deploy':>13} {'deploy/compiled':>16}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for spec in args.specs.split(","):
            forms = _forms(spec, Path(tmp))
            c, h, w = compile_file(ROOT / "specs" / f"{spec}.arch").input_shape
            x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, c, h, w), dtype=np.float32))
            ref = forms["train"](x)
            for name, model in forms.items():  # warm up (compiles) and check every form's logits
                for _ in range(3):
                    out = model(x)
                err = float((out - ref).abs().max() / ref.abs().max().clamp(min=1))
                assert err < 1e-4, f"{spec} {name}: logits differ from the train form by {err:.2e}"
            times: dict[str, list[float]] = {name: [] for name in forms}
            for _ in range(args.rounds):
                for name, model in forms.items():
                    start = time.perf_counter()
                    model(x)
                    times[name].append(time.perf_counter() - start)
            ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
            print(f"{spec:<14} {h:>3}x{w:<3} {ms['train']:>9.2f} {ms['deploy']:>10.2f} {ms['compiled']:>12.2f} "
                  f"{ms['train'] / ms['deploy']:>13.2f} {ms['deploy'] / ms['compiled']:>16.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
