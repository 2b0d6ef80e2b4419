"""A real editor: Neovim headless, its built-in LSP client attached to `archdsl lsp`, opens a spec
with an error; the diagnostic arrives where the compiler locates it, the line is mended in the
buffer (unsaved), the diagnostic goes, and a hover on the mended block shows its shape and cost.

Neovim is a Debian package the set-up installs (`make setup`); without it this test is skipped
and says so (tests/test_lsp.py drives every feature through pytest-lsp either way)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.analysis.cost import block_cost
from archdsl.compiler import compile_file
from archdsl.errors import ArchError

SCRIPT = Path(__file__).parent / "editors" / "nvim_lsp.lua"
GOOD = "    ib k3 e4 c24"
SPEC = f"""\
network toy {{
  input 32x32x3
  classes 10
  stem conv k3 s2 c16
  stage s0 {{
{GOOD.replace("ib", "ibb")}
  }}
  head {{
    pool avg
    classifier
  }}
}}
"""


@pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (make setup installs it)")
def test_neovim_gets_the_diagnostic_and_a_hover(tmp_path: Path):
    spec = tmp_path / "toy.arch"
    spec.write_text(SPEC)
    (tmp_path / "archdsl.toml").write_text("")
    with pytest.raises(ArchError) as caught:
        compile_file(spec)
    error = caught.value
    assert error.span is not None
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        "ARCHDSL_NVIM_SPEC": str(spec),
        "ARCHDSL_NVIM_CMD": json.dumps([sys.executable, "-m", "archdsl", "lsp"]),
        "ARCHDSL_NVIM_FIX_LINE": "5",
        "ARCHDSL_NVIM_FIX_TEXT": GOOD,
        "ARCHDSL_NVIM_OUT": str(out),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # no user configuration
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    subprocess.run(
        ["nvim", "--headless", "--clean", "-c", f"luafile {SCRIPT}"], env=env, cwd=tmp_path, timeout=120, check=True,
        stdin=subprocess.DEVNULL, capture_output=True,
    )  # fmt: skip
    result = json.loads(out.read_text())
    (d,) = result["diagnostics"]
    assert (d["lnum"], d["col"], d["end_col"]) == (error.span.line - 1, error.span.col - 1, error.span.end_col - 1)
    assert d["message"].splitlines()[0] == error.message == "unknown block kind 'ibb'"
    assert d["source"] == "archdsl"
    assert result["cleared"] is True
    spec.write_text(SPEC.replace("ibb", "ib"))
    block = compile_file(spec).stages[0].blocks[0]
    assert "16x16x16 -> 24x16x16" in result["hover"]
    assert f"({block_cost(block).macs:,})" in result["hover"]
