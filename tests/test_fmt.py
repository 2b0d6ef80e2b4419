"""The canonical format: idempotent, layout-only (the syntax tree is unchanged), comments kept,
and every checked-in spec is already canonical."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from archdsl.compiler import compile_text
from archdsl.language.fmt import format_module
from archdsl.language.syntax import parse
from conftest import ROOT, SPECS

SOURCES = sorted(SPECS.glob("*.arch")) + sorted((ROOT / "tests" / "fixtures").glob("*.arch"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_format_round_trips_and_is_idempotent(path: Path):
    text = path.read_text()
    once = format_module(parse(text, str(path)))
    assert parse(once, "formatted") == parse(text, str(path))
    assert format_module(parse(once, "formatted")) == once


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.arch")), ids=lambda p: p.name)
def test_checked_in_specs_are_canonical(path: Path):
    text = path.read_text()
    assert format_module(parse(text, str(path))) == text


def test_comments_survive_in_place():
    text = (ROOT / "tests" / "fixtures" / "layout.arch").read_text()
    out = format_module(parse(text, "layout.arch"))
    comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    assert [line.split("#", 1)[1] for line in out.splitlines() if "#" in line] == comments
    assert "  classes 10\n" in out  # `a ; b` split into lines
    assert "    pair c=16*2 s=2  # parenthesised expression\n" in out  # redundant parentheses dropped
    assert "c=-(-48)" in out
    assert "}  # trailing on a one-liner" not in out  # the comment follows the last statement on its line
    assert "  ib k3 e4 c=c  # trailing on a one-liner\n" in out


def test_formatted_spec_compiles_to_the_same_network():
    text = (ROOT / "tests" / "fixtures" / "layout.arch").read_text()
    out = format_module(parse(text, "layout.arch"))
    a = compile_text(text, "layout.arch", network="layout_small")
    b = compile_text(out, "layout.arch", network="layout_small")
    assert a.model_dump(exclude={"source_hash"}) == b.model_dump(exclude={"source_hash"})


# A metadata section laid out badly; its strings hold what must not be read as layout.
MESSY_METADATA = """network t { input 32x32x3; classes 10
  metadata { author   "Jane  Doe"  # two spaces kept
    license "Apache-2.0";  description "a;b {c} #d \\e\\n"
  version "1.2" }
  stem conv k3 c16
  stage s0 { ib k3 e4 c16 }
  head { pool avg; classifier } }"""
CANONICAL_METADATA = """network t {
  input 32x32x3
  classes 10
  metadata {
    author "Jane  Doe"  # two spaces kept
    license "Apache-2.0"
    description "a;b {c} #d \\e\\n"
    version "1.2"
  }
  stem conv k3 c16
  stage s0 {
    ib k3 e4 c16
  }
  head {
    pool avg
    classifier
  }
}
"""


def test_strings_print_back_quoted_as_written():
    once = format_module(parse(MESSY_METADATA))
    assert once == CANONICAL_METADATA
    assert format_module(parse(once)) == once and parse(once) == parse(MESSY_METADATA)
    assert compile_text(once).metadata == compile_text(MESSY_METADATA).metadata
    assert compile_text(once).metadata.description == "a;b {c} #d \\e\\n"  # backslashes kept verbatim


@pytest.mark.parametrize(
    "expr, canonical",
    [
        ("c=(a+b)*2", "c=(a+b)*2"),
        ("c=a+(b*2)", "c=a+b*2"),
        ("c=a-(b-1)", "c=a-(b-1)"),
        ("c=(a-b)-1", "c=a-b-1"),
        ("c=a/(b/2)", "c=a/(b/2)"),
        ("c=-(a+1)", "c=-(a+1)"),
        ("c=a1 / 2", "c=a1 / 2"),  # `a1/2` would lex as one compact word, like k5/3
        ("c=a / 2", "c=a/2"),
    ],
)
def test_expressions_keep_their_meaning_with_minimal_parentheses(expr, canonical):
    src = f"block t(a, b, a1) {{\n  conv k3 {expr}\n}}\n"
    out = format_module(parse(src))
    assert f"  conv k3 {canonical}\n" in out
    assert parse(out) == parse(src)


# `fmt --diff`: the unified diff of each file that would change, as `ruff format --diff` and
# `black --diff` print it; exit 1 when any would change; nothing written.

MESSY = "network t { input 32x32x3; classes 10\n  stem conv k3 c16\n  stage s0 { ib k3 e4 c16 }\n  head { pool avg; classifier } }"  # fmt: skip
MESSY_DIFF = """\
--- a/m.arch
+++ b/m.arch
@@ -1,4 +1,12 @@
-network t { input 32x32x3; classes 10
+network t {
+  input 32x32x3
+  classes 10
   stem conv k3 c16
-  stage s0 { ib k3 e4 c16 }
-  head { pool avg; classifier } }
\\ No newline at end of file
+  stage s0 {
+    ib k3 e4 c16
+  }
+  head {
+    pool avg
+    classifier
+  }
+}
"""


def fmt(*args: str) -> int:
    from archdsl.cli.main import main

    return main(["fmt", *args])


def test_fmt_diff_prints_git_style_hunks_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("m.arch").write_text(MESSY)
    Path("ok.arch").write_text(format_module(parse(MESSY)))
    assert fmt("--diff", "ok.arch", "m.arch", "ok.arch") == 1
    out, err = capsys.readouterr()
    assert out == MESSY_DIFF  # canonical files print nothing; a last line without "\n" is marked
    assert err == "1 file(s) not in canonical format (run: archdsl fmt --write FILE...)\n"
    assert Path("m.arch").read_text() == MESSY


def test_fmt_diff_applies_to_give_the_canonical_text(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    layout = (ROOT / "tests" / "fixtures" / "layout.arch").read_text()
    Path("layout.arch").write_text(layout)
    Path("m.arch").write_text(MESSY)
    assert fmt("--diff", "layout.arch", "m.arch") == 1
    patch = capsys.readouterr().out
    assert [line for line in patch.splitlines() if line.startswith(("--- ", "+++ "))] == [
        "--- a/layout.arch", "+++ b/layout.arch", "--- a/m.arch", "+++ b/m.arch",
    ]  # fmt: skip
    subprocess.run(["git", "apply", "-"], input=patch, text=True, check=True)  # as a reviewer would
    assert Path("layout.arch").read_text() == format_module(parse(layout))
    assert Path("m.arch").read_text() == format_module(parse(MESSY))
    assert fmt("--diff", "layout.arch", "m.arch") == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("other", ["--check", "--write"])
def test_fmt_diff_excludes_the_other_modes(tmp_path, other, capsys):
    path = tmp_path / "m.arch"
    path.write_text(MESSY)
    with pytest.raises(SystemExit) as raised:
        fmt("--diff", other, str(path))
    assert raised.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert path.read_text() == MESSY
