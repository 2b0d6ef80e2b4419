"""The runtime's side of `archdsl calibrate`, in a process of its own: reads a request line
(threads, warm-up calls, rounds, timed calls per round) on stdin and answers with the runtime's
version; then each line is a batch of latency units (or whole networks), answered with each
one's seconds per call and the kernels the runtime runs for it.

    python -m archdsl.runtimes.calibrate_worker < requests
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings
from typing import Any


def measure(units: list[dict[str, Any]], threads: int, warmup: int, rounds: int, calls: int) -> dict[str, Any]:
    """Each unit's time per call: the median over rounds, each round timing `calls` calls of every
    unit in turn, so that a burst of load on the machine hits one round of many units, not every
    call of one."""
    import numpy as np
    import tensorflow as tf

    from .latency_units import unit_model
    from .runners.tflite_runner import convert

    interpreters = []
    rng = np.random.default_rng(0)
    for unit in units:
        model = _network(unit) if unit["op"] == "network" else unit_model(unit)
        with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(model_content=convert(model), num_threads=threads)
        interpreter.allocate_tensors()
        for inp in interpreter.get_input_details():
            interpreter.set_tensor(inp["index"], rng.standard_normal(inp["shape"], dtype=np.float32))
        for _ in range(max(1, warmup)):  # at least one: the first call prepares the delegate, once
            interpreter.invoke()
        interpreters.append(interpreter)
    medians: list[list[float]] = [[] for _ in units]
    for _ in range(rounds):
        for interpreter, times in zip(interpreters, medians, strict=True):
            calls_times = []
            for _ in range(calls):
                start = time.perf_counter()
                interpreter.invoke()
                calls_times.append(time.perf_counter() - start)
            times.append(statistics.median(calls_times))
    ops = [[op["op_name"] for op in i._get_ops_details() if op["op_name"] != "DELEGATE"] for i in interpreters]
    return {"seconds": [statistics.median(times) for times in medians], "ops": ops}


def _network(unit: dict[str, Any]) -> Any:
    """A whole network (`op` `network`): its generated Keras code and weights."""
    from .runners import load_module

    module = load_module(open(unit["code"]).read(), "archdsl_calibrate")  # noqa: SIM115 - read once
    return module.load_weights(module.build_model(), unit["weights"])


def main() -> None:
    # Answers go to the real stdout; anything a framework prints (Python or C) goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.readline())
    import tensorflow as tf

    print(json.dumps({"tensorflow": tf.__version__}), file=answers, flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        units = json.loads(line)["units"]
        answer = measure(units, request["threads"], request["warmup"], request["rounds"], request["calls"])
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    main()
