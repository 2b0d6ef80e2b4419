"""No spec text makes archdsl crash, hang or write raw control characters: deep nesting, huge
numbers, import chains and loops, files that are not regular files, byte-order marks, control and
bidi characters, and mistakes inside templates and families (shown with where they were used).
Each case asserts the exact `file:line:col` and a fragment of the message; the cases that could
hang on a broken build run in a subprocess with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.codegen.registry import get_backend
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from archdsl.language.fmt import format_module
from archdsl.language.syntax import parse
from archdsl.limits import MAX_IMPORT_DEPTH, MAX_IMPORTED_FILES, MAX_NESTING, MAX_SPEC_BYTES
from conftest import ROOT, SMALL_NET

# `classes` is on line 3 (its value from column 11).
NET = SMALL_NET.replace("HEAD", "pool avg; classifier")  # a block on line 7 from column 5


def block(text: str) -> str:
    return NET.replace("BLOCK", text)


def classes(expr: str) -> str:
    return block("").replace("classes 10", f"classes {expr}")


N = 400  # far beyond MAX_NESTING
TWENTY_NINES = "9" * 20

DEEP = [
    pytest.param(classes("(" + "+".join(["1"] * N) + ")"), "case.arch:3:12", "expression nests more than",
                 id="400-term-sum"),  # at the deepest node: the first term, under every `+`
    pytest.param(classes("(" + "-" * N + "1)"), f"case.arch:3:{12 + N}", "expression nests more than",
                 id="400-negations"),  # the operand of the innermost `-`
    pytest.param(classes("(" * N + "1" + ")" * N), f"case.arch:3:{11 + MAX_NESTING}", "parentheses nest more than",
                 id="400-parentheses"),  # at the first '(' too many
    pytest.param(classes("(1+" * N + "1" + ")" * N), f"case.arch:3:{11 + 3 * MAX_NESTING}",
                 "parentheses nest more than", id="400-nested-sums"),
    pytest.param(block("s " + "{ s " * N + "}" * N), f"case.arch:7:{6 + 4 * N - 1}", "bodies nest more than",
                 id="400-nested-braces"),  # at the innermost statement
    pytest.param(block("s {\n" * N + "}\n" * N), f"case.arch:{7 + N - 1}:3", "bodies nest more than",
                 id="400-nested-braces-on-lines"),
    pytest.param(block("{ " * N + "}" * N), "case.arch:7:5", "unexpected '{'", id="400-bare-braces"),
    pytest.param(classes("9" * 5000), "case.arch:3:11", "number too long: 5,000 characters", id="5000-digit-literal"),
    pytest.param(block("ib k3 e4 c" + "9" * 5000), "case.arch:7:14", "number too long", id="5000-digit-option"),
    pytest.param(block("").replace("32x32x3", "9" * 5000 + "x3"), "case.arch:2:9", "number too long",
                 id="5000-digit-shape"),
    pytest.param(block("ib k3 e=(" + "9" * 400 + "*" + "9" * 400 + ") c16"), "case.arch:7:14", "number too long",
                 id="400-nines-product"),
    pytest.param(classes(f"({TWENTY_NINES}*{TWENTY_NINES})"), "case.arch:3:12", "number out of range",
                 id="product-beyond-1e30"),
    pytest.param(block(f"ib k3 e=({TWENTY_NINES}*{TWENTY_NINES}*1.5) c16"), "case.arch:7:14", "number out of range",
                 id="product-as-a-float"),  # float(int) would overflow past 1e308
    pytest.param(classes("1" + "0" * 30 + "1"), "case.arch:3:11", "number out of range", id="literal-beyond-1e30"),
    pytest.param(classes("(1e300*1e300)"), "case.arch:3:12", "number out of range", id="float-product-overflow"),
]  # fmt: skip


def first_error(text: str, file: str = "case.arch") -> ArchError:
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_text(text, file)
    err = info.value
    return err.errors[0] if isinstance(err, ArchErrors) else err


def where(err: ArchError) -> str:
    assert err.span is not None, err.render()
    return f"{Path(err.span.file).name}:{err.span.line}:{err.span.col}"


@pytest.mark.parametrize("text, at, message", DEEP)
def test_deep_or_huge_text_is_a_located_error(text, at, message):
    err = first_error(text)
    assert where(err) == at, err.render()
    assert message in err.message
    assert err.render().count("\n") <= 4  # the message, the line, the caret, the hint (one long line is cut)
    assert max(map(len, err.render().splitlines())) < 400


def archdsl(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "archdsl", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


@pytest.mark.parametrize("text, at, message", [DEEP[i] for i in (0, 1, 2, 4, 7, 10)])
def test_the_command_line_reports_them_without_traceback(tmp_path, text, at, message):
    (tmp_path / "case.arch").write_text(text)
    result = archdsl("cost", "case.arch", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"{at}: error: ") and message in result.stderr.splitlines()[0]


def test_the_deepest_accepted_text_formats_and_evaluates():
    """What the parser accepts, the Transformer, the evaluator and the formatter can walk."""
    for n in range(MAX_NESTING, 0, -1):  # the longest chain of negations that parses
        text = classes("(" + "-" * n + "1)")
        try:
            module = parse(text, "case.arch")
        except ArchError:
            continue
        break
    assert n > MAX_NESTING * 0.9
    assert parse(format_module(module), "case.arch") == module
    assert compile_text(text if n % 2 == 0 else text.replace("(-", "(", 1), "case.arch").classes == 1
    braces = "block t {\n" + "s {\n" * (MAX_NESTING // 2 - 3) + "}\n" * (MAX_NESTING // 2 - 3) + "}\n"
    assert parse(format_module(parse(braces)), "b.arch") == parse(braces)


# --- files --------------------------------------------------------------------------------


def chain(tmp: Path) -> Path:
    for i in range(MAX_IMPORT_DEPTH + 5):
        (tmp / f"c{i}.arch").write_text(f'import "c{i + 1}.arch"\n')
    (tmp / f"c{MAX_IMPORT_DEPTH + 5}.arch").write_text("")
    return tmp / "c0.arch"


def many(tmp: Path) -> Path:
    for i in range(MAX_IMPORTED_FILES + 1):
        (tmp / f"f{i}.arch").write_text("")
    (tmp / "main.arch").write_text("".join(f'import "f{i}.arch"\n' for i in range(MAX_IMPORTED_FILES + 1)))
    return tmp / "main.arch"


def importing(target: str, make=None):
    def setup(tmp: Path) -> Path:
        if make:
            make(tmp)
        (tmp / "main.arch").write_text(f'import "{target}"\n')
        return tmp / "main.arch"

    return setup


def symlink_loop(tmp: Path) -> None:
    os.symlink("b.arch", tmp / "a.arch")
    os.symlink("a.arch", tmp / "b.arch")


def not_utf8(tmp: Path) -> None:
    (tmp / "lib.arch").write_bytes(b"# fine\n# caf\xe9\n")


IMPORTS = [
    pytest.param(chain, f"c{MAX_IMPORT_DEPTH}.arch:1:8", f"imports nest more than {MAX_IMPORT_DEPTH} deep",
                 id="import-chain-too-deep"),
    pytest.param(many, f"main.arch:{MAX_IMPORTED_FILES + 1}:8", f"at most {MAX_IMPORTED_FILES} files",
                 id="too-many-imports"),
    pytest.param(importing("a.arch", symlink_loop), "main.arch:1:8", "cannot import 'a.arch': a symbolic link loop",
                 id="import-symlink-loop"),
    pytest.param(importing("a\0b.arch"), "main.arch:1:8", "cannot import 'a\\x00b.arch': a path cannot hold a NUL",
                 id="nul-in-import-path"),
    pytest.param(importing("lib", lambda t: (t / "lib").mkdir()), "main.arch:1:8",
                 "cannot import 'lib': it is a directory, not a regular file", id="import-a-directory"),
    pytest.param(importing("lib.arch", not_utf8), "lib.arch:2:6", "is not UTF-8 text (byte 12)",
                 id="imported-file-not-utf8"),
]  # fmt: skip


@pytest.mark.parametrize("setup, at, message", IMPORTS)
def test_import_problems_are_located(tmp_path, setup, at, message):
    with pytest.raises(ArchError) as info:
        compile_file(setup(tmp_path))
    assert where(info.value) == at, info.value.render()
    assert message in info.value.message


def fifo(tmp: Path, name: str) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp / name)


def oversized(tmp: Path, name: str) -> None:
    (tmp / name).write_text("#" * MAX_SPEC_BYTES + "\n")


NOT_REGULAR = [
    pytest.param(lambda t, n: (t / n).mkdir(), "it is a directory, not a regular file", id="directory"),
    pytest.param(fifo, "it is a named pipe (FIFO), not a regular file", id="fifo"),
    pytest.param(None, "it is a character device, not a regular file", id="dev-zero"),
    pytest.param(oversized, f"it has {MAX_SPEC_BYTES + 1:,} bytes, more than the {MAX_SPEC_BYTES:,} bytes a spec may have",
                 id="oversized"),
]  # fmt: skip


def spec_path(tmp: Path, make, name: str) -> str:
    if make is None:
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        return "/dev/zero"
    make(tmp, name)
    return name


@pytest.mark.parametrize("make, why", NOT_REGULAR)
def test_a_spec_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, make, why):
    path = spec_path(tmp_path, make, "x.arch")
    result = archdsl("cost", path, cwd=tmp_path)  # a hang fails by the timeout instead of blocking
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"error: cannot read spec {path!r}: {why}\n"  # the command line named it: no line


@pytest.mark.parametrize("make, why", NOT_REGULAR)
def test_an_import_that_is_not_a_regular_file_is_refused_at_the_import(tmp_path, make, why):
    target = spec_path(tmp_path, make, "lib.arch")
    (tmp_path / "main.arch").write_text(f'# a library\nimport "{target}"\n')
    result = archdsl("cost", "main.arch", "--import-root", "/", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[0] == f"main.arch:2:8: error: cannot import {target!r}: {why}"


def test_a_byte_order_mark_is_accepted(tmp_path):
    text = (ROOT / "specs" / "mnv1.arch").read_text()
    (tmp_path / "plain").mkdir()
    (tmp_path / "bom").mkdir()
    (tmp_path / "plain" / "mnv1.arch").write_text(text)
    (tmp_path / "bom" / "mnv1.arch").write_text("\ufeff" + text, encoding="utf-8")
    torch = get_backend("torch")
    assert torch.emit(compile_file(tmp_path / "bom" / "mnv1.arch")) == torch.emit(
        compile_file(tmp_path / "plain" / "mnv1.arch")
    )
    (tmp_path / "lib.arch").write_text("\ufeffblock pair(c) {\n  ib k3 e4 c=c\n}\n", encoding="utf-8")
    (tmp_path / "main.arch").write_text('import "lib.arch"\n' + block("pair c=16"))
    assert len(compile_file(tmp_path / "main.arch").stages[0].blocks) == 2
    err = first_error("\ufeffnetwrk n {\n}\n")  # columns count from after the mark
    assert where(err) == "case.arch:1:1" and err.render().splitlines()[1] == "  netwrk n {"


# --- what reaches the terminal ------------------------------------------------------------

ESCAPES = [
    pytest.param(block("ib k3 e4 c16 \0x"), "case.arch:7:18", "unexpected character '\\x00'",
                 "      ib k3 e4 c16 \\x00x", "      " + " " * 13 + "^^^^", id="nul"),
    pytest.param(block("ib k3 e4 c16 \x1b[31mred"), "case.arch:7:18", "unexpected character '\\x1b'",
                 "      ib k3 e4 c16 \\x1b[31mred", "      " + " " * 13 + "^^^^", id="ansi-escape"),
    pytest.param(block("ib k3 e4 c16 act=\u202erelu"), "case.arch:7:22", "unexpected character '\\u202e'",
                 "      ib k3 e4 c16 act=\\u202erelu", "      " + " " * 17 + "^^^^^^", id="bidi-override"),
    pytest.param('import "\u202e\x1b.arch" x\n', "case.arch:1:18", "unexpected 'x'",
                 '  import "\\u202e\\x1b.arch" x', "  " + " " * 25 + "^", id="caret-after-escapes"),
    pytest.param('import "\u202e\x1b.arch"\n', "case.arch:1:8", "cannot import '\\u202e\\x1b.arch'",
                 '  import "\\u202e\\x1b.arch"', "  " + " " * 7 + "^" * 17, id="caret-under-escapes"),
    pytest.param("network n {\n  clases 10 # \x1b]0;title\x07\r\n}\n", "case.arch:2:3", "unknown network statement",
                 "    clases 10 # \\x1b]0;title\\x07", "    ^^^^^^", id="escapes-in-a-comment"),
]  # fmt: skip


@pytest.mark.parametrize("text, at, message, line, caret", ESCAPES)
def test_control_and_bidi_characters_are_shown_escaped(tmp_path, monkeypatch, text, at, message, line, caret):
    monkeypatch.chdir(tmp_path)  # the import cases resolve their paths here
    err = first_error(text, "case.arch")
    assert where(err) == at and message in err.message, err.render()
    shown = err.render().splitlines()
    assert shown[0].startswith(f"{at}: error: ")
    assert shown[1:3] == [line, caret]
    assert all(ch.isprintable() for ch in err.render().replace("\n", ""))


# --- mistakes inside templates and families -----------------------------------------------

TEMPLATES = """\
block inner(c) {
  ib k3 e4 c=c act=rleu
}

