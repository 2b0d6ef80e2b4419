"""The language server, driven over stdio by a real LSP client (pytest-lsp): diagnostics,
hover, completion, navigation, outline, formatting, quick fixes and inlay hints, each checked
against what the compiler itself says of the same text; and the server surviving bad input."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from archdsl.analysis.cost import block_cost
from archdsl.analysis.report import si
from archdsl.compiler import compile_file, compile_text
from archdsl.errors import ArchError, ArchErrors
from archdsl.language.fmt import format_module
from archdsl.language.syntax import parse
from archdsl.language.vocabulary import FLAGS, KWARGS, WORDS
from conftest import DETECTOR

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIB = """\
# A pair of inverted bottlenecks: the first may stride.
# Widths in channels.
block pair(c, s=1) {
  ib k3 s=s e4 c=c
  ib k3 e4 c=c
}

network tiny(c=8) {
  input 32x32x3
  classes 10
  stem conv k3 s2 c=c
  stage s0 {
    pair c=c
  }
  head {
    pool avg
    classifier
  }
}
"""

MAIN = """\
import "lib.arch"

network toy {
  input 64x64x3
  classes 10
  stem conv k3 s2 c16
  stage s0 {
    ds k3 c24
    pair c=32 s=2
  }
  stage s1 {
    ib k5 s2 e6 c48 x2
  }
  head {
    pool avg
    classifier
  }
}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "archdsl.toml").write_text("")  # marks the project root: imports stay below it
    (root / "lib.arch").write_text(LIB)
    (root / "main.arch").write_text(MAIN)
    return root


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "archdsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        lsp.InitializeParams(capabilities=client_capabilities("visual-studio-code"), root_uri=None)
    )
    yield
    await lsp_client.shutdown_session()


def uri_of(path: Path) -> str:
    return path.as_uri()


VERSIONS: dict[str, int] = {}


async def show(client: LanguageClient, path: Path, text: str) -> tuple[lsp.Diagnostic, ...]:
    """Open (or change) `path`'s buffer to `text`; the diagnostics published for that version."""
    uri = uri_of(path)
    client.diagnostics.pop(uri, None)
    if uri in VERSIONS:
        VERSIONS[uri] += 1
        change = lsp.TextDocumentContentChangeWholeDocument(text)
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=VERSIONS[uri], uri=uri), [change]
            )
        )
    else:
        VERSIONS[uri] = 1
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "archdsl", 1, text)))
    return await published(client, uri)


async def published(client: LanguageClient, uri: str) -> tuple[lsp.Diagnostic, ...]:
    for _ in range(200):
        if uri in client.diagnostics:
            return client.diagnostics[uri]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no diagnostics for {uri}")


def close(client: LanguageClient, path: Path) -> None:
    VERSIONS.pop(uri_of(path), None)
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri_of(path))))


def compiler_errors(path: Path) -> list[ArchError]:
    try:
        compile_file(path)
    except ArchErrors as e:
        return list(e.errors)
    except ArchError as e:
        return [e]
    return []


async def hover(client: LanguageClient, path: Path, line: int, character: int) -> str | None:
    result = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(uri_of(path)), lsp.Position(line, character))
    )
    return None if result is None else result.contents.value  # type: ignore[union-attr]


# ---- diagnostics ---------------------------------------------------------------------------


async def test_diagnostics_are_the_compilers_errors_all_of_them(client: LanguageClient, workspace: Path):
    path = workspace / "two_errors.arch"
    text = MAIN.replace("ds k3 c24", "ds k3 c24 actt=relu").replace("ib k5 s2 e6 c48 x2", "ib k5 s2 e6 c48 x2 foo")
    path.write_text(text)
    shown = await show(client, path, text)
    expected = compiler_errors(path)
    assert len(expected) == 2 and len(shown) == 2
    for d, e in zip(shown, expected, strict=True):
        assert e.span is not None
        assert (d.range.start.line, d.range.start.character) == (e.span.line - 1, e.span.col - 1)
        assert (d.range.end.line, d.range.end.character) == (e.span.end_line - 1, e.span.end_col - 1)
        assert d.message.splitlines()[0] == e.message
        assert f"hint: {e.hint}" in d.message
        assert d.source == "archdsl" and d.severity == lsp.DiagnosticSeverity.Error
    # the range covers exactly the offending word
    line = text.splitlines()[shown[0].range.start.line]
    assert line[shown[0].range.start.character : shown[0].range.end.character] == "actt"
    close(client, path)


