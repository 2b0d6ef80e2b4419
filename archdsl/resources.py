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
