"""Locate the grammar and the backend templates, in a checkout and in an installed wheel.

In a checkout they live at the repository root (`grammars/`, `backends/`); a wheel ships them
inside the package (`archdsl/grammars/`, `archdsl/templates/`), see pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def grammar_dir() -> Path:
    return _first_dir(_PACKAGE / "grammars", _PACKAGE.parent / "grammars")


def template_dir() -> Path:
    return _first_dir(_PACKAGE / "templates", _PACKAGE.parent / "backends")


def _first_dir(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"archdsl resources missing; looked in {', '.join(map(str, candidates))}")


def user_cache_dir() -> Path | None:
    """archdsl's cache directory for this user (compiled templates, parse tables), or None if
    it cannot be created: then nothing is cached."""
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archdsl"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    return root