async def test_unsaved_buffer_and_fix_clears_diagnostics(client: LanguageClient, workspace: Path):
    path = workspace / "main.arch"  # on disk the spec is fine; the buffer is not
    broken = MAIN.replace("ds k3 c24", "dz k3 c24")
    (d,) = await show(client, path, broken)
    assert d.message.startswith("unknown block kind 'dz'") and d.range.start.line == 7
    assert await show(client, path, MAIN) == ()
    # saving analyses the buffer again (and publishes, whatever the disk holds)
    uri = uri_of(path)
    client.diagnostics.pop(uri, None)
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    assert await published(client, uri) == ()
    close(client, path)


def record_publishes(client: LanguageClient) -> list[tuple[str, list[str]]]:
    """Every publishDiagnostics from now on, in order: (uri, first lines of the messages)."""
    history: list[tuple[str, list[str]]] = []
    features = client.protocol.fm.features
    original = features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def recorded(params: lsp.PublishDiagnosticsParams) -> None:
        history.append((params.uri, [d.message.splitlines()[0] for d in params.diagnostics]))
        original(params)

    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = recorded
    return history


async def test_stale_results_never_overwrite_newer(client: LanguageClient, workspace: Path):
    path = workspace / "typing.arch"
    uri = uri_of(path)
    await show(client, path, MAIN)
    history = record_publishes(client)
    # a version that takes long to analyse (some 8,000 blocks: over a second here, well past the
    # 0.2 s after which the next version comes; 1,500 took 0.25 s, too close), replaced while its
    # analysis runs
    slow = MAIN.replace("ds k3 c24", "da k3 c24\n" + "    ib k3 e4 c24\n" * 8000)
    for version, text in ((2, slow), (3, MAIN.replace("ds k3 c24", "db k3 c24"))):
        VERSIONS[uri] = version
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [lsp.TextDocumentContentChangeWholeDocument(text)],
            )
        )
        await asyncio.sleep(0.2)  # the slow one's analysis has started
    for _ in range(200):
        if history and history[-1] == (uri, ["unknown block kind 'db'"]):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert history[-1] == (uri, ["unknown block kind 'db'"])
    assert all("'da'" not in " ".join(messages) for _, messages in history)  # the stale result never shown
    close(client, path)


async def test_error_in_an_imported_file_shows_at_the_import_and_in_that_file(client: LanguageClient, workspace: Path):
    lib, main = workspace / "lib.arch", workspace / "main.arch"
    broken_lib = LIB.rstrip()[:-1]  # its last closing brace lost
    with pytest.raises(ArchError) as caught:
        parse(broken_lib, "lib.arch")
    error = caught.value
    assert error.span is not None
    await show(client, lib, broken_lib)
    shown = await show(client, main, MAIN)
    (d,) = shown
    assert d.range.start.line == 0  # the import line
    assert f"lib.arch:{error.span.line}:{error.span.col}: {error.message}" in d.message and "never closed" in d.message
    lib_diagnostics = client.diagnostics[uri_of(lib)]
    assert [x.range.start.line for x in lib_diagnostics] == [error.span.line - 1]
    # mended in its buffer: the importing buffer is analysed again, its diagnostic goes
    client.diagnostics.pop(uri_of(main), None)
    await show(client, lib, LIB)
    assert await published(client, uri_of(main)) == ()
    close(client, lib)
    close(client, main)