block outer(c) {
  conv k1 c=c
  inner c=c
}

block even(c) {
  conv k4 c=c
}
"""  # a network follows on line 14: its block on line 20, column 5

FAMILY = (
    block("").replace("network n", "network fam(w=1)").replace("ib k3 e4 c16", "MEMBER") + "network lite2 = fam(w=2)\n"
)


NOTES = [
    pytest.param(TEMPLATES + "\n" + block("inner c=16"), "case.arch:2:20", "unknown activation 'rleu'",
                 ["  note: in block 'inner' used at case.arch:20:5"], id="template"),
    pytest.param(TEMPLATES + "\n" + block("outer c=16"), "case.arch:2:20", "unknown activation 'rleu'",
                 ["  note: in block 'inner' used at case.arch:7:3", "  note: in block 'outer' used at case.arch:20:5"],
                 id="nested-templates"),
    pytest.param(TEMPLATES + "\n" + block("even c=16"), "case.arch:11:8", "kernel 4 is even",
                 ["  note: in block 'even' used at case.arch:20:5"], id="template-error-found-by-a-pass"),
    pytest.param(TEMPLATES + "\n" + block("inner"), "case.arch:20:5", "block 'inner' needs parameter 'c'", [],
                 id="error-at-the-use-has-no-note"),
    pytest.param(FAMILY.replace("MEMBER", "ib k3 e4 c=16*w act=rleu"), "case.arch:6:25", "unknown activation",
                 ["  note: in network 'lite2' = fam(...) at case.arch:13:1"], id="family-member"),
    pytest.param(FAMILY.replace("MEMBER", "conv k4 c=8*w"), "case.arch:6:10", "kernel 4 is even",
                 ["  note: in network 'lite2' = fam(...) at case.arch:13:1"], id="family-error-found-by-a-pass"),
    pytest.param(TEMPLATES + "\n" + FAMILY.replace("MEMBER", "outer c=8*w"), "case.arch:2:20", "unknown activation",
                 ["  note: in block 'inner' used at case.arch:7:3", "  note: in block 'outer' used at case.arch:19:5",
                  "  note: in network 'lite2' = fam(...) at case.arch:26:1"], id="template-in-a-family-member"),
    pytest.param(FAMILY.replace("MEMBER", "ib k3 e4 c16").replace("fam(w=2)", "fam(v=2)"), "case.arch:13:21",
                 "has no parameter 'v'", [], id="error-at-the-member-has-no-note"),
]  # fmt: skip


@pytest.mark.parametrize("text, at, message, notes", NOTES)
def test_errors_inside_definitions_say_where_they_were_used(text, at, message, notes):
    err = first_error(text)
    assert where(err) == at and message in err.message, err.render()
    lines = err.render().splitlines()
    assert [line for line in lines if line.startswith("  note: ")] == notes
    assert lines[len(lines) - len(notes) :] == notes  # after the hint
