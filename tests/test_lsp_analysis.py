"""The language server's analysis of a buffer, in process: the syntax-tree cache keeps one tree
per file (however many edits), a bug of ours becomes a diagnostic rather than a dead server, and
the compiler's own bound on spec size holds for buffers."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.lsp import analysis as analysis_module
from archdsl.lsp.analysis import EditorFiles, analyse
from archdsl.lsp.diagnostics import diagnostics
from conftest import small_net


def test_the_tree_cache_keeps_one_tree_per_file_across_edits(tmp_path: Path):
    files = EditorFiles()
    path = tmp_path / "net.arch"
    for i in range(100):  # a hundred keystrokes
        analyse(path, small_net(f"ib k3 e4 c{16 + i}"), files, {})
    assert len(files._trees) == 1
    text = small_net("ib k3 e4 c24")
    first = analyse(path, text, files, {}).module
    assert analyse(path, text, files, {}).module is first  # the same text: not parsed again


def test_an_internal_error_is_a_diagnostic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(*args: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(analysis_module, "resolve", broken)
    a = analyse(tmp_path / "net.arch", small_net("ib k3 e4 c24"), EditorFiles(), {})
    (e,) = a.errors
    assert e.message == "internal error: KeyError: 'a bug'" and a.module is not None
    (d,) = diagnostics(a, "utf-16")[a.path]
    assert d.range.start.line == 0 and "please report it" in d.message


def test_a_buffer_over_the_size_bound_is_not_parsed(tmp_path: Path):
    a = analyse(tmp_path / "big.arch", "# " + "x" * (1 << 18), EditorFiles(), {})
    (e,) = a.errors
    assert "more than the 262,144 bytes a spec may have" in e.message and a.module is None


def test_a_space_whose_first_candidate_does_not_build_shows_one_that_does(tmp_path: Path):
    """`uib k{0,3}/{0,3} s2`: candidate 0 (k0/0) has no depthwise conv for the stride; the space
    is fine, so the buffer is analysed on another candidate and no error is shown."""
    from archdsl.lsp.hover import hover_text

    text = small_net("uib k{0,3}/{0,3} s2 e4 c24")
    a = analyse(tmp_path / "space.arch", text, EditorFiles(), {})
    assert a.errors == [] and len(a.networks) == 1
    ((space, shown),) = a.spaces
    assert shown != 0 and space.labels(space.binding(shown)) != {"a.0.k[0]": "0", "a.0.k[1]": "0"}
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "uib" in t)
    col = text.splitlines()[line - 1].index("{") + 2
    said = hover_text(a, (line, col))
    assert said is not None and f"candidate {shown:,}'s (candidate 0 does not build)" in said
    (error,) = analyse(tmp_path / "b.arch", small_net("uib k0/{0} s2 e4 c24"), EditorFiles(), {}).errors
    assert "in candidate 0 of the space" in error.render()  # no candidate builds: candidate 0's error