async def test_template_misuse_is_shown_at_the_use(client: LanguageClient, workspace: Path):
    main = workspace / "main.arch"
    text = MAIN.replace("pair c=32 s=2", "pair c=32 s=0")  # stride 0 inside the template's body
    (d,) = await show(client, main, text)
    assert d.range.start.line == 8  # the use, not the template's line in lib.arch
    (error,) = compiler_errors_of_text(main, text)
    assert error.message in d.message and "lib.arch" in d.message
    close(client, main)


def compiler_errors_of_text(path: Path, text: str) -> list[ArchError]:
    saved = path.read_text()
    path.write_text(text)
    try:
        return compiler_errors(path)
    finally:
        path.write_text(saved)


# ---- hover -----------------------------------------------------------------------------------


async def test_hover_on_a_block_line_shows_its_resolved_shape_and_cost(client: LanguageClient, workspace: Path):
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    net = compile_file(main)
    ds = net.stages[0].blocks[0]
    text = await hover(client, main, 7, 2)  # the indentation of `ds k3 c24`
    c = block_cost(ds)
    assert text is not None and "16x32x32 -> 24x32x32" in text
    assert f"params **{c.params:,}**" in text and f"({c.macs:,})" in text
    # `x2` gives two blocks: the line shows both, summed
    pair = net.stages[1].blocks
    text = await hover(client, main, 11, 6)
    total = sum(block_cost(b).macs for b in pair)
    assert text is not None and "(2 blocks)" in text and f"({total:,})" in text
    # the head word adds what the kind is
    text = await hover(client, main, 11, 4)
    assert text is not None and WORDS["ib"][1].summary in text
    close(client, main)


async def test_hover_on_stage_network_template_and_option(client: LanguageClient, workspace: Path):
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    net = compile_file(main)
    stage = await hover(client, main, 6, 3)  # `stage s0 {`
    macs = sum(block_cost(b).macs for b in net.stages[0].blocks)
    assert stage is not None and "(s0)" in stage and "3 blocks" in stage and f"({macs:,})" in stage
    network = await hover(client, main, 2, 9)
    total = sum(block_cost(b).macs for b in net.blocks())
    assert network is not None and f"({total:,})" in network and "3x64x64 -> 10" in network
    template = await hover(client, main, 8, 5)  # `pair` at its use
    assert template is not None and "block pair(c, s=1)" in template
    assert "A pair of inverted bottlenecks: the first may stride.\nWidths in channels." in template
    option = await hover(client, main, 11, 13)  # `e6`
    assert option == f"`e`: {KWARGS['e'].meaning} = 6"
    parameter = await hover(client, main, 8, 14)  # `s=2` of a template use: no option meaning; the use's figures
    assert parameter is not None and "stages.0.blocks.1 … stages.0.blocks.2 (2 blocks)" in parameter
    close(client, main)


async def test_hover_option_meanings_come_from_the_vocabulary(client: LanguageClient, workspace: Path):
    path = workspace / "options.arch"
    text = MAIN.replace("ds k3 c24", "conv k3 c24 dw bias act=relu6")
    await show(client, path, text)
    line = 7
    row = text.splitlines()[line]
    for word, expected in (("dw", FLAGS["dw"][1]), ("bias", FLAGS["bias"][1]), ("act=", KWARGS["act"].meaning)):
        assert expected in (await hover(client, path, line, row.index(word) + 1) or "")
    close(client, path)


async def test_hover_and_completion_on_a_one_line_dense_head(client: LanguageClient, workspace: Path):
    """`head ssdlite anchors=4`: the kind, its options and its outputs, as on a one-line stem."""
    path = workspace / "detector.arch"
    text = DETECTOR
    await show(client, path, text)
    line = text.splitlines().index("  head ssdlite anchors=4")
    kind = await hover(client, path, line, 8) or ""
    assert WORDS["ssdlite"][1].summary in kind and "1280x4 + 1280x5" in kind and "CxHxW" not in kind
    assert KWARGS["anchors"].meaning in (await hover(client, path, line, 17) or "")
    await show(client, path, text.replace("  head ssdlite anchors=4", "  head ssdlite \n  head "))
    options = await complete_at(client, path, line, len("  head ssdlite "))
    assert "anchors=" in options and "out" not in options  # a head reads endpoints; it is none
    assert "lraspp" in await complete_at(client, path, line + 1, len("  head "))
    close(client, path)


