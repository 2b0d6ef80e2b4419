"""`archdsl calibrate`: measure, on the real runtime, the latency units (`analysis/latency.py`)
that occur in a set of networks and a grid around them, into a profile `archdsl latency` and
`archdsl cost --profile` predict from.

The grid gives the fits what the networks alone lack: every plain and depthwise conv again with
half and one and a half times its channels, so a held-out network's widths fall inside the measured range. The
profile is the cache: it is written (atomically) after every few units, and a run given an
existing profile measures only what it lacks, so an interrupted run goes on where it stopped. A
profile measured for another runtime, thread count, runtime version, or rounds, calls and warm-up
is refused, never mixed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..analysis.cost import network_cost
from ..analysis.latency import Entry, NetworkTime, Predictor, Profile, features, key_of, read_profile, unit_of
from ..analysis.layers import layers_of
from ..atomic import write_atomic
from ..errors import ArchError
from ..ir.layers import Layer
from ..ir.network import Network
from ..ir.nodes import ConvBnAct

RUNTIMES = ("tflite",)
ROUNDS, CALLS, WARMUP = 7, 5, 3  # the defaults: interleaved rounds per unit, timed calls per round, warm-up calls
_BATCH = 24  # units measured together, in interleaved rounds; the profile is written after each batch
_NONE: dict[str, Any] = {"op": "none", "c": 1, "hw": [1, 1]}  # the cost of a call that computes nothing


def _widened(c: ConvBnAct, scale: float) -> ConvBnAct | None:
    """The conv with its channels scaled (multiples of 8, depthwise staying depthwise)."""
    if c.groups != 1 and not c.groups == c.cin == c.cout:
        return None
    cin, cout = (max(8, round(n * scale / 8) * 8) for n in (c.cin, c.cout))
    if c.groups > 1:
        cout = cin
    if c.cin <= 4:  # a stem's input is the image: its channels stay
        cin = c.cin
    return c.model_copy(update={"cin": cin, "cout": cout, "groups": cin if c.groups > 1 else 1})


def units_to_measure(nets: list[Network], grid: bool = True) -> list[tuple[dict[str, Any], Layer]]:
    """The distinct units of the networks (and their grid), in a stable order."""
    seen: dict[str, tuple[dict[str, Any], Layer]] = {}

    def add(layer: Layer) -> None:
        unit = unit_of(layer)
        if unit is not None:
            seen.setdefault(key_of(unit), (unit, layer))

    for net in nets:
        for block in net.blocks():
            for layer in layers_of(block):
                add(layer)
                if grid and isinstance(layer, ConvBnAct):
                    for wide in (_widened(layer, s) for s in (0.5, 1.5)):
                        if wide is not None:
                            add(wide)
    return list(seen.values())


def load_existing(path: Path, runtime: str, threads: int) -> Profile | None:
    """The profile already at `path` (to complete), none if nothing is there; an error for a file
    that is not a profile (calibrate never writes over it) or one measured otherwise."""
    if not path.exists():
        return None
    profile = read_profile(str(path))
    if (profile.runtime, profile.threads) != (runtime, threads):
        raise ArchError(f"{path}: measured for {profile.runtime} with {profile.threads} thread(s), "
                        f"not {runtime} with {threads}", hint="give another output file")  # fmt: skip
    return profile


def calibrate(nets: list[Network], output: Path, runtime: str, threads: int, rounds: int, calls: int,
              warmup: int, grid: bool = True, progress: bool = False) -> tuple[Profile, int]:  # fmt: skip
    """Measure what the profile at `output` lacks; the profile and how many units were measured."""
    profile = load_existing(output, runtime, threads)
    todo = [(u, layer) for u, layer in units_to_measure(nets, grid)
            if profile is None or key_of(u) not in profile.entries]  # fmt: skip
    if profile is not None and not todo and all(network_key(n) in profile.networks for n in nets):
        return profile, 0
    with _Worker(threads, warmup, rounds, calls) as worker:
        meta = {"tensorflow": worker.version, "rounds": str(rounds), "calls": str(calls), "warmup": str(warmup)}
        if profile is None:
            (overhead,), _ = worker.measure([_NONE])
            profile = Profile(runtime, threads, overhead, {}, meta)
        elif profile.meta != meta:  # never mix measurements made otherwise
            differ = ", ".join(
                f"{k} {profile.meta.get(k)} (now {v})" for k, v in meta.items() if profile.meta.get(k) != v
            )
            raise ArchError(f"{output}: measured with {differ}", hint="give another output file")
        for start in range(0, len(todo), _BATCH):
            if progress:
                print(f"\rcalibrate: units {start + 1}-{min(start + _BATCH, len(todo))} of {len(todo)}", end="",
                      file=sys.stderr, flush=True)  # fmt: skip
            batch = todo[start : start + _BATCH]
            seconds, _ = worker.measure([u for u, _ in batch])
            for (unit, layer), s in zip(batch, seconds, strict=True):
                profile.entries[key_of(unit)] = Entry(unit, s, *features(layer))
            save(profile, output)
        if progress:
            print(file=sys.stderr)
    missing = [n for n in nets if network_key(n) not in profile.networks]
    if missing:
        if progress:
            print(f"calibrate: the {len(missing)} network(s) whole", file=sys.stderr, flush=True)
        record_networks(profile, missing, measure_networks(missing, threads, 3 * rounds, calls, warmup))
        save(profile, output)
    return profile, len(todo)


def save(profile: Profile, output: Path) -> None:
    write_atomic(output, json.dumps(profile.to_json(), indent=1) + "\n")


def network_key(net: Network) -> str:
    """A network by what the runtime runs: its name and the digest of its units (so the form and
    the input size count)."""
    units = "\n".join(key_of(unit_of(layer) or {}) for b in net.blocks() for layer in layers_of(b))
    return f"{net.name} {hashlib.sha256(units.encode()).hexdigest()[:12]}"


def measure_networks(nets: list[Network], threads: int, rounds: int, calls: int, warmup: int) -> list[float]:
    """Each network's seconds per call, measured whole on TFLite in one worker, in interleaved
    rounds (a drift of the machine's speed hits every network alike)."""
    from ..codegen.registry import get_backend
    from .weights import init_weights, save_weights

    with tempfile.TemporaryDirectory(prefix="archdsl-calibrate-") as tmp, _Worker(threads, warmup, rounds, calls) as w:
        requests = []
        for i, net in enumerate(nets):
            code, weights = Path(tmp) / f"{i}.py", Path(tmp) / f"{i}.safetensors"
            code.write_text(get_backend("keras").emit(net))
            save_weights(init_weights(net, 0), str(weights))
            requests.append({"op": "network", "code": str(code), "weights": str(weights)})
        return w.measure(requests)[0]


def record_networks(profile: Profile, nets: list[Network], seconds: list[float]) -> None:
    """Networks measured whole, beside the sum of their units, into the profile."""
    predictor = Predictor(profile)
    for net, s in zip(nets, seconds, strict=True):
        if s <= profile.overhead:  # noise: a profile holding it would be refused when read
            raise ArchError(f"{net.name} measured at {s * 1e6:.1f} us a call, not above the runtime's own "
                            f"overhead ({profile.overhead * 1e6:.1f} us)", hint="more --rounds and --warmup")  # fmt: skip
        units = predictor.units(net)
        unfolded = [u for u in units if u.source != "folded"]
        weights = network_cost(net).weight_bytes()
        profile.networks[network_key(net)] = NetworkTime(s, sum(u.seconds for u in units), len(unfolded), weights)


class _Worker:
    """The runtime in a process of its own (`calibrate_worker.py`); what it prints goes to a file,
    so that a chatty converter never fills a pipe nobody reads."""

    def __init__(self, threads: int, warmup: int, rounds: int, calls: int):
        self.request = {"threads": threads, "warmup": warmup, "rounds": rounds, "calls": calls}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> _Worker:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow",
               "OMP_NUM_THREADS": str(self.request["threads"])}  # fmt: skip
        self.process = subprocess.Popen([sys.executable, "-m", "archdsl.runtimes.calibrate_worker"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        env=env)  # fmt: skip
        self.version = self._ask(self.request)["tensorflow"]
        return self

    def measure(self, units: list[dict[str, Any]]) -> tuple[list[float], list[list[str]]]:
        """Each unit's seconds per call, and the runtime's kernels for it."""
        answer = self._ask({"units": units})
        return answer["seconds"], answer["ops"]

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.process.stdout.readline()
        if not line:
            raise ArchError(f"the TFLite runtime failed: {self._last_words()}",
                            hint="run `archdsl bench --runtime tflite` on one spec to see it fail alone")  # fmt: skip
        return json.loads(line)  # type: ignore[no-any-return]

    def _last_words(self) -> str:
        self.process.wait()
        self.log.seek(0)
        lines = [line for line in self.log.read().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.process.returncode}"

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.log.close()


def measured_ops(nets: list[Network], threads: int = 1) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each unit of the networks with the kernels the runtime runs for it (for the fusion tests)."""
    units = [u for u, _ in units_to_measure(nets, grid=False)]
    with _Worker(threads, 0, 1, 1) as worker:
        _, ops = worker.measure(units)
    yield from zip(units, ops, strict=True)
