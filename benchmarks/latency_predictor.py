"""How well `archdsl latency` predicts TFLite latency on this machine, against the two simpler
estimates, in one run: calibrate on some specs, predict the others, and measure them.

1. `calibrate` on the calibration specs (deploy form; the profile is the cache: a second run with
   the same --profile measures nothing again);
2. predict every held-out spec from the profile; also estimate it as MACs x a constant and as
   its roofline effective MACs x a constant (the ridge point and the constants fitted, least
   squares on relative error, on the calibration specs' measured times);
3. measure every held-out spec whole on TFLite (the same threads; interleaved rounds, each the
   median of back-to-back calls: the steady state the profile predicts), in one session with the
   calibration specs measured again, whose times the network fit then uses: a drift of this
   machine's speed between calibration and measurement would otherwise show as prediction error.

Goal (issue 11): median absolute error <= 10% and >= 90% of held-out specs within +-15%.

    python benchmarks/latency_predictor.py [--threads 1] [--profile FILE] [--rounds 15] [--save FILE]

`--save FILE` writes every spec's measured seconds as JSON; `--measured FILE` reads them back
instead of measuring (for working on the predictor between measured runs: the figures reported
in the docs come from runs that measure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.analysis.cost import network_cost  # noqa: E402
from archdsl.analysis.latency import Predictor, nonnegative_fit  # noqa: E402
from archdsl.analysis.roofline import effective_macs, loads  # noqa: E402
from archdsl.compiler import compile_file  # noqa: E402
from archdsl.runtimes.calibrate import CALLS, ROUNDS, WARMUP, calibrate, measure_networks, record_networks  # noqa: E402

CALIBRATION = ["mnv1", "mnv3_small", "efficientnet_lite0", "mnv4_conv_s", "mobileone_s0", "ghostnet_100",
               "shufflenet_v1_g3", "mnv4_hybrid_m_075", "efficientnet_lite4"]  # fmt: skip
HELD_OUT = ["mnv2", "mnv3_large", "mnv4_conv_m", "mnv4_conv_l", "efficientnet_lite1", "efficientnet_lite2",
            "efficientnet_lite3", "mobileone_s1", "mobileone_s2", "shufflenet_v2_x1_0", "mnv4_hybrid_m",
            "mnv4_hybrid_l"]  # fmt: skip
RIDGES = [0, 5, 10, 20, 50, 100, 200, 500]


def _scaled(xs: list[float], ts: list[float]) -> float:
    """The constant k minimising the relative error of k x x against t."""
    (k,) = nonnegative_fit([((x,), t) for x, t in zip(xs, ts, strict=True)])
    return k


def _errors(estimates: list[float], measured: list[float]) -> str:
    errors = [abs(e / m - 1) for e, m in zip(estimates, measured, strict=True)]
    within = sum(e <= 0.15 for e in errors) / len(errors)
    return f"median |error| {statistics.median(errors):6.1%}, within +-15%: {within:4.0%}, worst {max(errors):6.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", default=None, help="the calibration profile (kept; default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds of the whole networks")
    parser.add_argument("--save", type=Path, help="write the measured seconds of every spec here (JSON)")
    parser.add_argument("--measured", type=Path, help="read measured seconds from a --save file, measuring nothing")
    args = parser.parse_args()
    nets = {s: compile_file(ROOT / "specs" / f"{s}.arch", deploy=True) for s in CALIBRATION + HELD_OUT}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.profile or Path(tmp) / "profile.json")
        profile, measured_units = calibrate([nets[s] for s in CALIBRATION], path, "tflite", args.threads, ROUNDS,
                                            CALLS, WARMUP, progress=sys.stderr.isatty())  # fmt: skip
        print(f"calibration: {len(CALIBRATION)} specs, {len(profile.entries)} units ({measured_units} measured now)")
        if args.measured is not None:
            seconds = json.loads(args.measured.read_text())["seconds"]
        else:
            everything = [nets[s] for s in CALIBRATION + HELD_OUT]
            seconds = dict(zip(CALIBRATION + HELD_OUT, measure_networks(everything, args.threads, args.rounds, CALLS,
                                                                        WARMUP), strict=True))  # fmt: skip
        if args.save is not None:
            args.save.write_text(
                json.dumps({"threads": args.threads, "rounds": args.rounds, "seconds": seconds}, indent=1)
            )
        record_networks(profile, [nets[s] for s in CALIBRATION], [seconds[s] for s in CALIBRATION])
        predictor = Predictor(profile)
        cal_seconds = [seconds[s] for s in CALIBRATION]
        macs = {s: float(network_cost(n).macs) for s, n in nets.items()}
        k_macs = _scaled([macs[s] for s in CALIBRATION], cal_seconds)
        roof = {s: loads(n, "float32") for s, n in nets.items()}
        ridge = min(RIDGES, key=lambda r: _fit_error(r, roof, CALIBRATION, cal_seconds))
        k_roof = _scaled([effective_macs(roof[s], ridge) for s in CALIBRATION], cal_seconds)
        rows, measured, predicted, by_macs, by_roof = [], [], [], [], []
        for s in HELD_OUT:
            net = nets[s]
            measured.append(seconds[s])
            predicted.append(predictor.network(net)[0])
            by_macs.append(k_macs * macs[s])
            by_roof.append(k_roof * effective_macs(roof[s], ridge))
            rows.append((s, measured[-1], predicted[-1], by_macs[-1], by_roof[-1]))
    print(f"held out: {len(HELD_OUT)} specs, TFLite, {args.threads} thread(s), deploy form; ms per call")
    print(f"  {'spec':20s} {'measured':>9s} {'predicted':>9s} {'MACs x k':>9s} {'roofline':>9s}")
    for s, m, p, a, r in rows:
        print(f"  {s:20s} {m * 1e3:9.3f} {p * 1e3:9.3f} {a * 1e3:9.3f} {r * 1e3:9.3f}")
    print(f"predictor (profile):       {_errors(predicted, measured)}")
    print(f"MACs x fitted constant:    {_errors(by_macs, measured)}")
    print(f"roofline (ridge {ridge:>3}) x k:  {_errors(by_roof, measured)}")


def _fit_error(ridge: float, roof: dict, specs: list[str], seconds: list[float]) -> float:
    xs = [effective_macs(roof[s], ridge) for s in specs]
    k = _scaled(xs, seconds)
    return sum((k * x / t - 1) ** 2 for x, t in zip(xs, seconds, strict=True))


if __name__ == "__main__":
    main()