# ---- completion, navigation, outline, formatting, fixes, hints ----------------------------------


async def complete_at(client: LanguageClient, path: Path, line: int, character: int) -> list[str]:
    result = await client.text_document_completion_async(
        lsp.CompletionParams(lsp.TextDocumentIdentifier(uri_of(path)), lsp.Position(line, character))
    )
    assert isinstance(result, lsp.CompletionList)
    return [i.label for i in result.items]


async def test_completion_at_chosen_cursors(client: LanguageClient, workspace: Path):
    path = workspace / "main.arch"
    text = MAIN.replace("    ds k3 c24\n", "    ds k3 c24\n    \n    ib \n    ib k3 act=\n")
    await show(client, path, MAIN)  # the analysis that knows `pair`
    await show(client, path, text)
    kinds = await complete_at(client, path, 8, 4)
    assert set(WORDS) <= set(kinds) and "pair" in kinds
    options = await complete_at(client, path, 9, 7)
    assert "e" in options and "se" in options and "skip" in options and "act=" in options
    assert "branches=" not in options  # a mobileone option, not an inverted bottleneck's
    values = await complete_at(client, path, 10, 14)
    assert values[:3] == ["relu", "relu6", "hard_swish"]
    top = await complete_at(client, path, 0, 0)
    assert top == ["network", "block", "import"]
    settings = await complete_at(client, path, 3, 2)
    assert {"input", "classes", "width", "stage", "head"} <= set(settings)
    result = await client.text_document_completion_async(
        lsp.CompletionParams(lsp.TextDocumentIdentifier(uri_of(path)), lsp.Position(3, 2))
    )
    assert isinstance(result, lsp.CompletionList)
    (stage,) = [i for i in result.items if i.kind == lsp.CompletionItemKind.Snippet]
    assert stage.label == "stage" and stage.insert_text == "stage ${1:s0} {\n  $0\n}"
    await show(client, path, MAIN + "network mine = ")
    assert await complete_at(client, path, len(MAIN.splitlines()), len("network mine = ")) == ["tiny"]
    close(client, path)


async def test_definition_and_references(client: LanguageClient, workspace: Path):
    main, lib = workspace / "main.arch", workspace / "lib.arch"
    await show(client, main, MAIN)
    target = await client.text_document_definition_async(
        lsp.DefinitionParams(lsp.TextDocumentIdentifier(uri_of(main)), lsp.Position(8, 5))
    )
    assert isinstance(target, lsp.Location) and target.uri == uri_of(lib)
    assert (target.range.start.line, target.range.start.character) == (2, 6)  # `pair` in `block pair(`
    imported = await client.text_document_definition_async(
        lsp.DefinitionParams(lsp.TextDocumentIdentifier(uri_of(main)), lsp.Position(0, 10))
    )
    assert isinstance(imported, lsp.Location) and imported.uri == uri_of(lib)
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(
            context=lsp.ReferenceContext(include_declaration=True),
            text_document=lsp.TextDocumentIdentifier(uri_of(main)),
            position=lsp.Position(8, 5),
        )
    )
    # its definition, its use in lib.arch's family, and the use here
    expected = [(uri_of(lib), 2), (uri_of(lib), 12), (uri_of(main), 8)]
    assert sorted((r.uri, r.range.start.line) for r in refs) == sorted(expected)
    close(client, main)


