"""Latency of generated PyTorch models on CPU at batch 1, every form measured alternately in one
run (round-robin in a rotating order, so machine load and caches hit all alike), medians compared:

- `train`: the train form, eager; `train+cl`: the same built with `build_model(channels_last=True)`;
- `deploy`: the `--deploy` form (BatchNorm folded, MobileOne branches merged), eager;
  `deploy+cl`: the same in channels_last;
- `compiled`: `torch.compile` of the deploy form, set for inference (`COMPILE_CONFIG`);
  `compiled+cl`: the same of `deploy+cl`;
- `hand` (MobileOne specs): a hand-written deploy network of the same shape, written here in
  the style of timm's reparameterized MobileOne: one conv and its ReLU per block, stages in
  `nn.Sequential`.

Goals (issue 17): deploy / train <= 0.85 on the conv specs, compiled / train <= 0.5, MobileOne
deploy / hand <= 1.0; channels_last is kept only where it wins.

    python benchmarks/latency.py [--specs mnv4_conv_s,mnv4_conv_m,mnv3_large,mobileone_s0]
                                 [--rounds 30] [--threads 2]

Every form runs on the same canonical weights (the deploy forms and `hand` on the folded ones)
and is checked to give the train form's logits before it is timed.
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
import torch._inductor.config
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.blocks.mobileone import MobileOneBlock  # noqa: E402
from archdsl.codegen.registry import get_backend  # noqa: E402
from archdsl.compiler import compile_file  # noqa: E402
from archdsl.ir.deploy_form import deploy_form, deploy_weights  # noqa: E402
from archdsl.ir.network import Network  # noqa: E402
from archdsl.runtimes.weights import init_weights, save_weights  # noqa: E402

Weights = dict[str, np.ndarray]
# Inductor for inference: weights frozen into constants (prepacked for oneDNN, each conv fused
# with its activation), the graph called from C++, GEMM kernels autotuned. Set in the global
# config: `torch.compile(options={"freezing": True})` compiles without freezing (torch 2.13).
COMPILE_CONFIG = {"freezing": True, "cpp_wrapper": True, "max_autotune": True}


class HandBlock(nn.Module):
    """A reparameterized MobileOne block as one writes it by hand: conv -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class HandMobileOne(nn.Module):
    """Stem, stages of HandBlocks, global average pool, linear classifier."""

    def __init__(self, stages: list[list[HandBlock]], features: int, classes: int) -> None:
        super().__init__()
        self.stages = nn.Sequential(*(nn.Sequential(*blocks) for blocks in stages))
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(x).mean((2, 3)))


def _hand_mobileone(deploy: Network, weights: Weights) -> nn.Module:
    """The hand-written network of the deploy form's shape, loaded with its weights."""
    stages, state = [], {}
    for i, stage in enumerate([deploy.stem, *deploy.stages]):
        blocks = []
        for j, block in enumerate(stage.blocks):
            assert isinstance(block, MobileOneBlock) and block.merged and block.se is None, block.path
            c = block.first
            assert c.act == "relu" and c.padding == (c.kernel // 2,) * 4, block.path
            blocks.append(HandBlock(c.cin, c.cout, c.kernel, c.stride, c.groups))
            for t in ("weight", "bias"):
                state[f"stages.{i}.{j}.conv.{t}"] = torch.from_numpy(weights[f"{c.path}.conv.{t}"])
        stages.append(blocks)
    fc = next(k for k in weights if k.startswith("head.") and k.endswith(".fc.weight"))
    model = HandMobileOne(stages, weights[fc].shape[1], weights[fc].shape[0])
    state["fc.weight"], state["fc.bias"] = torch.from_numpy(weights[fc]), torch.from_numpy(weights[fc[:-6] + "bias"])
    model.load_state_dict(state)
    return model.eval()


def _load(net: Network, weights: Weights, tmp: Path, name: str, channels_last: bool = False) -> nn.Module:
    path = tmp / f"{name}.py"
    path.write_text(get_backend("torch").emit(net))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_weights(weights, tmp / f"{name}.safetensors")
    model = module.build_model(channels_last=channels_last)
    return module.load_weights(model, str(tmp / f"{name}.safetensors")).eval()


def _forms(spec: str, tmp: Path) -> dict[str, nn.Module]:
    train = compile_file(ROOT / "specs" / f"{spec}.arch")
    weights = init_weights(train, 0)
    deploy, folded = deploy_form(train), deploy_weights(train, weights)
    forms = {
        "train": _load(train, weights, tmp, f"{spec}_train"),
        "train+cl": _load(train, weights, tmp, f"{spec}_train_cl", channels_last=True),
        "deploy": _load(deploy, folded, tmp, f"{spec}_deploy"),
        "deploy+cl": _load(deploy, folded, tmp, f"{spec}_deploy_cl", channels_last=True),
    }
    forms["compiled"] = torch.compile(forms["deploy"], fullgraph=True)
    forms["compiled+cl"] = torch.compile(forms["deploy+cl"], fullgraph=True)
    if spec.startswith("mobileone"):
        forms["hand"] = _hand_mobileone(deploy, folded)
    return forms


def _ratio(times: dict[str, list[float]], num: str, den: str, goal: float | None = None) -> str:
    """The median of the two forms' time ratios round by round (paired: load drift cancels)."""
    r = statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))
    return f"{r:.3f}" + ("" if goal is None else " ok" if r <= goal else " MISS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default="mnv4_conv_s,mnv4_conv_m,mnv3_large,mobileone_s0")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for key, value in COMPILE_CONFIG.items():
        setattr(torch._inductor.config, key, value)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, medians of {args.rounds} rounds (ms)")
    rows = []
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
            order = list(forms)
            for r in range(args.rounds):  # the order rotates: no form always follows the same one
                for name in order[r % len(order) :] + order[: r % len(order)]:
                    start = time.perf_counter()
                    forms[name](x)
                    times[name].append(time.perf_counter() - start)
            rows.append((f"{spec} ({h})", times))
    names = ["train", "train+cl", "deploy", "deploy+cl", "compiled", "compiled+cl", "hand"]
    print(f"{'spec':<20}" + "".join(f"{n:>12}" for n in names))
    for label, times in rows:
        ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
        print(f"{label:<20}" + "".join(f"{ms[n]:>12.2f}" if n in ms else f"{'-':>12}" for n in names))
    print("\nratios: medians of the ratios round by round (goal)")
    print("                    deploy/train (<=0.85)  deploy+cl/train  compiled/train (<=0.5)  compiled+cl/train"
          "  deploy/hand (<=1.0)  deploy+cl/deploy  train+cl/train")  # fmt: skip
    for label, t in rows:
        conv = "mobileone" not in label  # the 0.85 goal is the conv specs'; MobileOne's is against `hand`
        hand = _ratio(t, "deploy", "hand", 1.0) if "hand" in t else "-"
        print(f"{label:<20} {_ratio(t, 'deploy', 'train', 0.85 if conv else None):>21} "
              f"{_ratio(t, 'deploy+cl', 'train'):>16} {_ratio(t, 'compiled', 'train', 0.5):>23} "
              f"{_ratio(t, 'compiled+cl', 'train', 0.5):>18} {hand:>20} {_ratio(t, 'deploy+cl', 'deploy'):>17} {_ratio(t, 'train+cl', 'train'):>15}")  # fmt: skip


if __name__ == "__main__":
    main()
