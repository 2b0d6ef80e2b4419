"""A sweep's results file: one row per candidate (its index, hash, the value of each dimension,
every metric, whether it meets the constraints, whether it is on the Pareto front, its error),
as CSV, JSON Lines or Parquet by the file's suffix. Written atomically each time it is saved, so
that an interrupted sweep leaves a valid file; read back to resume one. A file that is not a
sweep's results (by its first columns, or Parquet's metadata) is never replaced."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import ArchError, UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
FIRST = ("index", "hash")
_MARK = b"archdsl.sweep"  # Parquet metadata key


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {str(path)!r} from its suffix", hint="name it .csv, .jsonl or .parquet"
        )
    return fmt


def read(path: Path, text: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The rows of an existing results file ([] when there is none). In CSV, the `hash`, `error`
    and `evaluate` columns and those of `text` (the dimensions' values, as written) stay text;
    other cells are read back as the numbers and flags they were written as."""
    if not path.exists():
        return []
    fmt = format_of(path)
    try:
        rows, columns = _read(path, fmt, {"hash", "error", "evaluate", *text})
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise _not_ours(path, str(e)) from None
    if tuple(columns[:2]) != FIRST:
        raise _not_ours(path, "its first columns are not index and hash")
    return rows


def _not_ours(path: Path, why: str) -> ArchError:
    return ArchError(f"{path} is not a sweep's results file: {why}",
                     hint="archdsl replaces only the results it wrote; choose another -o")  # fmt: skip


def _read(path: Path, fmt: str, text: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if _MARK not in (table.schema.metadata or {}):
            raise ValueError("no archdsl metadata")
        rows = table.to_pylist()
        return [
            {k: math.nan if v is None and k != "error" else v for k, v in r.items()} for r in rows
        ], table.column_names
    content = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError("not JSON objects")
        return [{k: math.nan if v is None else v for k, v in r.items()} for r in rows], list(rows[0])
    reader = csv.DictReader(io.StringIO(content))
    rows = [{k: (v or "") if k in text else _cell(v or "") for k, v in r.items() if k is not None} for r in reader]
    return rows, list(reader.fieldnames or ())


def _cell(text: str) -> Any:
    """A CSV cell as it was written: a whole number, a number (an empty one: NaN), a flag or text."""
    if text in ("true", "false"):
        return text == "true"
    if text == "":
        return math.nan
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    fmt = format_of(path)
    if fmt == "parquet":
        write_atomic(path, _parquet(rows, columns))
    elif fmt == "jsonl":
        write_atomic(path, "".join(json.dumps({c: _json(r.get(c)) for c in columns}) + "\n" for r in rows))
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv(r.get(c)) for c in columns] for r in rows)
        write_atomic(path, out.getvalue())


def _json(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _csv(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)  # no value (read back as NaN), or the float exactly
    return "" if v is None else str(v)


def _parquet(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {c: [_json(r.get(c)) for r in rows] for c in columns}
    if any(abs(i) >= 2**63 for i in data["index"]):  # an astronomical space: beyond int64
        data["index"] = [str(i) for i in data["index"]]
    table = pa.table(data)
    table = table.replace_schema_metadata({_MARK: b"1"})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())