async def test_document_symbols_are_the_outline(client: LanguageClient, workspace: Path):
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(uri_of(main)))
    )
    tree = [(s.name, [(c.name, [g.name for g in c.children or ()]) for c in s.children or ()]) for s in symbols]
    assert tree == [
        (
            "toy",
            [
                ("stem conv k3 s2 c16", []),
                ("stage s0", ["ds k3 c24", "pair c=32 s=2"]),
                ("stage s1", ["ib k5 s2 e6 c48 x2"]),
                ("head", ["pool avg", "classifier"]),
            ],
        )
    ]
    close(client, main)


async def test_formatting_is_fmt_byte_for_byte(client: LanguageClient, workspace: Path):
    path = workspace / "messy.arch"
    messy = MAIN.replace("  stage s0 {\n", "  stage   s0{\n").replace(
        "    ds k3 c24", "       ds   k3    c24  # a comment"
    )
    await show(client, path, messy)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri_of(path)), lsp.FormattingOptions(2, True))
    )
    assert edits is not None and len(edits) == 1
    (edit,) = edits
    assert edit.range.start == lsp.Position(0, 0)
    assert edit.new_text == format_module(parse(messy, "messy.arch")) != messy
    await show(client, path, edit.new_text)
    again = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri_of(path)), lsp.FormattingOptions(2, True))
    )
    assert again is not None and len(again) == 0  # canonical already: no edit
    close(client, path)


async def test_quick_fix_applies_the_did_you_mean_hint(client: LanguageClient, workspace: Path):
    path = workspace / "typo.arch"
    (d,) = await show(client, path, MAIN.replace("classifier", "clasifier"))
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(lsp.TextDocumentIdentifier(uri_of(path)), d.range, lsp.CodeActionContext([d]))
    )
    assert actions is not None
    (action,) = actions
    assert isinstance(action, lsp.CodeAction) and action.edit is not None and action.edit.changes is not None
    (edit,) = action.edit.changes[uri_of(path)]
    assert edit.new_text == "classifier" and edit.range == d.range
    close(client, path)


async def test_inlay_hints_give_each_block_line_its_output_and_macs(client: LanguageClient, workspace: Path):
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(
            lsp.TextDocumentIdentifier(uri_of(main)), lsp.Range(lsp.Position(0, 0), lsp.Position(30, 0))
        )
    )
    assert hints is not None
    by_line = {h.position.line: h.label for h in hints}
    net = compile_file(main)
    ds = net.stages[0].blocks[0]
    assert by_line[7] == f"-> 24x32x32 · {si(block_cost(ds).macs)} MACs"
    assert set(by_line) == {5, 7, 8, 11, 14, 15}  # stem, blocks, the template use, the head's blocks
    assert all(h.position.character == len(MAIN.splitlines()[h.position.line]) for h in hints)
    close(client, main)


async def test_a_search_space_shows_its_first_candidate_and_its_bad_values(client: LanguageClient, workspace: Path):
    """A spec with choices is a space (docs/language.md section 16): the editor shows the shapes
    of its first candidate, and an illegal value of any choice where it stands."""
    path = workspace / "space.arch"
    text = MAIN.replace("ds k3 c24", "ds k{3,5} c{24,32}").replace("ib k5 s2 e6 c48 x2", "ib k5 s2 e{4,6} c48 x{1..3}")
    assert await show(client, path, text) == ()
    first = compile_text(text.replace("k{3,5} c{24,32}", "k3 c24").replace("e{4,6} c48 x{1..3}", "e4 c48 x1"),
                         str(path))  # fmt: skip
    shown = await hover(client, path, 7, 2)
    ds = first.stages[0].blocks[0]
    assert shown is not None and "16x32x32 -> 24x32x32" in shown and f"({block_cost(ds).macs:,})" in shown
    shown = await hover(client, path, 11, 15)  # on `e{4,6}`
    assert shown is not None and "**choice `s1.0.e`**: 4, 6 (2 values)" in shown
    assert "one of 4 dimensions of `toy`, a space of 24 networks" in shown
    bad = text.replace("e{4,6}", "e{4,0}")
    (d,) = await show(client, path, bad)
    line = bad.splitlines()[d.range.start.line]
    assert line[d.range.start.character : d.range.end.character] == "0"
    assert "expansion ratio must be > 0" in d.message and "with s1.0.e = 0" in d.message
    close(client, path)


