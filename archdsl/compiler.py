"""The front half of the compiler as one call: spec file -> resolved `Network`."""

from __future__ import annotations

from pathlib import Path

from .ir.deploy_form import deploy_form
from .ir.network import Network
from .ir.pipeline import resolve
from .language.loader import load_file, load_text, project_root
from .language.lower import lower


def compile_file(
    path: str | Path,
    network: str | None = None,
    import_root: Path | None = None,
    resolution: tuple[int, int] | None = None,
    shown_as: str | None = None,
    deploy: bool = False,
) -> Network:
    """Compile a spec file. `resolution` replaces the network's input size (H, W); `shown_as` is
    the name generated code gives the spec (default: `path` as given); `deploy` gives the
    inference form: every BatchNorm folded into its conv, MobileOne branches merged."""
    spec = lower(load_file(path, import_root), network)
    if resolution is not None:
        spec = spec.model_copy(update={"resolution": resolution, "rho": 1.0})
    net = resolve(spec, shown_as or _shown(Path(path)))
    return deploy_form(net) if deploy else net


def compile_text(text: str, file: str = "<string>", network: str | None = None) -> Network:
    return resolve(lower(load_text(text, file), network), file)


def _shown(path: Path) -> str:
    """A spec's name in generated code: relative to its project root, so output does not depend
    on the working directory or on where the checkout lives."""
    resolved = path.resolve()
    root = project_root(resolved.parent)
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else path.name
