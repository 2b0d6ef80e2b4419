"""Located error messages: a table of distinct user mistakes (parse, semantic, shape, template,
family, expression and import errors), each with the exact `file:line:col` a careful user would
point at and fragments of the message and hint; then the rendering (`file:line:col: error:`, the
source line, a caret under the column, the hint) and the command line (exit 1 with no traceback
on a bad spec, exit 2 on a usage error, no output file left behind). Cases marked xfail are
compiler defects: the expectation is what the compiler should report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from conftest import ROOT, SMALL_NET

FIXTURES = Path(__file__).parent / "fixtures" / "errors"

# `stage_line` puts a block on line 7 at column 5; `head_line` replaces the head's blocks on line
# 10, column 5 (see conftest.SMALL_NET).
NET = SMALL_NET


def stage_line(block: str) -> str:
    return NET.replace("BLOCK", block).replace("HEAD", "pool avg; classifier")


def head_line(blocks: str) -> str:
    return NET.replace("BLOCK", "").replace("HEAD", blocks)


def with_template(definition: str, use: str) -> str:
    """`definition` on lines 1-3, then the network with `use` on line 10 from column 5."""
    assert definition.count("\n") == 2
    return definition + "\n" + stage_line(use)


PAIR = "block pair(c) {\n  ib k3 e4 c=c\n}"
FAMILY = stage_line("").replace("network n", "network fam(w=1)")  # lines 1-12


def case(id: str, spec: str | Path, where: str, message: str, hint: str | None = None):
    return pytest.param(spec, where, message, hint, id=id)


CASES = [
    # --- syntax -----------------------------------------------------------------------------
    case("unclosed-brace", "network n {\n  stage a {\n    ib k3 e4 c16\n  }\n", "case.arch:5:1",
         "unexpected end of file", "'{' at line 1, column 11 is never closed"),
    case("stray-character", stage_line("ib k3 e4 c16 @"), "case.arch:7:18", "unexpected character '@'"),
    case("unterminated-string", 'import "base.arch\n', "case.arch:1:8", "unterminated string", "close the path"),
    case("missing-value-after-equals", stage_line("ib k3 c16 e="), "case.arch:7:17", "unexpected end of line",
         "a number"),
    case("number-after-network", "network 3 {\n}\n", "case.arch:1:9", "unexpected '3'", "expected a name"),
    case("kernel-list-as-name", "network k5/3 {\n}\n", "case.arch:1:9", "'k5/3' is not a valid name"),
    case("misspelled-network-keyword", "netwrk n {\n}\n", "case.arch:1:1", "unexpected 'netwrk'", "'network'"),
    case("extra-closing-brace", "network n {\n}\n}\n", "case.arch:3:1", "unexpected '}'"),
    case("unclosed-parameter-list", "network n(a=1 {\n}\n", "case.arch:1:15", "unexpected '{'", "')'"),
    # --- blocks -----------------------------------------------------------------------------
    case("unknown-block-kind", stage_line("extra_dww k5/5 e3 c16"), "case.arch:7:5",
         "unknown block kind 'extra_dww'", "did you mean 'extra_dw'?"),
    case("unknown-option", stage_line("ib k3 e4 c16 mdi=32"), "case.arch:7:18", "'ib' has no option 'mdi'",
         "did you mean 'mid'?"),
    case("option-of-another-kind", stage_line("conv k3 e4 c16"), "case.arch:7:13", "'conv' has no option 'e'",
         "it takes: aa, act, alpha, bias, c"),
    case("option-given-twice", stage_line("ib k3 e4 c16 c32"), "case.arch:7:18", "option 'c' given twice"),
    case("missing-output-channels", stage_line("ib k3 e4"), "case.arch:7:5", "'ib' needs its output channels",
         "c96"),
    case("missing-kernel", stage_line("conv c16"), "case.arch:7:5", "'conv' needs a kernel size", "k3"),
    case("uib-one-kernel", stage_line("uib k3 e4 c16"), "case.arch:7:9", "'uib' takes 2 or 3 kernel size(s), got 1",
         "k<start>/<mid>"),
    case("expand-and-mid", stage_line("ib k3 e4 mid=64 c16"), "case.arch:7:14", "'mid' conflicts with 'e'",
         "keep either"),
    case("unknown-activation", stage_line("ib k3 e4 c16 act=hard_swsh"), "case.arch:7:22",
         "unknown activation 'hard_swsh'", "did you mean 'hard_swish'?"),
    case("se-ratio-out-of-range", stage_line("ib k3 e4 c16 se1.5"), "case.arch:7:18",
         "SE ratio must be >= 0 and <= 1, got 1.5"),
    case("zero-stride", stage_line("ib k3 s0 e4 c16"), "case.arch:7:11", "stride must be at least 1, got 0"),
    case("fractional-channels", stage_line("ib k3 e4 c16.5"), "case.arch:7:14",
         "output channels must be a whole number, got 16.5"),
    case("value-without-option", stage_line("ib k3 e4 c16 32"), "case.arch:7:18", "a value needs an option name",
         "key=value"),
    case("block-with-body", stage_line("ib k3 e4 c16 { }"), "case.arch:7:5", "'ib' takes no '{ ... }' body"),
    case("only-block-of-stage-wrong", "network n {\n  stage a {\n    extra_dww k5/5 e3 c16\n  }\n}\n",
         "case.arch:3:5", "unknown block kind 'extra_dww'"),
    case("huge-expansion", stage_line("ib k3 e=1e400 c16"), "case.arch:7:13", "number out of range"),
    case("conflicting-pool-modes", head_line("pool avg max; classifier"), "case.arch:10:14", "max"),
    # --- shapes -----------------------------------------------------------------------------
    case("even-kernel-symmetric-padding", stage_line("conv k4 c16"), "case.arch:7:10", "kernel 4 is even",
         "padding=same"),
    case("stride-on-ffn", stage_line("ffn s2 e4 c16"), "case.arch:7:9", "stride 2 needs a depthwise conv"),
    case("forced-skip-shapes-differ", stage_line("ib k3 e4 c32 skip"), "case.arch:7:18",
         "a residual needs equal input and output shapes", "drop 'skip'"),
    case("groups-not-dividing", stage_line("conv k3 g3 c16"), "case.arch:7:13", "groups=3 must divide"),
    case("spatial-size-collapses", stage_line("").replace("classes 10", "rho 0.01"), "case.arch:3:7",
         "rho 0.01 leaves nothing of the 32x32 input"),
    case("classifier-without-pool", head_line("classifier"), "case.arch:10:5", "the classifier needs a 1x1 input",
         "add 'pool avg' before it"),
    case("head-without-classifier", head_line("pool avg"), "case.arch:9:3", "the head must end with a classifier"),
    case("pool-without-mode", head_line("pool; classifier"), "case.arch:10:5", "pool needs a mode", "pool avg"),
    # --- network body -----------------------------------------------------------------------
    case("duplicate-stage", "network n {\n  stage a {\n    ib k3 e4 c16\n  }\n  stage a {\n    ib k3 e4 c16\n"
         "  }\n}\n", "case.arch:5:9", "stage 'a' is defined twice"),
    case("stage-without-blocks", "network n {\n  stage a {\n  }\n}\n", "case.arch:2:9", "stage 'a' has no blocks"),
    case("no-stem", "network n {\n}\n", "case.arch:1:9", "has no stem"),
    case("no-head", "network n {\n  stem conv k3 c8\n}\n", "case.arch:1:9", "has no head"),
    case("no-stages", "network n {\n  stem conv k3 c8\n  head { pool avg; classifier }\n}\n", "case.arch:1:9",
         "has no stages"),
    case("unknown-network-statement", "network n {\n  clases 10\n}\n", "case.arch:2:3",
         "unknown network statement 'clases'", "did you mean 'classes'?"),
    case("block-directly-in-network", "network n {\n  ib k3 e4 c16\n}\n", "case.arch:2:3",
         "unknown network statement 'ib'", "inside a stem, stage or head"),
    case("setting-given-twice", "network n {\n  classes 10\n  classes 5\n}\n", "case.arch:3:3",
         "'classes' is set twice", "first set at line 2"),
    case("non-numeric-setting", "network n {\n  classes ten\n}\n", "case.arch:2:11",
         "classes must be a whole number, got 'ten'"),
    case("input-not-a-shape", "network n {\n  input 32\n}\n", "case.arch:2:9", "input must be a shape"),
    case("unknown-default", "network n {\n  defaults {\n    actv relu\n  }\n}\n", "case.arch:3:5",
         "unknown default 'actv'", "did you mean 'act'?"),
    case("unknown-norm", "network n {\n  defaults {\n    norm layernorm\n  }\n}\n", "case.arch:3:10",
         "unknown norm 'layernorm'", "batchnorm"),
    case("name-defined-twice", "network n {\n}\nblock n(c) {\n}\n", "case.arch:3:7", "'n' is defined twice",
         "first defined at case.arch:1:9"),
    # --- templates and families -------------------------------------------------------------
    case("template-missing-parameter", with_template(PAIR, "pair"), "case.arch:10:5",
         "block 'pair' needs parameter 'c'", "c=<value>"),
    case("template-unknown-parameter", with_template(PAIR, "pair c=8 d=3"), "case.arch:10:14",
         "block 'pair' has no parameter 'd'"),
    case("template-recursion", with_template("block loop(c) {\n  loop c=c\n}", "loop c=8"), "case.arch:2:3",
         "block 'loop' uses itself", "loop -> loop"),
    case("template-parameter-declared-twice", with_template("block pair(c, c) {\n  ib k3 e4 c=c\n}", "pair c=8"),
         "case.arch:1:15", "twice"),
    case("unknown-family", "network fam(width=1) {\n}\nnetwork m = famly(width=2)\n", "case.arch:3:13",
         "'famly' is not a network family", "did you mean 'fam'?"),
    case("unknown-family-argument", "network fam(width=1) {\n}\nnetwork m = fam(widht=2)\n", "case.arch:3:17",
         "family 'fam' has no parameter 'widht'", "did you mean 'width'?"),
    case("family-argument-missing", "network fam(width) {\n}\nnetwork m = fam()\n", "case.arch:3:13",
         "'m' must set parameter 'width' of 'fam'"),
    case("family-argument-twice", FAMILY + "network m = fam(w=1, w=2)\n", "case.arch:13:22", "twice"),
    # --- expressions ------------------------------------------------------------------------
    case("division-by-zero", stage_line("ib k3 e4 c=16/0"), "case.arch:7:19", "division by zero"),
    case("number-too-long", stage_line("ib k3 e4 c=1" + "0" * 40), "case.arch:7:16", "number too long",
         "at most 40 characters"),
    case("whole-number-out-of-range", stage_line("ib k3 e4 c=(10000000000000000*10000000000000000)"),
         "case.arch:7:17", "number out of range", "within"),
    case("parentheses-too-deep", stage_line("ib k3 e4 c=" + "(" * 101), "case.arch:7:116",
         "parentheses nest more than 100 deep"),
    case("unknown-name-in-expression", with_template("block pair(width) {\n  ib k3 e4 c=widht*2\n}", "pair width=8"),
         "case.arch:2:14", "unknown parameter 'widht'", "did you mean 'width'?"),
    case("unknown-name-as-value", with_template("block pair(width) {\n  ib k3 e4 c=widht\n}", "pair width=8"),
         "case.arch:2:14", "unknown parameter 'widht'", "did you mean 'width'?"),
    case("value-missing-after-equals", stage_line("ib k3 e= c16"), "case.arch:7:14", "unknown parameter 'c16'",
         "is a value missing after 'e='?"),
    case("skip-and-noskip", stage_line("ib k3 e4 c16 skip noskip"), "case.arch:7:23",
         "'noskip' conflicts with 'skip'", "keep either"),
    case("depthwise-and-groups", stage_line("conv k3 c16 dw g2"), "case.arch:7:20", "'g' conflicts with 'dw'"),
    case("ib-without-depthwise-kernel", stage_line("ib k0 e4 c16"), "case.arch:7:8", "kernel must be at least 1",
         "'ib' without a depthwise conv is an 'ffn'"),
    case("uib-kernel-given-two-ways", stage_line("uib k3/3 k_start=3 e4 c16"), "case.arch:7:14",
         "'k_start' conflicts with 'k'"),
    case("defaults-with-options", stage_line("").replace("classes 10", "defaults act {}"), "case.arch:3:12",
         "'defaults' takes no options"),
    case("template-shadows-built-in", with_template("block ib(c) {\n  conv k3 c=c\n}", "ib k3 e4 c16"), "case.arch:1:7",
         "has the name of a built-in block kind"),
    case("global-pool-with-stride", head_line("pool avg s2; classifier"), "case.arch:10:14",
         "a global pool takes no stride or padding", "give k<size>"),
    case("global-pool-with-stride-1", head_line("pool avg s1; classifier"), "case.arch:10:14",
         "a global pool takes no stride or padding"),
    case("even-pool-kernel", head_line("pool max k2 s2; pool avg; classifier"), "case.arch:10:14",
         "kernel 2 is even"),
    case("se-ratio-in-defaults", stage_line("").replace("classes 10", "defaults {\n se 0.25\n}"), "case.arch:4:5",
         "the SE ratio belongs on blocks"),
    case("option-letter-without-value", stage_line("ib k3 c16 x"), "case.arch:7:15", "'x' needs a value",
         "write x<value> or x=<value>"),
    case("keyword-option-without-value", head_line("pool avg; classifier dropout"), "case.arch:10:26",
         "'dropout' needs a value", "write dropout=<value>"),
    case("expansion-out-of-range", stage_line("ib k3 e=1e308 c16"), "case.arch:7:13",
         "expansion ratio must be > 0 and <= 64"),
    case("zero-resolution", stage_line("").replace("classes 10", "resolution 0x0"), "case.arch:3:14",
         "resolution must be at least 1"),
    case("width-out-of-range", stage_line("").replace("classes 10", "width 1e308"), "case.arch:3:9",
         "width multiplier must be > 0 and <= 16"),
    case("setting-with-a-stray-option", stage_line("").replace("classes 10", "classes 10 bogus=1"), "case.arch:3:14",
         "'classes' has no option 'bogus'"),
    case("input-shape-and-keywords", stage_line("").replace("input 32x32x3", "input 32x32 c=4"), "case.arch:2:15",
         "not both"),
    case("parameter-holding-a-word",
         "network fam(w=relu) {\n  input 32x32x3\n  stem conv k3 c=8*w\n  stage a {\n    ib k3 e4 c16\n  }\n"
         "  head {\n    pool avg; classifier\n  }\n}\n\nnetwork m = fam()\n",
         "case.arch:3:20", "parameter 'w' is 'relu', not a number"),
    case("drop-path-of-one", stage_line("ib k3 e4 c16 drop_path=1"), "case.arch:7:28", "must be >= 0 and < 1"),
    case("mobileone-without-branches", stage_line("mobileone k3 c32 branches=0"), "case.arch:7:31",
         "branch count must be at least 1"),
    case("mobileone-skip", stage_line("mobileone k3 c16 skip"), "case.arch:7:22", "has no option 'skip'",
         "noskip"),
    case("shuffle-v1-changing-width-at-stride-1", stage_line("shuffle_v1 g2 c32"), "case.arch:7:19",
         "keeps its 16 channels, not 32", "stride-2 unit"),
    case("shuffle-v1-without-bottleneck",
         "network n {\n  input 32x32x3\n  stem conv k3 s2 c3 fixed\n  stage a {\n    shuffle_v1 c3 fixed\n  }\n"
         "  head {\n    pool avg; classifier\n  }\n}\n", "case.arch:5:16",
         "c/4 leaves no bottleneck channels", "mid="),
    case("reduce-groups-not-dividing", stage_line("shuffle_v1 g2 s2 c40 reduce_groups=3"), "case.arch:7:26",
         "groups=3 must divide both 16 input and 10 output channels"),
    case("attention-kernel-without-kv-stride", stage_line("mqa h2 d8 k5 c16"), "case.arch:7:15",
         "k is the kernel of the key/value downsampling", "add v2"),
    case("ghost-even-kernel-at-stride-1", stage_line("ghost k4 e2 c16"), "case.arch:7:11",
         "kernel 4 is even"),
    case("count-pad-on-max-pool", stage_line("pool max k3 s2 count_pad"), "case.arch:7:20",
         "count_pad is for average pooling"),
    # --- imports ----------------------------------------------------------------------------
    case("import-missing-file", FIXTURES / "missing_import.arch", "missing_import.arch:1:8",
         "cannot import 'no_such_file.arch'"),
    case("import-cycle", FIXTURES / "cycle_a.arch", "cycle_b.arch:1:8",
         "import cycle: cycle_a.arch -> cycle_b.arch -> cycle_a.arch"),
    case("import-outside-project", FIXTURES / "outside_tree.arch", "outside_tree.arch:1:8",
         "leaves the project tree", "--import-root"),
    case("mistake-in-imported-file", FIXTURES / "uses_broken_lib.arch", "broken_lib.arch:3:16",
         "unexpected character ']'"),
]  # fmt: skip


def compile_spec(spec: str | Path) -> None:
    if isinstance(spec, Path):
        compile_file(spec)
    else:
        compile_text(spec, "case.arch")


def first_error(spec: str | Path) -> ArchError:
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_spec(spec)
    err = info.value
    return err.errors[0] if isinstance(err, ArchErrors) else err


@pytest.mark.parametrize("spec, where, message, hint", CASES)
def test_error_is_located_at_the_mistake(spec, where, message, hint):
    err = first_error(spec)
    assert err.span is not None, err.render()
    assert f"{Path(err.span.file).name}:{err.span.line}:{err.span.col}" == where, err.render()
    assert message in err.message
    if hint:
        assert err.hint and hint in err.hint, err.render()
    lines = err.render().splitlines()
    assert lines[0] == f"{err.span.file}:{err.span.line}:{err.span.col}: error: {err.message}"
    if err.span.line_text():
        assert lines[1] == "  " + err.span.line_text()
        assert lines[2].index("^") == 2 + err.span.col - 1


TWO_MISTAKES = "network n {\n  clases 10\n  stage a {\n    ib k3 e4 c16\n    extra_dww k5/5 e3 c16\n  }\n}\n"


def test_independent_mistakes_are_all_reported():
    with pytest.raises(ArchErrors) as info:
        compile_text(TWO_MISTAKES, "case.arch")
    found = [(e.span.line, e.span.col, e.message) for e in info.value.errors if e.span]
    assert found == [
        (2, 3, "unknown network statement 'clases'"),
        (5, 5, "unknown block kind 'extra_dww'"),
    ]


def test_render_shows_location_source_caret_and_hint():
    err = first_error(stage_line("extra_dww k5/5 e3 c16"))
    assert err.render() == (
        "case.arch:7:5: error: unknown block kind 'extra_dww'\n"
        "      extra_dww k5/5 e3 c16\n"
        "      ^^^^^^^^^\n"
        "  hint: did you mean 'extra_dw'?"
    )


# --- the command line ---------------------------------------------------------------------


def archdsl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "archdsl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_reports_spec_errors_without_traceback(tmp_path):
    (tmp_path / "bad.arch").write_text(TWO_MISTAKES)
    result = archdsl("compile", "bad.arch", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.arch:2:3: error: unknown network statement 'clases'" in result.stderr
    assert "bad.arch:5:5: error: unknown block kind 'extra_dww'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args", [("frobnicate", "bad.arch"), ("compile",)], ids=["unknown-command", "missing-spec"])
def test_cli_usage_error_exits_2(tmp_path, args):
    result = archdsl(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_cli_failed_compile_leaves_no_output_file(tmp_path):
    (tmp_path / "bad.arch").write_text(TWO_MISTAKES)
    result = archdsl("compile", "bad.arch", "-o", "model.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.arch:2:3: error:" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.arch"]


def test_the_caret_lines_up_under_tabs_and_lines_count_like_the_lexer():
    text = "# a form feed \f here\nnetwork n {\n\tstage a {\n\t\tib k3 e4 c16 act=rleu\n\t}\n}\n"
    with pytest.raises((ArchError, ArchErrors)) as exc:
        compile_text(text, "tabs.arch")
    err = exc.value if isinstance(exc.value, ArchError) else exc.value.errors[0]
    source, caret = err.render().splitlines()[1:3]
    assert source == "  \t\tib k3 e4 c16 act=rleu"
    assert caret == "  \t\t" + " " * 17 + "^^^^"  # under `rleu`, after `ib k3 e4 c16 act=`


@pytest.mark.parametrize(
    "args, message",
    [
        (["compile", "{bad_utf8}"], "is not UTF-8 text"),
        (["verify", "specs/mnv1.arch", "--weights", "{wrong_weights}", "--input", "32x32"], "fit neither form of mnv1"),
        (["check", "--root", "{a_dir}"], "has no specs/ directory"),
    ],
    ids=["non-utf8-spec", "weights-of-another-network", "check-outside-a-project"],
)
def test_command_line_failures_are_errors_not_tracebacks(tmp_path, args, message):
    (tmp_path / "bad.arch").write_bytes(b"# caf\xe9\nnetwork n {\n}\n")
    (tmp_path / "dir").mkdir()
    wrong = tmp_path / "w.safetensors"
    subprocess.run(
        [sys.executable, "-m", "archdsl", "init-weights", "specs/mnv2.arch", "-o", str(wrong)], cwd=ROOT, check=True
    )
    paths = {"bad_utf8": tmp_path / "bad.arch", "a_dir": tmp_path / "dir", "wrong_weights": wrong}
    result = subprocess.run(
        [sys.executable, "-m", "archdsl", *(a.format(**paths) for a in args)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