# ---- bad input ---------------------------------------------------------------------------------

DAMAGED = {
    "truncated": MAIN[: len(MAIN) // 2],
    "stray braces": MAIN.replace("stage s1 {", "stage s1 {{ }"),
    "NUL bytes": MAIN.replace("ds k3", "ds\0 k3"),
    "huge number": MAIN.replace("c24", "c" + "9" * 60),
    "empty": "",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
async def test_damaged_specs_give_diagnostics_and_the_server_keeps_serving(
    client: LanguageClient, workspace: Path, damage: str
):
    path = workspace / f"damaged_{damage.replace(' ', '_')}.arch"
    text = DAMAGED[damage]
    path.write_text(text)
    shown = await show(client, path, text)
    if text:
        expected = [e.message for e in compiler_errors(path)]
        assert [d.message.splitlines()[0] for d in shown] == expected != []
    else:  # a file with nothing in it yet: nothing wrong with it in an editor (the CLI: no network to compile)
        assert shown == ()
    row = text.split("\n")[3] if text.count("\n") >= 3 else ""
    assert await hover(client, path, 3, 500) == await hover(client, path, 3, len(row))  # past the end: the end
    close(client, path)
    # still serving
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    assert "24x32x32" in (await hover(client, main, 7, 4) or "")
    close(client, main)


async def test_import_cycle_is_a_diagnostic(client: LanguageClient, workspace: Path):
    a, b = workspace / "cycle_a.arch", workspace / "cycle_b.arch"
    a.write_text('import "cycle_b.arch"\n')
    b.write_text('import "cycle_a.arch"\n')
    (d,) = await show(client, a, a.read_text())
    assert "import cycle" in d.message
    await show(client, b, b.read_text())  # both open, each importing the other
    await asyncio.sleep(0.3)
    client.diagnostics.pop(uri_of(a), None)
    client.diagnostics.pop(uri_of(b), None)
    await asyncio.sleep(0.5)  # settled: they do not set each other off again and again
    assert uri_of(a) not in client.diagnostics and uri_of(b) not in client.diagnostics
    close(client, a)
    close(client, b)


async def test_a_buffer_over_the_spec_size_bound_is_refused_not_parsed(client: LanguageClient, workspace: Path):
    path = workspace / "huge.arch"
    (d,) = await show(client, path, "ib k3 c8\n" * 40_000)  # 360 kB: parsing it would take seconds
    assert "more than the 262,144 bytes a spec may have" in d.message
    close(client, path)


async def test_bad_requests_get_protocol_errors(client: LanguageClient, workspace: Path):
    closed = workspace / "never_opened.arch"
    with pytest.raises(Exception, match="is not open"):  # an error response, not a guess from the disk
        await hover(client, closed, 0, 0)
    with pytest.raises(Exception, match="(?i)method not found|not found"):
        await client.protocol.send_request_async("archdsl/noSuchMethod", {})
    main = workspace / "main.arch"
    await show(client, main, MAIN)
    end = len(MAIN.splitlines()[7])
    assert await hover(client, main, 7, 10_000) == await hover(client, main, 7, end) != None  # noqa: E711  # the line's end
    assert await hover(client, main, 10_000, 0) is None
    close(client, main)


async def test_hover_shows_the_predicted_time_with_a_latency_profile(workspace: Path):
    """A server started with a latency profile (`initializationOptions`): a block's hover adds its
    predicted time, the one `archdsl latency` gives that block (deploy form)."""
    from archdsl.analysis.latency import Entry, Predictor, Profile, features, key_of, unit_of
    from archdsl.analysis.layers import network_layers
    from archdsl.analysis.report import block_seconds
    from archdsl.ir.deploy_form import deploy_form

    main = workspace / "main.arch"
    deployed = deploy_form(compile_file(main))
    entries = {}
    for layer in network_layers(deployed):
        unit = unit_of(layer)
        if unit is not None:
            macs, moved = features(layer)
            entries[key_of(unit)] = Entry(unit, 3e-4 + 2e-9 * macs + 1e-8 * moved, macs, moved)
    profile = Profile("tflite", 1, 2e-6, entries, {"tensorflow": "x"})
    path = workspace / "profile.json"
    path.write_text(json.dumps(profile.to_json()))
    expected = block_seconds(Predictor(profile).network(deployed))["stages.0.blocks.0"]

    config = ClientServerConfig(server_command=[sys.executable, "-m", "archdsl", "lsp"])
    client = await config.start()
    try:
        await client.initialize_session(
            lsp.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={"latencyProfile": str(path), "inlayHints": False},
            )
        )
        VERSIONS.pop(uri_of(main), None)
        await show(client, main, MAIN)
        text = await hover(client, main, 7, 4)
        assert text is not None and f"predicted **{expected * 1e3:.3f} ms** (deploy form" in text
        hints = await client.text_document_inlay_hint_async(
            lsp.InlayHintParams(
                lsp.TextDocumentIdentifier(uri_of(main)), lsp.Range(lsp.Position(0, 0), lsp.Position(30, 0))
            )
        )
        assert not hints  # switched off
        close(client, main)
        await client.shutdown_session()
    finally:
        await client.stop()


async def test_positions_count_utf16_units_and_crlf_lines(client: LanguageClient, workspace: Path):
    """The import path's error range ends after an astral character (two UTF-16 units, one code
    point); a CRLF file has its errors where an LF one has them."""
    path = workspace / "astral.arch"
    (d,) = await show(client, path, 'import "\U0001d6fc.arch"\n')
    assert "no such file" in d.message
    assert (d.range.start.character, d.range.end.character) == (7, 7 + len('"x.arch"') + 1)
    close(client, path)
    crlf = workspace / "crlf.arch"
    lf_diagnostics = await show(client, crlf, MAIN.replace("ds k3", "dz k3"))
    close(client, crlf)
    crlf_diagnostics = await show(client, crlf, MAIN.replace("ds k3", "dz k3").replace("\n", "\r\n"))
    assert [x.range for x in crlf_diagnostics] == [x.range for x in lf_diagnostics] != []
    await show(client, crlf, MAIN.replace("\n", "\r\n"))
    assert "16x32x32 -> 24x32x32" in (await hover(client, crlf, 7, 4) or "")
    close(client, crlf)


async def test_utf8_positions_when_the_client_asks_for_them(workspace: Path):
    config = ClientServerConfig(server_command=[sys.executable, "-m", "archdsl", "lsp"])
    client = await config.start()
    try:
        capabilities = client_capabilities("visual-studio-code")
        capabilities.general = lsp.GeneralClientCapabilities(position_encodings=[lsp.PositionEncodingKind.Utf8])
        result = await client.initialize_session(lsp.InitializeParams(capabilities=capabilities))
        assert result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf8
        path = workspace / "astral8.arch"
        VERSIONS.pop(uri_of(path), None)
        (d,) = await show(client, path, 'import "\U0001d6fc.arch"\n')
        assert (d.range.start.character, d.range.end.character) == (7, 7 + len('"x.arch"') + 3)  # 4 bytes
        close(client, path)
        await client.shutdown_session()
    finally:
        await client.stop()


async def test_a_closed_buffer_is_cleared_and_reopens_fresh(client: LanguageClient, workspace: Path):
    path = workspace / "reopen.arch"
    await show(client, path, MAIN.replace("ds k3", "dz k3"))
    client.diagnostics.pop(uri_of(path), None)
    close(client, path)
    assert await published(client, uri_of(path)) == ()  # closing clears what was shown
    assert await show(client, path, MAIN) == ()  # reopened at version 1 with other text
    close(client, path)


async def test_a_file_name_that_needs_percent_encoding(client: LanguageClient, workspace: Path):
    path = workspace / "my spec (v2).arch"
    (d,) = await show(client, path, MAIN.replace("ds k3", "dz k3"))
    assert d.message.startswith("unknown block kind 'dz'")
    assert await show(client, path, MAIN) == ()
    assert "24x32x32" in (await hover(client, path, 7, 4) or "")
    close(client, path)


async def test_imports_of_open_buffers_unsaved_new_and_through_a_symbolic_link(client: LanguageClient, workspace: Path):
    real = workspace / "real"
    real.mkdir()
    linked = workspace / "linked"
    linked.symlink_to(real, target_is_directory=True)
    (real / "main.arch").write_text(MAIN.replace('"lib.arch"', '"fresh.arch"').replace("pair c=32", "trio c=32"))
    fresh = linked / "fresh.arch"  # never saved: only the buffer has it
    await show(client, fresh, LIB.replace("block pair", "block trio"))
    main = linked / "main.arch"
    assert await show(client, main, main.read_text()) == ()
    target = await client.text_document_definition_async(
        lsp.DefinitionParams(lsp.TextDocumentIdentifier(uri_of(main)), lsp.Position(8, 5))
    )
    assert isinstance(target, lsp.Location) and target.uri == uri_of(fresh)  # the buffer's own URI
    # closing the unsaved buffer: the importer reads the disk again, where the file is missing
    client.diagnostics.pop(uri_of(main), None)
    close(client, fresh)
    (d,) = await published(client, uri_of(main))
    assert "no such file" in d.message
    close(client, main)


async def test_references_from_the_defining_file_find_uses_in_open_importers(client: LanguageClient, workspace: Path):
    lib, main = workspace / "lib.arch", workspace / "main.arch"
    await show(client, main, MAIN)
    await show(client, lib, LIB)
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(
            context=lsp.ReferenceContext(include_declaration=False),
            text_document=lsp.TextDocumentIdentifier(uri_of(lib)),
            position=lsp.Position(2, 7),  # `pair` in its definition
        )
    )
    assert sorted((r.uri, r.range.start.line) for r in refs) == sorted([(uri_of(lib), 12), (uri_of(main), 8)])
    close(client, lib)
    close(client, main)


