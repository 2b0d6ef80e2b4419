"""Generated files under `generated/<backend>/`: what they should be, and `check`/`regen`.

A spec file gets generated code when it defines a concrete network; a file holding only a
family or block templates is a library and is skipped.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomic
from .backends.registry import get_backend, names
from .compiler import compile_file
from .errors import ArchError
from .loader import load_file
from .lower import concrete_in


@dataclass(frozen=True)
class Target:
    spec: Path
    network: str
    backend: str
    path: Path


def targets(root: Path) -> list[Target]:
    """Every (spec, network, backend) to generate: `<spec>.py`, or `<network>.py` for each
    network of a spec file that defines several."""
    out: list[Target] = []
    claimed: dict[Path, Target] = {}
    for spec in sorted((root / "specs").glob("*.arch")):
        networks = concrete_networks(spec)
        for network in networks:
            stem = spec.stem if len(networks) == 1 else network
            for backend in names():
                target = Target(
                    spec, network, backend, root / "generated" / backend / (stem + get_backend(backend).file_suffix)
                )
                if target.path in claimed:
                    first = claimed[target.path]
                    raise ArchError(
                        f"{first.spec.name} ({first.network}) and {spec.name} ({network}) would both generate "
                        f"{target.path.relative_to(root)}",
                        hint="rename one of the networks or spec files",
                    )
                claimed[target.path] = target
                out.append(target)
    return out


def concrete_networks(spec: Path) -> list[str]:
    return concrete_in(load_file(spec))


def has_concrete_network(spec: Path) -> bool:
    return bool(concrete_networks(spec))


def emit(target: Target, root: Path) -> str:
    net = compile_file(target.spec, target.network, shown_as=target.spec.relative_to(root).as_posix())
    return get_backend(target.backend).emit(net)


def stale(root: Path) -> list[str]:
    """Unified diffs of every generated file that differs from what the compiler emits now."""
    if not (root / "specs").is_dir():
        raise ArchError(f"{root} has no specs/ directory", hint="run from the project root or pass --root")
    diffs = []
    expected_paths = set()
    for t in targets(root):
        expected_paths.add(t.path)
        want = emit(t, root)
        have = t.path.read_text() if t.path.exists() else ""
        if want != have:
            rel = t.path.relative_to(root)
            diffs.append(
                "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), f"a/{rel}", f"b/{rel}"))
            )
    for backend in names():
        for path in sorted((root / "generated" / backend).glob("*")):
            if path.is_file() and path not in expected_paths:
                diffs.append(f"{path.relative_to(root)}: no spec generates this file\n")
    return diffs


def regen(root: Path) -> list[Path]:
    """Rewrite what changed; everything is generated in memory first, so a spec that fails
    leaves generated/ untouched."""
    texts = [(t.path, emit(t, root)) for t in targets(root)]
    written = []
    for path, text in texts:
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text)
            written.append(path)
    return written
