"""`archdsl bench`: batch-1 latency of a network on real runtimes on this machine.

Each runtime runs in a process of its own (`bench_worker.py`), warmed up, and the processes take
turns round by round, so machine load hits every runtime alike and no two runtimes' thread pools
share a process. Reported: median, min and interquartile range over the rounds, and with
`per_block` (PyTorch eager only: a compiled or converted model has no block boundaries left) the
median time of every block."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.report import aligned
from ..codegen.registry import get_backend
from ..errors import ArchError, UsageError, did_you_mean
from ..extras import RUNTIME_MODULES, require
from ..ir.network import Network

# runtime -> the backend whose code it runs
RUNTIMES = {"torch": "torch", "torch-compile": "torch", "tflite": "keras", "tflite-int8": "keras", "onnx": "onnx",
            "onnx-torch-export": "torch"}  # fmt: skip
_PAUSE = 0.05  # seconds between turns, for the last runtime's spinning threads to go idle


@dataclass(frozen=True)
class Timing:
    runtime: str
    seconds: list[float]
    blocks: dict[str, float]  # block path -> median seconds (per-block runs only)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.seconds[0], self.seconds[0]
        q1, _, q3 = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return q1, q3


def parse_runtimes(text: str) -> list[str]:
    chosen = [r.strip() for r in text.split(",") if r.strip()]
    for r in chosen:
        if r not in RUNTIMES:
            raise UsageError(f"unknown runtime '{r}'", None, did_you_mean(r, RUNTIMES))
    if not chosen or len(set(chosen)) != len(chosen):
        raise UsageError(f"name each runtime once, e.g. torch,tflite (got {text!r})", None)
    for r in chosen:
        require(RUNTIME_MODULES[r], f"the {r} runtime")
    return chosen


def bench(net: Network, weights: str, runtimes: list[str], threads: int, rounds: int, warmup: int,
          per_block: bool, progress: bool = False, calls: int = 1) -> list[Timing]:  # fmt: skip
    """Each runtime's time per call, one figure per round: the median of `calls` back-to-back
    calls (1: a call after the other runtimes' turns; more: the steady state, as `archdsl
    latency` predicts it)."""
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        workers = {r: _start(r, net, weights, threads, warmup, per_block, Path(tmp), calls) for r in runtimes}
        try:
            for r, w in workers.items():
                _answer(w, r)  # ready
            results: dict[str, list[dict[str, Any]]] = {r: [] for r in runtimes}
            for i in range(rounds):
                if progress:
                    print(f"\rbench: round {i + 1}/{rounds}", end="", file=sys.stderr, flush=True)
                for r, w in workers.items():
                    assert w.stdin is not None
                    w.stdin.write("round\n")
                    w.stdin.flush()
                    results[r].append(_answer(w, r))
                    time.sleep(_PAUSE)
            if progress:
                print(file=sys.stderr)
        finally:
            for w in workers.values():
                _stop(w)
    return [Timing(r, [a["seconds"] for a in results[r]], _block_medians(results[r])) for r in runtimes]


def _start(runtime: str, net: Network, weights: str, threads: int, warmup: int, per_block: bool,
           tmp: Path, calls: int) -> subprocess.Popen[str]:  # fmt: skip
    code = tmp / f"{runtime}.py"
    code.write_text(get_backend(RUNTIMES[runtime]).emit(net))
    request = {
        "runtime": runtime,
        "code": str(code),
        "weights": weights,
        "shape": list(net.input_shape),
        "threads": threads,
        "warmup": warmup,
        "calls": calls,
        "per_block": per_block,
        "blocks": [b.path for b in net.blocks()],
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    worker = subprocess.Popen([sys.executable, "-m", "archdsl.runtimes.bench_worker"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert worker.stdin is not None
    worker.stdin.write(json.dumps(request) + "\n")
    worker.stdin.flush()
    return worker


def _answer(worker: subprocess.Popen[str], runtime: str) -> dict[str, Any]:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        _stop(worker)
        assert worker.stderr is not None
        last = (worker.stderr.read().strip().splitlines() or ["(no output)"])[-1]
        raise ArchError(
            f"the {runtime} runtime failed: {last}",
            hint="run `archdsl verify` on the spec to see whether the code runs",
        )
    return json.loads(line)  # type: ignore[no-any-return]


def _stop(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        try:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            worker.kill()
            worker.wait()


def _block_medians(answers: list[dict[str, Any]]) -> dict[str, float]:
    per_block = [a["blocks"] for a in answers if "blocks" in a]
    if not per_block:
        return {}
    return {path: statistics.median(times[path] for times in per_block) for path in per_block[0]}


def report_text(net: Network, timings: list[Timing], threads: int, form: str) -> str:
    lines = [f"{net.name}: batch 1, input {'x'.join(map(str, net.input_shape))}, {form} form, {threads} thread(s), "
             f"{len(timings[0].seconds)} round(s), runtimes taking turns, each in its own process"]  # fmt: skip
    rows = [("runtime", "median ms", "min ms", "IQR ms")]
    for t in timings:
        q1, q3 = t.iqr
        rows.append(
            (t.runtime, f"{t.median * 1e3:.3f}", f"{min(t.seconds) * 1e3:.3f}", f"{q1 * 1e3:.3f}-{q3 * 1e3:.3f}")
        )
    lines += aligned(rows, indent="  ")
    for t in timings:
        if t.blocks:
            total = sum(t.blocks.values()) or 1.0
            lines += ["", f"per block ({t.runtime}, medians; hooks add a little to each):"]
            lines += aligned(
                [("block", "ms", "share")] + [(p, f"{s * 1e3:.3f}", f"{s / total:.1%}") for p, s in t.blocks.items()],
                indent="  ",
            )
    return "\n".join(lines) + "\n"


def report_json(net: Network, timings: list[Timing], threads: int, form: str, calls: int = 1) -> dict[str, Any]:
    return {"network": net.name, "source": net.source, "form": form, "threads": threads, "batch": 1, "calls": calls,
            "runtimes": [{"runtime": t.runtime, "median_seconds": t.median, "min_seconds": min(t.seconds),
                          "iqr_seconds": list(t.iqr), "seconds": t.seconds, "blocks": t.blocks} for t in timings]}  # fmt: skip
