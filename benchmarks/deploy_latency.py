"""Deployment latency at batch 1 on this CPU: TFLite float32, TFLite int8 and the generated ONNX
in ONNX Runtime, beside `torch.onnx.export` of the generated PyTorch model in ONNX Runtime. Each
runtime runs in a process of its own and they take turns round by round (`archdsl bench`): their
thread pools spin after a call, and inside one process they slow each other down. Each latency
is also given as a fraction of this CPU's sgemm peak (MACs / latency / peak MAC rate, the peak
measured here, on the same threads, as the faster of PyTorch's float32 matmul and TFLite's).

A round gives each runtime 50 back-to-back calls and keeps their median: the steady state of a
model that runs continuously, as on a camera stream, and what TFLite's own benchmark tool
reports. A turn starts after the other runtimes' turns, its pool's threads asleep and its
weights out of cache, and its first calls pay for that: at 5 or 20 calls per turn the int8
models' times here are bimodal (MNv4-Conv-S int8: 0.45 or 1.0 ms, IQR 0.5-1.2 ms at 20 calls;
0.52-0.67 ms at 50), which moves the int8/float32 ratios by up to 0.3 either way. `--calls 5`
shows a model called after other work.

Goals (issue 14): TFLite int8 / TFLite float32 <= 0.6; generated ONNX / torch.onnx.export <= 1.0.

    python benchmarks/deploy_latency.py [--specs mnv4_conv_s,mnv3_large] [--threads 2] [--rounds 40] [--calls 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.analysis.cost import network_cost  # noqa: E402
from archdsl.compiler import compile_file  # noqa: E402
from archdsl.runtimes.bench import bench  # noqa: E402
from archdsl.runtimes.weights import init_weights, save_weights  # noqa: E402

RUNTIMES = ["tflite", "tflite-int8", "onnx", "onnx-torch-export"]

# sgemm peak in a process of its own, on `threads` threads: the best of several float32 matmuls,
# 2048^3 in PyTorch and 256x2048x2048 as a TFLite FULLY_CONNECTED (XNNPACK), whichever is faster
# (here XNNPACK's, about twice PyTorch's: the CPU's two AVX-512 FMA units at full use).
_TIMED = """
best = float("inf")
for i in range(13):  # 3 to warm up
    start = time.perf_counter()
    call()
    best = min(best, time.perf_counter() - start) if i >= 3 else best
print(MACS / best)
"""
_PEAKS = {
    "PyTorch matmul": """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
call, MACS = lambda: a @ b, 2048**3
""",
    "TFLite fully connected": """
import os, sys, time, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
x = tf.keras.Input((2048,), batch_size=256)
model = tf.keras.Model(x, tf.keras.layers.Dense(2048, use_bias=False)(x))
warnings.simplefilter("ignore")
interpreter = tf.lite.Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert(),
                                  num_threads=int(sys.argv[1]))
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ones((256, 2048), np.float32))
call, MACS = interpreter.invoke, 256 * 2048**2
""",
}


def sgemm_peak(threads: int) -> tuple[float, dict[str, float]]:
    """Multiply-accumulates per second of the fastest large float32 matmul on `threads` threads,
    and each one's."""
    rates = {}
    for name, setup in _PEAKS.items():
        done = subprocess.run([sys.executable, "-c", setup + _TIMED, str(threads)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        rates[name] = float(done.stdout.split()[-1])
    return max(rates.values()), rates


def _ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios: the two ran in the same rounds, under the same load."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="mnv4_conv_s,mnv3_large")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=50, help="back-to-back calls per round (their median)")
    args = parser.parse_args()
    peak, rates = sgemm_peak(args.threads)
    each = ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in rates.items())
    print(f"sgemm peak on {args.threads} thread(s): {peak / 1e9:.1f} GMAC/s (float32; {each})")
    print(f"{'spec':<14}{'runtime':<20}{'median ms':>10}{'of peak':>9}")
    ratios = []
    for name in args.specs.split(","):
        net = compile_file(ROOT / "specs" / f"{name}.arch", deploy=True)
        macs = network_cost(net).macs
        with tempfile.TemporaryDirectory() as tmp:
            weights = str(Path(tmp) / "w.safetensors")
            save_weights(init_weights(net, 0), weights)
            rounds = {t.runtime: t.seconds for t in bench(net, weights, RUNTIMES, args.threads, args.rounds, 5,
                                                          False, calls=args.calls)}  # fmt: skip
        for runtime, seconds in rounds.items():
            median = statistics.median(seconds)
            print(f"{name:<14}{runtime:<20}{median * 1e3:>10.2f}{macs / median / peak:>9.1%}")
        int8 = _ratio(rounds["tflite-int8"], rounds["tflite"])
        ratios.append((name, int8, _ratio(rounds["onnx"], rounds["onnx-torch-export"])))
    print(
        f"\nmedians of the per-round ratios\n{'spec':<14}{'int8 / float32 (TFLite)':>26}{'generated / torch.onnx.export':>32}"
    )
    for name, int8, onnx in ratios:
        print(f"{name:<14}{int8:>26.2f}{onnx:>32.2f}")
    print("goals: <= 0.6 and <= 1.0")


if __name__ == "__main__":
    main()
