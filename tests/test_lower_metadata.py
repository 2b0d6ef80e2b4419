"""`metadata { ... }`: its strings parse with their spans, lower to `Network.metadata` (from a
plain network, a family's body and an imported file), and every mistake, and a string anywhere
but in `metadata`, is an error located at the exact line and column with a hint; the language
server takes the new item in its stride."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from archdsl.ir.network import Network
from archdsl.ir.nodes import Metadata
from archdsl.language.lower_metadata import SETTINGS
from archdsl.language.syntax import Str, parse
from archdsl.language.vocabulary import NETWORK_SETTINGS
from archdsl.limits import MAX_METADATA_CHARS
from conftest import small_net

NET = small_net()  # `network n {` on line 1, `classes 10` on line 3, `ib k3 e4 c16` on line 6 at column 5


def with_metadata(*settings: str, net: str = NET) -> str:
    """`net` with a metadata section after `classes`: `metadata {` on line 4, the settings from
    line 5, each at column 5."""
    body = "".join(f"    {s}\n" for s in settings)
    return net.replace("  classes 10\n", "  classes 10\n  metadata {\n" + body + "  }\n", 1)


FULL = with_metadata('author "Jane Doe"', 'license "Apache-2.0"', 'description "MobileNetV4 conv small, our retrain"',
                     'version "1.2"')  # fmt: skip


def first_error(text: str) -> ArchError:
    with pytest.raises((ArchError, ArchErrors)) as info:
        compile_text(text, "case.arch")
    e = info.value
    return e.errors[0] if isinstance(e, ArchErrors) else e


def test_a_string_item_keeps_its_text_and_span():
    (net,) = parse(FULL, "m.arch").items
    metadata = next(s for s in net.body if s.head == "metadata")
    author = metadata.body[0]
    (item,) = author.items
    assert isinstance(item, Str) and item.text == "Jane Doe"
    assert (item.span.line, item.span.col, item.span.end_col) == (5, 12, 22)  # the quotes included


def test_the_settings_reach_the_resolved_network():
    assert compile_text(FULL).metadata == Metadata(
        author="Jane Doe", license="Apache-2.0", description="MobileNetV4 conv small, our retrain", version="1.2"
    )
    some = compile_text(with_metadata('version "0.1"')).metadata
    assert (some.author, some.license, some.description, some.version) == (None, None, None, "0.1")


def test_without_a_metadata_section_every_field_is_none():
    assert compile_text(NET).metadata == Metadata()
    assert compile_text(with_metadata()).metadata == Metadata()  # an empty section says nothing either
    assert all(getattr(Metadata(), s) is None for s in SETTINGS)


def test_text_is_kept_verbatim_backslashes_and_all():
    # the language has no escapes: a backslash is a backslash, for the backends to quote
    text = r"C:\models\v2 \n \ 'q' #not-a-comment; {x} Zoë 日本"
    meta = compile_text(with_metadata(f'description "{text}"')).metadata
    assert meta.description == text
    assert compile_text(with_metadata(f'author "{"a" * MAX_METADATA_CHARS}"')).metadata.author == "a" * 200


def test_metadata_in_a_family_body_reaches_its_instances():
    family = FULL.replace("network n {", "network fam(w=1) {").replace(
        "  input 32x32x3\n", "  input 32x32x3\n  width w\n"
    )
    text = family + "\nnetwork small = fam(w=0.5)\nnetwork large = fam(w=2)\n"
    for name in ("small", "large"):
        net = compile_text(text, network=name)
        assert net.metadata.author == "Jane Doe" and net.metadata.version == "1.2" and net.name == name


def test_metadata_of_an_imported_network_and_family(tmp_path: Path):
    family = with_metadata('license "MIT"', net=NET.replace("network n {", "network fam(c=16) {"))
    (tmp_path / "lib.arch").write_text(FULL.replace("network n {", "network base {") + "\n" + family)
    (tmp_path / "main.arch").write_text('import "lib.arch"\n\nnetwork mine = fam(c=8)\n')
    assert compile_file(tmp_path / "main.arch").metadata == Metadata(license="MIT")
    assert compile_file(tmp_path / "main.arch", network="base").metadata.author == "Jane Doe"


def test_the_ir_dump_carries_it_and_reads_back():
    net = compile_text(FULL)
    dump = net.model_dump()
    assert dump["metadata"]["author"] == "Jane Doe" and dump["metadata"]["version"] == "1.2"
    assert Network.model_validate(dump).metadata == net.metadata
    assert compile_text(NET).model_dump()["metadata"] == dict.fromkeys(SETTINGS)


def test_metadata_is_a_network_setting():
    assert "metadata" in NETWORK_SETTINGS


def case(id: str, spec: str, where: str, message: str, hint: str):
    return pytest.param(spec, where, message, hint, id=id)


BLOCK_TEMPLATE = 'block pair(c) {\n  ib k3 e4 c=c "fast"\n}\n\n' + small_net().replace("ib k3 e4 c16", "pair c=16")
FAMILY = (
    NET.replace("network n {", "network fam(c=16) {").replace("ib k3 e4 c16", 'ib k3 e4 c=c "x"')
    + "\nnetwork m = fam(c=8)\n"
)

CASES = [
    # --- inside metadata ----------------------------------------------------------------------
    case("unknown-setting", with_metadata('autor "Jane"'), "case.arch:5:5", "unknown metadata setting 'autor'",
         "did you mean 'author'?"),
    case("unknown-setting-far", with_metadata('mean "x"'), "case.arch:5:5", "unknown metadata setting 'mean'",
         "expected one of: author, description, license, version"),
    case("set-twice", with_metadata('author "A"', 'version "1"', 'author "B"'), "case.arch:7:5",
         "'author' is set twice", "first set at line 5"),
    case("number", with_metadata("version 1.2"), "case.arch:5:13", "'version' takes one quoted string",
         'version "1.2"'),
    case("word", with_metadata("author Jane"), "case.arch:5:12", "'author' takes one quoted string",
         'author "Jane Doe"'),
    case("no-value", with_metadata("license"), "case.arch:5:5", "'license' takes one quoted string",
         'license "Apache-2.0"'),
    case("two-strings", with_metadata('author "Jane" "Doe"'), "case.arch:5:19", "'author' takes one quoted string",
         'author "Jane Doe"'),
    case("key-value", with_metadata('author name=x'), "case.arch:5:12", "'author' takes one quoted string",
         'author "Jane Doe"'),
    case("string-as-a-value", with_metadata('author name="x"'), "case.arch:5:17", "unexpected '\"x\"'",
         "expected '(', '-', '{', a name, a number"),  # a parse error: expressions take no strings
    case("body", with_metadata('author {\n      name\n    }'), "case.arch:5:5", "'author' takes one quoted string",
         'author "Jane Doe"'),
    case("empty", with_metadata('author ""'), "case.arch:5:12", "'author' is empty", 'author "Jane Doe"'),
    case("blank", with_metadata('description "   "'), "case.arch:5:17", "'description' is empty",
         'description "MobileNetV4'),
    case("too-long", with_metadata(f'author "{"a" * (MAX_METADATA_CHARS + 1)}"'), "case.arch:5:12",
         "'author' is 201 characters long", "at most 200 characters"),
    case("control-character", with_metadata('author "Jane\x1b[31m"'), "case.arch:5:17",
         "'author' has the unprintable character '\\x1b'", "printable text"),
    case("bidi-override", with_metadata('license "MIT\u202e"'), "case.arch:5:17",
         "'license' has the unprintable character '\\u202e'", "printable text"),
    case("tab", with_metadata('version "1\t2"'), "case.arch:5:15", "'version' has the unprintable character '\\t'",
         "printable text"),
    case("carriage-return", with_metadata('version "1\r2"'), "case.arch:5:15",
         "'version' has the unprintable character '\\r'", "printable text"),
    case("section-with-options", NET.replace("  classes 10\n", '  classes 10\n  metadata "x" {\n  }\n'),
         "case.arch:4:12", "'metadata' takes no options", "metadata { ... }"),
    case("section-without-body", NET.replace("  classes 10\n", "  classes 10\n  metadata\n"), "case.arch:4:3",
         "'metadata' needs a body in braces", "metadata { ... }"),
    case("section-twice", with_metadata('author "A"').replace("  stem", '  metadata {\n    version "1"\n  }\n  stem'),
         "case.arch:7:3", "'metadata' is set twice", "first set at line 4"),
    # --- strings anywhere else ----------------------------------------------------------------
    case("on-a-block", NET.replace("ib k3 e4 c16", 'ib k3 e4 c16 "fast"'), "case.arch:6:18",
         "a string belongs only in a network's metadata", 'metadata { author "Jane Doe" }'),
    case("as-a-setting-value", NET.replace("classes 10", 'classes "10"'), "case.arch:3:11",
         "a string belongs only in a network's metadata", "key=value"),
    case("as-an-inline-stem", NET.replace("stem conv k3 s2 c16", 'stem "conv"'), "case.arch:4:8",
         "a string belongs only in a network's metadata", "key=value"),
    case("in-the-head", NET.replace("pool avg;", 'pool avg "global";'), "case.arch:9:14",
         "a string belongs only in a network's metadata", "key=value"),
    case("as-a-stage-name", NET.replace("stage a {", 'stage "a" {'), "case.arch:5:9",
         "a string belongs only in a network's metadata", "key=value"),
    case("in-defaults", NET.replace("  stem", '  defaults {\n    act "relu"\n  }\n  stem'), "case.arch:5:9",
         "a string belongs only in a network's metadata", "key=value"),
    case("in-preprocess", NET.replace("  stem", '  preprocess {\n    interpolation "bicubic"\n  }\n  stem'),
         "case.arch:5:19", "a string belongs only in a network's metadata", "key=value"),
    case("unknown-statement", NET.replace("  stem", '  author "Jane"\n  stem'), "case.arch:4:10",
         "a string belongs only in a network's metadata", "key=value"),
    case("in-a-block-template", BLOCK_TEMPLATE, "case.arch:2:16", "a string belongs only in a network's metadata",
         "key=value"),
    case("in-a-family-body", FAMILY, "case.arch:6:18", "a string belongs only in a network's metadata",
         "key=value"),
]  # fmt: skip


@pytest.mark.parametrize("spec, where, message, hint", CASES)
def test_each_mistake_is_a_located_error_with_a_hint(spec, where, message, hint):
    err = first_error(spec)
    assert err.span is not None, err.render()
    assert f"{err.span.file}:{err.span.line}:{err.span.col}" == where, err.render()
    assert message == err.message or message in err.message, err.render()
    assert err.hint and hint in err.hint, err.render()
    lines = err.render().splitlines()
    assert lines[0] == f"{where}: error: {err.message}".replace("\t", "\\t").replace("\r", "\\r")
    assert lines[2].index("^") >= 2  # the caret line follows the source line, nothing raw on the terminal
    assert "\x1b" not in err.render() and "\u202e" not in err.render()


def test_a_template_or_family_mistake_notes_where_it_was_used():
    assert any("in block 'pair' used at case.arch:10:5" in n for n in first_error(BLOCK_TEMPLATE).notes)
    assert any("in network 'm' = fam(...)" in n for n in first_error(FAMILY).notes)


def test_an_unterminated_string_outside_an_import_is_a_string():
    err = first_error(with_metadata('author "Jane'))
    assert (err.span.line, err.span.col, err.message) == (5, 12, "unterminated string")
    assert err.hint == "close the string with '\"' on the same line"


def test_the_language_server_takes_strings_in_its_stride(tmp_path: Path):
    from archdsl.lsp.analysis import EditorFiles, analyse
    from archdsl.lsp.completion import complete
    from archdsl.lsp.diagnostics import diagnostics
    from archdsl.lsp.hover import hover_text
    from archdsl.lsp.inlay import inlay_hints
    from archdsl.lsp.outline import outline

    a = analyse(tmp_path / "m.arch", FULL, EditorFiles(), {})
    assert a.errors == [] and a.networks and a.networks[0].metadata.author == "Jane Doe"
    for at in ((4, 3), (5, 5), (5, 12), (5, 16), (8, 20)):  # the section, a setting, its string
        assert hover_text(a, at) is None
    (symbol,) = outline(a.module, "utf-16")
    assert [c.name for c in symbol.children][:2] == ["metadata", "stem conv k3 s2 c16"]
    plain = analyse(tmp_path / "n.arch", NET, EditorFiles(), {})
    hints, plain_hints = inlay_hints(a, 0, 100, "utf-16"), inlay_hints(plain, 0, 100, "utf-16")
    assert [(h.position.line - 6, h.label) for h in hints] == [(h.position.line, h.label) for h in plain_hints]
    lines = FULL.split("\n")
    network_words = [i.label for i in complete("\n".join(lines[:3]) + "\n  ", a.defs)]
    assert "metadata" in network_words and "preprocess" in network_words
    # inside metadata as inside preprocess: nothing to offer, and nothing breaks
    assert complete("\n".join(lines[:4]) + "\n    ", a.defs) == []
    assert complete("\n".join(lines[:4]) + '\n    author "Ja', a.defs) == []
    bad = analyse(tmp_path / "m.arch", NET.replace("ib k3 e4 c16", 'ib k3 e4 c16 "x"'), EditorFiles(), {})
    (d,) = diagnostics(bad, "utf-16")[bad.path]
    assert (d.range.start.line, d.range.start.character) == (5, 17) and "metadata" in d.message
    assert hover_text(bad, (6, 19)) is None