async def test_completion_in_a_stem_body_and_settings_changed_at_run_time(client: LanguageClient, workspace: Path):
    path = workspace / "stem_body.arch"
    text = MAIN.replace("  stem conv k3 s2 c16\n", "  stem {\n    \n  }\n")
    await show(client, path, text)
    assert set(WORDS) <= set(await complete_at(client, path, 6, 4))
    await show(client, path, MAIN)
    everywhere = lsp.Range(lsp.Position(0, 0), lsp.Position(30, 0))
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams({"archdsl": {"inlayHints": False}}))
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(lsp.TextDocumentIdentifier(uri_of(path)), everywhere)
    )
    assert not hints
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams({"archdsl": {"inlayHints": True}}))
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(lsp.TextDocumentIdentifier(uri_of(path)), everywhere)
    )
    assert hints
    close(client, path)


async def test_many_networks_are_analysed_up_to_a_bound(client: LanguageClient, workspace: Path):
    path = workspace / "many.arch"
    family = LIB.split("network tiny")[1]
    text = (
        LIB.split("network tiny")[0]
        + "network tiny"
        + family
        + "".join(f"network n{i} = tiny(c={8 + i})\n" for i in range(70))
    )
    shown = await show(client, path, text)
    notices = [d for d in shown if d.severity == lsp.DiagnosticSeverity.Information]
    assert len(notices) == 70 + 1 - 64 and all("not analysed here" in d.message for d in notices)
    assert [d for d in shown if d.severity == lsp.DiagnosticSeverity.Error] == []
    close(client, path)
