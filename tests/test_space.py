"""Search spaces (docs/language.md section 16): choices in the language, their dimensions and
exact size, candidates by index and seed, `archdsl space` and `archdsl sample`, and located errors
for bad spaces. Every candidate is checked against the IR it lowers to, not against its text."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from archdsl.cli.main import main as cli
from archdsl.compiler import compile_file
from archdsl.errors import ArchError, ArchErrors
from archdsl.ir.pipeline import resolve
from archdsl.language.fmt import format_module
from archdsl.language.loader import load_text
from archdsl.language.syntax import parse
from archdsl.search.space import Space
from conftest import ROOT, SPACE

DIMENSIONS = {
    "width": ("0.75", "1.0"),
    "e_mid": ("4", "6"),
    "defaults.act": ("relu", "hard_swish"),
    "s1.0.k[0]": ("0", "3", "5"),
    "s1.0.k[1]": ("0", "3", "5"),
    "s1.1.x": ("1", "2", "3"),
    "pair.0.k": ("3", "5"),
}


def space_of(text: str, file: str = "space.arch") -> Space:
    return Space(load_text(text, file))


def test_dimensions_in_source_order_and_the_exact_size():
    space = space_of(SPACE)
    assert {d.name: d.labels for d in space.dimensions} == DIMENSIONS
    assert [d.name for d in space.dimensions] == list(DIMENSIONS)
    assert space.size == 2 * 2 * 2 * 3 * 3 * 3 * 2 == 432
    width = space.dimensions[0]
    assert (width.span.line, width.span.col) == (9, 9)  # the choice as written


def test_every_candidate_is_the_product_order_and_lowers_to_its_values():
    """All 432 candidates, against itertools.product over the dimensions: each lowers, and its IR
    has the values its binding names (kernels, repeats, expansions, activation, width)."""
    space = space_of(SPACE)
    hashes = set()
    for index, values in enumerate(itertools.product(*DIMENSIONS.values())):
        candidate = space.candidate(index)
        labels = space.labels(candidate.binding)
        assert tuple(labels.values()) == values and space.index(candidate.binding) == index
        spec = candidate.lower()
        s1, s2 = spec.stages
        uib, ib = s1.blocks[0], s1.blocks[1]
        assert uib.kernel[:2] == (int(labels["s1.0.k[0]"]), int(labels["s1.0.k[1]"]))
        assert ib.repeat == int(labels["s1.1.x"])
        e_mid = float(labels["e_mid"])
        assert uib.expand == ib.expand == e_mid  # one decision in every place that names it
        first, second = s2.blocks  # the template's blocks: its choice, and the tied argument
        assert (first.kernel[1], first.expand, second.expand) == (int(labels["pair.0.k"]), e_mid, e_mid)
        assert spec.defaults.act == labels["defaults.act"]
        assert spec.width.multiplier == float(labels["width"])
        hashes.add(candidate.hash)
    assert len(hashes) == 432  # every candidate a different network, a different canonical text


def test_a_sampled_candidate_compiles_like_any_spec(tmp_path):
    """`archdsl sample` writes a self-contained canonical spec (its header names the space and
    the choices): compiled from the file, it is the network the space binds."""
    path = tmp_path / "space.arch"
    path.write_text(SPACE)
    out = tmp_path / "elsewhere" / "cand.arch"
    out.parent.mkdir()
    assert cli(["sample", str(path), "--index", "301", "-o", str(out)]) == 0
    text = out.read_text()
    space = Space.load(path)
    candidate = space.candidate(301)
    header, body = text.split("\n\n", 1)
    assert header.startswith(f"# tiny: candidate 301 of 432 of {path} (archdsl sample --index 301)")
    assert " ".join(f"{k}={v}" for k, v in space.labels(candidate.binding).items()) in header.replace("\n# ", " ")
    assert body == candidate.text and format_module(parse(text)) == text  # canonical
    compiled = compile_file(out)
    assert compiled.model_dump(exclude={"source", "source_hash"}) == resolve(candidate.lower(), "x").model_dump(
        exclude={"source", "source_hash"}
    )
    assert "{" not in body.replace(" {\n", "") and "let" not in body  # no choice left


def test_seeded_samples_are_uniform_draws_of_the_index(tmp_path, capfd):
    path = tmp_path / "space.arch"
    path.write_text(SPACE)
    for seed in (0, 7, 2**40):
        assert cli(["sample", str(path), "--seed", str(seed), "-o", "-"]) == 0
        index = random.Random(seed).randrange(432)
        assert capfd.readouterr().out.startswith(f"# tiny: candidate {index} of 432 ")


def test_the_space_command_lists_dimensions_and_an_astronomical_size_exactly(tmp_path, capsys):
    blocks = "\n".join(f"    ib k{{3,5,7}} e{{3,4,6}} c{16 + 8 * (i % 2)}" for i in range(60))
    path = tmp_path / "big.arch"
    path.write_text(SPACE.split("network")[0] + "network big {\n  input 32x32x3\n  classes 10\n  stem conv k3 s2 c16\n"
                    f"  stage s {{\n{blocks}\n  }}\n  head {{\n    pool avg\n    classifier\n  }}\n}}\n")  # fmt: skip
    assert cli(["space", str(path)]) == 0
    printed = capsys.readouterr().out
    size = 9**60
    assert printed.splitlines()[0] == f"big: {size:,} candidates (about {float(size):.3g}), 120 dimensions"
    assert re.search(r"^  s\.59\.e +3  3,4,6 +.*big\.arch:\d+:\d+$", printed, re.M)
    assert cli(["space", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["size"] == size and len(listed["dimensions"]) == 120
    assert listed["dimensions"][0] == {"name": "s.0.k", "values": ["3", "5", "7"], "at": f"{path}:11:9"}
    # the last candidate of an astronomical space: bound exactly, from the last value of each
    candidate = Space.load(path).candidate(size - 1)
    assert set(candidate.binding) == {2}


def test_choices_in_families_imports_and_template_parameters(tmp_path):
    (tmp_path / "lib.arch").write_text(
        "block unit(e={3,6}) {\n  ib k{3,5} e=e c24\n}\n\n"
        "network fam(w=1.0) {\n  input 32x32x3\n  classes 10\n  width w\n  stem conv k3 s2 c16\n"
        "  stage s {\n    unit\n    unit e=2\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n"
    )
    main = tmp_path / "main.arch"
    main.write_text('import "lib.arch"\n\nnetwork m = fam(w={0.5,0.75,1.0})\n')
    space = Space.load(main)
    assert [(d.name, d.labels) for d in space.dimensions] == [
        ("w", ("0.5", "0.75", "1.0")), ("unit.e", ("3", "6")), ("unit.0.k", ("3", "5"))]  # fmt: skip
    spec = space.candidate(space.index((1, 1, 1))).lower()
    assert spec.width.multiplier == 0.75
    assert [(b.kernel[1], b.expand) for b in spec.stages[0].blocks] == [(5, 6.0), (5, 2.0)]
    out = tmp_path / "out" / "c.arch"
    out.parent.mkdir()
    assert cli(["sample", str(main), "--index", "0", "-o", str(out)]) == 0
    text = out.read_text()
    assert "import" not in text and "block unit(e=3)" in text and "network m = fam(w=0.5)" in text
    assert compile_file(out).name == "m"


def test_a_plain_spec_is_a_space_of_one():
    space = Space(load_text((ROOT / "specs" / "mnv2.arch").read_text(), "mnv2.arch"))
    assert (space.dimensions, space.size) == ([], 1)
    assert space.candidate(0).lower().name == "mnv2"


def _error(text: str) -> ArchError:
    try:
        space_of(text, "bad.arch").check()
    except ArchErrors as e:
        return e.errors[0]
    except ArchError as e:
        return e
    raise AssertionError("no error")


def _spec(block: str, extra: str = "") -> str:
    return (f"network t {{\n  input 32x32x3\n  classes 10\n{extra}  stem conv k3 s2 c16\n  stage s1 {{\n    {block}\n"
            "  }\n  head {\n    pool avg\n    classifier\n  }\n}\n")  # fmt: skip


BAD = {
    # block (or extra lines), message, the located text, a note or hint in the rendering
    "empty compact": ("ib k{} e4 c24", "an empty choice", "{}", "k{3,5}"),
    "empty keyword": ("ib k3 e={} c24", "an empty choice", "}", "at least one value"),
    "one word": ("ib k3 e4 c24 act={relu}", "a choice of one word", "}", "give the word alone"),
    "twice": ("ib k{3,5,3} e4 c24", "3 is in this choice twice", "3", "keep one"),
    "float range": ("ib k3 e={1.5..3} c24", "a range takes whole numbers", "1.5..3", "{2..4}"),
    "reversed range": ("ib k{5..3} e4 c24", "empty range 5..3", "5..3", "write 3..5"),
    "huge range": ("ib k3 e4 c24 x{1..5000}", "a choice of more than 1,024 values", "1..5000", "narrower"),
    "bad kernel": ("ib k{3,0} e4 c24", "kernel must be at least 1", "0", "with s1.0.k = 0"),
    "bad activation": ("ib k3 e4 c24 act={relu,swsh}", "unknown activation 'swsh'", "swsh", "with s1.0.act = swsh"),
    "bad stride": ("ib k3 e4 c24 s{1,99}", "stride must be at most 64, got 99", "99", "with s1.0.s = 99"),
    "tie of kinds": ("ib k3 e=kk c24 act=kk", "unknown activation 3", "kk", "kk = 3 here: the named choice at bad.arch:4:12"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spaces_are_located_errors(case):
    block, message, located, said = BAD[case]
    error = _error(_spec(block, "  let kk = {3,5}\n" if "kk" in block else ""))
    assert error.message == message and error.span is not None
    assert error.span.line_text()[error.span.col - 1 : error.span.end_col - 1] == located
    assert said in error.render()


@pytest.mark.parametrize(
    "extra, message",
    [
        ("  let kk = 3\n", "'kk' names no choice"),
        ("  let kk = {3,5}\n  let kk = {4,6}\n", "'kk' is already another choice of this network"),
        ("  let kk\n", "a named choice is `let NAME = {values}`"),
        ("  let kk = {3,5}\n", "the named choice 'kk' is used nowhere"),
        ("  let conv = {3,5}\n", "'conv' is a word of the language"),
    ],
)
def test_bad_named_choices(extra, message):
    assert _error(_spec("ib k3 e4 c24", extra)).message == message


def test_a_named_choice_in_a_stage_is_refused_where_it_stands():
    error = _error(_spec("let kk = {3,5}"))
    assert error.message == "a named choice belongs in the network's body" and error.span.line == 6


def test_compiling_a_space_is_refused_at_its_first_choice(tmp_path, capsys):
    path = tmp_path / "space.arch"
    path.write_text(SPACE)
    assert cli(["compile", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:9:9: error: a choice: this spec describes a space of networks, not one")
    assert err.count("error:") == 1  # not what follows from it (`e=e_mid` naming no parameter)
    assert "archdsl sample SPEC --index 0" in err


def test_sample_arguments(tmp_path, capsys):
    path = tmp_path / "space.arch"
    path.write_text(SPACE)
    assert cli(["sample", str(path), "--index", "432", "-o", "-"]) == 2
    assert "no candidate 432: the space has 432" in capsys.readouterr().err
    assert cli(["sample", str(path), "--index", "0", "-o", str(path)]) == 1  # never over the space itself
    assert path.read_text() == SPACE
    with pytest.raises(SystemExit):
        cli(["sample", str(path), "-o", "-"])  # an index or a seed is required


def test_spaces_format_canonically():
    messy = SPACE.replace("k{0,3,5}/{0,3,5}", "k{ 0, 3,5 }/{0,3,5}").replace(
        "{relu,hard_swish}", "{ relu , hard_swish }"
    )
    tree = parse(messy)
    text = format_module(tree)
    assert parse(text) == tree and format_module(parse(text)) == text
    assert "uib k{0,3,5}/{0,3,5} s2" in text and "act {relu,hard_swish}" in text and "x{1..3}" in text


def test_the_language_reference_example_is_the_space_it_describes():
    """docs/language.md section 16's example: nine UIB blocks from one statement, one tie."""
    doc = (ROOT / "docs" / "language.md").read_text()
    example = doc.split("## 16.")[1].split("```\n")[1]
    space = space_of(example, "uib_space.arch")
    names = [d.name for d in space.dimensions]
    assert names == ["width", "e_mid", "defaults.act", "s1.0.k[0]", "s1.0.k[1]", "s1.1.x"]
    assert space.size == 2 * 2 * 2 * 9 * 3
    space.check()


