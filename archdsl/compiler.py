"""The front half of the compiler as one call: spec file -> resolved `Network`."""

from __future__ import annotations

from pathlib import Path

from .ir import Network
from .loader import load_file, load_text
from .lower import lower
from .passes import resolve


def compile_file(path: str | Path, network: str | None = None, import_root: Path | None = None) -> Network:
    defs = load_file(path, import_root)
    return resolve(lower(defs, network), str(path))


def compile_text(text: str, file: str = "<string>", network: str | None = None) -> Network:
    defs = load_text(text, file)
    return resolve(lower(defs, network), file)
