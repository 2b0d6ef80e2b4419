"""The canonical format: idempotent, layout-only (the syntax tree is unchanged), comments kept,
and every checked-in spec is already canonical."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.compiler import compile_text
from archdsl.fmt import format_module
from archdsl.syntax import parse
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