def test_the_lexer_knows_the_compact_options_of_the_vocabulary():
    """CHOICE_WORD names the compact prefixes itself (so that `head{}` stays a head and an empty
    body); it must name exactly the vocabulary's."""
    from archdsl.language.vocabulary import COMPACT

    grammar = (ROOT / "grammars" / "archdsl.lark").read_text()
    prefixes = re.search(r"^CHOICE_WORD\.3: /\(\?:([a-z|]+)\)", grammar, re.M)
    assert prefixes is not None and sorted(prefixes[1].split("|")) == sorted(COMPACT)
    assert prefixes[1].index("se") < prefixes[1].index("|s|")  # `se{...}` before `s{...}`


def test_the_uib_space_of_the_search_doc():
    """spaces/mnv4_conv_m_uib.arch, as docs/search.md describes it: 44 dimensions, every value legal."""
    space = Space.load(ROOT / "spaces" / "mnv4_conv_m_uib.arch")
    space.check()
    assert space.size == 3 * 3 * (3 * 2) ** 3 * (3 * 3) ** 18 == 291_783_971_017_366_291_224
    assert len(space.dimensions) == 44
    assert f"{space.size:,} candidates" in (ROOT / "docs" / "search.md").read_text()


def test_only_reachable_choices_are_dimensions():
    """A family default the member overrides, a template default every use passes: no dimension,
    bound to their first value (the candidate's text has no choice left)."""
    text = (
        "block t(c, k={3,5}) {\n  ib k=k e4 c=c\n}\n\n"
        "network fam(w={16,24}, e={4,6}) {\n  input 32x32x3\n  classes 10\n  stem conv k3 s2 c16\n"
        "  stage s1 {\n    t c=w k=7\n    ib k3 e=e c24\n  }\n  head {\n    pool avg\n    classifier\n  }\n}\n\n"
        "network n = fam(w=32)\n"
    )
    space = space_of(text)
    assert [(d.name, d.labels) for d in space.dimensions] == [("e", ("4", "6"))]
    candidate = space.candidate(1)
    assert "{" not in candidate.text.replace(" {\n", "") and "fam(w=16, e=6)" in candidate.text
    blocks = candidate.lower().stages[0].blocks
    assert (blocks[0].kernel[1], blocks[0].out, blocks[1].expand) == (7, 32, 6.0)


