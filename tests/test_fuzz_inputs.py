"""Damaged inputs, generated: real specs and weight files mutated at random (bytes replaced,
inserted, deleted, lines duplicated, files truncated). Whatever the damage, the command line
ends with exit status 0, 1 or 2 and no traceback, writes nothing when it fails, and touches
nothing but its output path (the working directory is snapshotted before and after)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_output_safety import TINY, snapshot

from archdsl.cli import main as cli
from conftest import SPECS

SPEC_TEXTS = [TINY] + [p.read_text() for p in sorted(SPECS.glob("*.arch")) if p.stat().st_size < 1500]
# What a careless edit or a hostile file puts into a spec: the language's own punctuation,
# digits and words, and characters it never uses (NUL, escapes, bidi controls, a BOM, CR).
PIECES = list("{}()=+-*/#;,x.\"\n\t 0123456789") + ["\0", "\x1b[31m", "\u202e", "\ufeff", "\r", "é", "9" * 60,
          "k", "ib", "x256", "import \"s.arch\"", "block", "network", "e=", "1e308", "--"]  # fmt: skip


@st.composite
def damaged(draw, texts: list[str], pieces: list[str]) -> str:
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        if edit == "insert":
            text = text[:at] + draw(st.sampled_from(pieces)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif edit == "replace":
            text = text[:at] + draw(st.sampled_from(pieces)) + text[at + 1 :]
        elif edit == "truncate":
            text = text[:at]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: i + 1] + lines[i:])
    return text


def main(args: list[str]) -> int:
    """The command line in process; argparse's usage errors arrive as SystemExit(2)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return cli.main(args)
        except SystemExit as exc:
            return int(exc.code or 0)


@pytest.fixture
def workdir(tmp_path):
    old = Path.cwd()
    (tmp_path / "pyproject.toml").write_text("")
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=damaged(SPEC_TEXTS, PIECES), command=st.sampled_from(["compile", "cost", "fmt"]))
def test_a_damaged_spec_never_crashes_and_writes_only_its_output(workdir, text, command):
    spec = workdir / "s.arch"
    spec.write_text(text, encoding="utf-8", errors="surrogateescape")
    out = workdir / "out" / "m.py"
    shutil.rmtree(out.parent, ignore_errors=True)  # from the previous example
    args = {"compile": ["compile", "s.arch", "-o", str(out)], "cost": ["cost", "s.arch", "--json"],
            "fmt": ["fmt", "--check", "s.arch"]}[command]  # fmt: skip
    before = snapshot(workdir)
    status = main(args)  # an exception here is a traceback a user would see
    assert status in (0, 1, 2)
    after = snapshot(workdir)
    if status != 0 or command != "compile":
        assert after == before
    else:
        assert {k: v for k, v in after.items() if not k.startswith("out")} == before
        assert out.read_text().startswith('"""')
    for leftover in workdir.rglob(".archdsl-*"):
        pytest.fail(f"temporary file left behind: {leftover}")


@st.composite
def damaged_bytes(draw, raw: bytes) -> bytes:
    """`raw` with a few bytes replaced, inserted or deleted, or cut short; the 8-byte length
    and the JSON header (the first few hundred bytes) are hit most often."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        header_end = 8 + int.from_bytes(raw[:8], "little")
        at = draw(st.one_of(st.integers(0, min(header_end, len(data))), st.integers(0, len(data))))
        edit = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = draw(st.sampled_from([0, 0xFF, ord('"'), ord("{"), ord("]"), ord("9"), ord(","), 0x7F]))
        if edit == "replace" and at < len(data):
            data[at] = byte
        elif edit == "insert":
            data[at:at] = bytes([byte])
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


@pytest.fixture(scope="module")
def weight_files():
    """A small network, its canonical weights, and the same weights under timm's names."""
    from safetensors.numpy import save

    from archdsl.compiler import compile_text
    from archdsl.runtimes.importers.timm import _modules, timm_key
    from archdsl.runtimes.weights import init_weights

    net = compile_text(TINY, "tiny.arch")
    weights = init_weights(net, 0)
    modules = _modules(net, {"blocks.0.0.pw_exp.conv.weight": None})
    checkpoint = {str(timm_key(k, modules)): v for k, v in weights.items()}
    return net, save(weights), save(checkpoint)


@FUZZ
@given(data=st.data())
def test_a_damaged_weight_file_is_an_error_or_loads_checked(workdir, weight_files, data):
    """Canonical weights as verify and export read them: either an ArchError or tensors that
    fit the network exactly, finite float32."""
    import numpy as np

    from archdsl.analysis.layers import network_tensors
    from archdsl.errors import ArchError
    from archdsl.runtimes.weights import load_canonical

    net, canonical, _ = weight_files
    path = workdir / "w.safetensors"
    path.write_bytes(data.draw(damaged_bytes(canonical)))
    try:
        weights, form = load_canonical(path, net)
    except ArchError as exc:
        assert "w.safetensors" in exc.render()
        return
    assert form == "train"
    assert {k: tuple(v.shape) for k, v in weights.items()} == {t.key: t.shape for t in network_tensors(net)}
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights.values())


@FUZZ
@given(data=st.data())
def test_a_damaged_checkpoint_never_crashes_import_weights(workdir, weight_files, data):
    _, _, checkpoint = weight_files
    (workdir / "tiny.arch").write_text(TINY)
    (workdir / "ckpt.safetensors").write_bytes(data.draw(damaged_bytes(checkpoint)))
    shutil.rmtree(workdir / "out", ignore_errors=True)
    before = snapshot(workdir)
    status = main(["import-weights", "tiny.arch", "--from", "timm", "ckpt.safetensors", "-o", "out/w.safetensors"])
    assert status in (0, 1)
    after = snapshot(workdir)
    if status:
        assert after == before
    else:
        assert {k: v for k, v in after.items() if not k.startswith("out")} == before
    assert not list(workdir.rglob(".archdsl-*"))
