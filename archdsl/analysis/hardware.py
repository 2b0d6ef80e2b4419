"""Hardware profiles for the roofline: a ridge point (peak MACs per byte of memory traffic), and
where known the absolute peak MACs/s and memory bandwidth. Built-in profiles carry the source of
their figures; a user profile is a TOML file (docs/latency.md).

The built-in ridge points are the ones MobileNetV4 measured (Qin et al., 2024, Table 16, INT8);
the paper gives no absolute peaks for them, so they give latency relative to a baseline only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ArchError, Span, UsageError, did_you_mean
from ..input_files import read_text

DTYPES = ("float32", "float16", "bfloat16", "int8")


@dataclass(frozen=True)
class Hardware:
    name: str
    ridge: float  # MACs per byte: peak MACs/s over memory bytes/s
    dtype: str  # the precision its figures are for
    source: str
    peak_macs: float | None = None  # MACs/s; with it, latencies are in seconds
    bandwidth: float | None = None  # bytes/s

    @property
    def absolute(self) -> bool:
        return self.peak_macs is not None


_MNV4 = "MobileNetV4 (Qin et al., 2024), Table 16: measured ridge point"
BUILTIN: dict[str, Hardware] = {
    "pixel6-cpu": Hardware("pixel6-cpu", 31.2, "int8", f"{_MNV4}, Pixel 6 CPU (INT8)"),
    "s23-cpu": Hardware("s23-cpu", 39.7, "int8", f"{_MNV4}, Samsung S23 CPU (INT8)"),
    "pixel4-dsp": Hardware("pixel4-dsp", 347.3, "int8", f"{_MNV4}, Pixel 4 Hexagon DSP (INT8)"),
    "pixel8-edgetpu": Hardware("pixel8-edgetpu", 433.8, "int8", f"{_MNV4}, Pixel 8 EdgeTPU (INT8)"),
}

# The ridge points MobileNetV4 sweeps (its figure 2 spans 0 to 500 MACs/byte).
DEFAULT_RIDGES = (0.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0)


def builtin(name: str) -> Hardware:
    if name not in BUILTIN:
        raise UsageError(f"unknown hardware '{name}'", None, did_you_mean(name, BUILTIN))
    return BUILTIN[name]


def from_peaks(peak_macs: float, bandwidth: float, dtype: str) -> Hardware:
    """Hardware of the given (positive, finite) peak MACs/s and bandwidth."""
    return Hardware("custom", peak_macs / bandwidth, dtype, "--peak-macs and --bandwidth", peak_macs, bandwidth)


_KEYS = {"name": str, "source": str, "dtype": str, "ridge": float, "peak_macs": float, "bandwidth": float}


def load_profile(path: str) -> Hardware:
    """A user profile: name, source, dtype, and either peak_macs and bandwidth or ridge."""

    text = read_text(path, 64 * 1024, "hardware profile")

    import tomllib  # only where a profile is read

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        raise ArchError(f"malformed TOML: {str(e).split(' (at')[0]}", _at(path, text, line, col),
                        "a profile is TOML: name = \"...\", peak_macs = 1.2e12, bandwidth = 3.4e10") from None  # fmt: skip
    return _profile(data, path, text)


def _profile(data: dict, path: str, text: str) -> Hardware:
    def fail(message: str, key: str | None = None, hint: str | None = None) -> ArchError:
        line = next((i for i, t in enumerate(text.splitlines(), 1) if key and t.strip().startswith(key)), 1)
        return ArchError(message, _at(path, text, line, 1), hint)

    for key, value in data.items():
        if key not in _KEYS:
            raise fail(f"unknown key '{key}'", key, did_you_mean(key, _KEYS))
        want = _KEYS[key]
        ok = isinstance(value, str) if want is str else isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise fail(f"'{key}' must be {'a string' if want is str else 'a number'}", key)
        if want is float and not 0 < value < float("inf"):
            raise fail(f"'{key}' must be positive, got {value}", key)
    dtype = data.get("dtype", "float32")
    if dtype not in DTYPES:
        raise fail(f"unknown dtype '{dtype}'", "dtype", did_you_mean(dtype, DTYPES))
    peak, bandwidth, ridge = data.get("peak_macs"), data.get("bandwidth"), data.get("ridge")
    if (peak is None) != (bandwidth is None):
        raise fail("give both peak_macs and bandwidth, or neither", "peak_macs" if peak else "bandwidth")
    if peak is not None and bandwidth is not None:
        if ridge is not None:
            raise fail("give either ridge or peak_macs and bandwidth, not both", "ridge")
        ridge = peak / bandwidth
    elif ridge is None:
        raise fail("a profile needs peak_macs and bandwidth (or a ridge point)", None,
                           "e.g. peak_macs = 1.2e12 and bandwidth = 3.4e10")  # fmt: skip
    name = data.get("name", path)
    return Hardware(name, float(ridge), dtype, data.get("source", path), peak, bandwidth)


def _at(path: str, text: str, line: int, col: int) -> Span:
    lines = text.split("\n")
    end = len(lines[line - 1]) + 1 if 0 < line <= len(lines) else col + 1
    return Span(path, line, col, line, max(end, col + 1), text)


def profile_text(hw: Hardware) -> str:
    """`hw` as a profile file that `load_profile` reads back."""
    lines = [f"name = {_toml_str(hw.name)}", f"source = {_toml_str(hw.source)}", f"dtype = {_toml_str(hw.dtype)}"]
    if hw.peak_macs is not None and hw.bandwidth is not None:
        lines += [f"peak_macs = {hw.peak_macs!r}", f"bandwidth = {hw.bandwidth!r}"]
    else:
        lines.append(f"ridge = {hw.ridge!r}")
    return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