def test_dimension_names_follow_blocks_and_settings():
    text = (
        "network t {\n  input 32x32x3\n  classes 10\n  stem conv k{3,5} s2 c16\n  stage s1 {\n"
        "    defaults {\n      act {relu,swish}\n    }\n    ib k{3,5} e4 c24\n    ds k{3,5} c24\n  }\n"
        "  head {\n    pool avg\n    conv k1 c{64,128}\n    classifier\n  }\n}\n"
    )
    names = [d.name for d in space_of(text).dimensions]
    assert names == ["stem.0.k", "s1.defaults.act", "s1.0.k", "s1.1.k", "head.1.c"]


def test_sample_never_writes_over_an_imported_spec(tmp_path, capsys):
    (tmp_path / "lib.arch").write_text("block unit(e={3,6}) {\n  ib k3 e=e c24\n}\n")
    main = tmp_path / "main.arch"
    main.write_text('import "lib.arch"\n\n' + _spec("unit"))
    before = (tmp_path / "lib.arch").read_text()
    assert cli(["sample", str(main), "--index", "0", "-o", str(tmp_path / "lib.arch")]) == 1
    assert (tmp_path / "lib.arch").read_text() == before
    assert "refusing to write over the input file" in capsys.readouterr().err


def test_a_spec_path_cannot_write_spec_text_into_a_candidate(tmp_path):
    """The header names the space's path, the user's text: a newline in it stays in the comment."""
    odd = tmp_path / "a\nnetwork evil {.arch"
    odd.write_text(SPACE)
    out = tmp_path / "c.arch"
    assert cli(["sample", str(odd), "--index", "431", "-o", str(out)]) == 0
    header = out.read_text().split("\n\n", 1)[0].splitlines()
    assert all(line.startswith("# ") for line in header) and "\\n" in header[0]
    assert compile_file(out).name == "tiny"
