"""Reading safetensors files that archdsl did not write: canonical weights and timm checkpoints.

Nothing in a file is trusted. Only a regular file is opened (a FIFO would block the open, a
device could be read forever), up to `limits.MAX_WEIGHT_FILE_BYTES`; the header length is
checked against `limits.MAX_SAFETENSORS_HEADER` before the header is read; the header must be a
JSON object whose every tensor has a known dtype, a shape and offsets that tile the data exactly,
as safetensors itself requires. Every way a file can be damaged ends in one `ArchError` naming the
file and the damage, before numpy sees a byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .. import limits
from ..errors import ArchError
from ..input_files import open_regular

if TYPE_CHECKING:
    import numpy as np

# safetensors dtype -> (bytes per element, the numpy dtype its bytes load as). BF16 and the
# float8s have no numpy dtype: they load as raw unsigned integers (see `WeightFile.array`).
DTYPES = {"F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2"),
          "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
          "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"),
          "BOOL": (1, "?"), "F8_E4M3": (1, "u1"), "F8_E5M2": (1, "u1")}  # fmt: skip
Fail = Callable[[str], ArchError]  # a problem -> the error naming the file


@dataclass(frozen=True)
class Entry:
    name: str
    dtype: str  # as safetensors spells it: F32, F16, BF16, I64, ...
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data that follows the header
    end: int


@dataclass(frozen=True)
class WeightFile:
    path: str
    entries: dict[str, Entry]  # in the header's order
    metadata: dict[str, str]
    data: bytearray

    def array(self, name: str) -> np.ndarray:
        """One tensor (a view of the file's bytes); BF16 is widened to float32."""
        import numpy as np

        e = self.entries[name]
        size, dtype = DTYPES[e.dtype]
        count = (e.end - e.begin) // size
        a = np.frombuffer(self.data, dtype, count, e.begin) if count else np.zeros(0, dtype)
        if e.dtype == "BF16":  # the top half of a float32
            return (a.astype(np.uint32) << 16).view(np.float32).reshape(e.shape)
        return (a if a.flags.aligned else a.copy()).reshape(e.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: self.array(name) for name in self.entries}


def read_safetensors(path: str, what: str = "weights", hint: str | None = None) -> WeightFile:
    """A safetensors file, validated; `what` ("weights", "checkpoint") names it in errors."""

    def fail(problem: str) -> ArchError:
        return ArchError(f"cannot read {what} {path!r}: {problem}", hint=hint)

    try:
        with open_regular(path, limits.MAX_WEIGHT_FILE_BYTES, "a weight file may have", fail) as (f, size):
            return _read(f, size, path, fail)
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None
    except MemoryError:
        raise fail("not enough memory to read it") from None


def _read(f: Any, size: int, path: str, fail: Fail) -> WeightFile:
    if size < 8:
        raise fail("the file is empty" if size == 0 else f"the file is {size} bytes, too short for safetensors "
                   "(which begins with an 8-byte header length)")  # fmt: skip
    n = int.from_bytes(f.read(8), "little")
    if n > limits.MAX_SAFETENSORS_HEADER:
        raise fail(f"not a safetensors file: its header length is {n:,} bytes, over the limit of "
                   f"{limits.MAX_SAFETENSORS_HEADER:,}")  # fmt: skip
    if 8 + n > size:
        raise fail(f"the file is truncated (its header length is {n:,} bytes, the file has {size - 8:,} after it)")
    raw = f.read(n)
    if len(raw) < n:
        raise fail(f"the file is truncated (it ended at byte {8 + len(raw):,} while its header was read)")
    entries, metadata = _header(raw, fail)
    data_size = size - 8 - n
    needed = max((e.end for e in entries.values()), default=0)
    if needed > data_size:
        raise fail(f"the file is truncated (header says {needed:,} bytes of tensors, file has {data_size:,})")
    _check_tiling(entries, data_size, fail)
    data = bytearray(data_size)
    got = f.readinto(data)
    if got < data_size:
        raise fail(f"the file is truncated (it ended at byte {8 + n + got:,} while its tensors were read)")
    return WeightFile(path, entries, metadata, data)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # json would keep the last silently: which tensor did the writer mean?
            raise _Duplicate(key)
        out[key] = value
    return out


def _header(raw: bytes, fail: Fail) -> tuple[dict[str, Entry], dict[str, str]]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        raise fail(f"its header names {str(exc)!r} twice") from None
    except UnicodeDecodeError:
        raise fail("its header is not UTF-8 text (not a safetensors file?)") from None
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise fail(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise fail(f"its header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("its __metadata__ is not a map of strings to strings")
    return {name: _entry(name, info, fail) for name, info in header.items()}, metadata


_MAX_DIMS = 32  # numpy's limit is 64; no network tensor has more than 5


def _entry(name: str, info: Any, fail: Fail) -> Entry:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise fail(f"tensor {name!r} is not described by dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise fail(f"tensor {name!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(is_int(d) for d in shape):
        raise fail(f"tensor {name!r} has shape {shape!r}, not a list of non-negative integers")
    if (
        len(shape) > _MAX_DIMS or math.prod(d for d in shape if d) > limits.MAX_WEIGHT_FILE_BYTES
    ):  # numpy could not hold it
        raise fail(f"tensor {name!r} has an impossible shape of {len(shape)} dimensions, the largest "
                   f"{max(shape, default=0):,} (a tensor has at most {_MAX_DIMS}, whose non-zero sizes multiply to "
                   f"at most {limits.MAX_WEIGHT_FILE_BYTES:,})")  # fmt: skip
    pair = isinstance(offsets, list) and len(offsets) == 2 and all(is_int(o) for o in offsets)
    if not pair or offsets[0] > offsets[1]:
        raise fail(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end] with 0 <= begin <= end")
    size = 0 if 0 in shape else DTYPES[dtype][0]
    for d in shape:
        if size > limits.MAX_WEIGHT_FILE_BYTES:  # out of any file's reach: stop multiplying absurd shapes
            break
        size *= d
    if size != offsets[1] - offsets[0]:
        need = f"{size:,}" if size <= limits.MAX_WEIGHT_FILE_BYTES else f"over {limits.MAX_WEIGHT_FILE_BYTES:,}"
        raise fail(f"tensor {name!r} ({dtype}, shape {tuple(shape)}) needs {need} bytes, its data_offsets "
                   f"{offsets} span {offsets[1] - offsets[0]:,}")  # fmt: skip
    return Entry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_tiling(entries: dict[str, Entry], data_size: int, fail: Fail) -> None:
    """The tensors cover the data exactly once, as safetensors requires: no overlap, no gap."""
    end, last = 0, None
    for e in sorted((e for e in entries.values() if e.end > e.begin), key=lambda e: e.begin):
        if e.begin < end:
            raise fail(f"tensors {last!r} and {e.name!r} overlap (bytes {e.begin:,}-{end:,} of the data)")
        if e.begin > end:
            raise fail(f"bytes {end:,}-{e.begin:,} of the data belong to no tensor")
        end, last = e.end, e.name
    if end < data_size:
        raise fail(f"{data_size - end:,} bytes after the last tensor belong to no tensor")
