"""`archdsl lsp`: the language server over stdio (pygls).

Each open buffer is analysed on open, change and save, in one worker thread, a short while after
the last change (edits that come while one analysis runs are taken together by the next); a
result is published only when the buffer has not changed since it was read, so a stale result
never overwrites a newer one. Buffers that import a changed one are analysed again. Requests
read the buffer's latest analysis (made now when the buffer moved on)."""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcParseError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..errors import ArchError
from ..language.fmt import format_module
from ..language.loader import Definitions
from .analysis import Analysis, EditorFiles, analyse, span_path
from .completion import complete
from .diagnostics import SOURCE, diagnostics
from .figures import Seconds, predictor_seconds
from .hover import hover_text
from .inlay import inlay_hints
from .navigation import definition, references
from .outline import outline
from .positions import cursor, span_range, whole

DEBOUNCE_S = 0.01  # after a change, before its analysis starts: a burst of keystrokes is one
logger = logging.getLogger(__name__)


class _Protocol(LanguageServerProtocol):
    """Answers a request whose parameters it cannot read with the protocol's error response
    (pygls only logs it, and the client would wait for ever)."""

    def structure_message(self, data: Any) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "method" in data and data.get("id") is not None:
                self._send_response(data["id"], error=lsp.ResponseError(exc.code, exc.message))
                return None  # handled: nothing to dispatch
            raise

    def handle_message(self, message: Any) -> None:
        if message is not None:
            super().handle_message(message)


class ArchServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "archdsl", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental, protocol_cls=_Protocol
        )
        self.files = EditorFiles()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archdsl-analysis")
        self.analyses: dict[str, Analysis] = {}  # uri -> its latest published analysis
        self.defs: dict[str, Definitions] = {}  # uri -> the definitions its latest loading analysis saw
        self.found: dict[str, dict[Path, list[lsp.Diagnostic]]] = {}  # uri -> diagnostics per file
        self.running: dict[str, asyncio.Task] = {}
        self.seconds: Seconds | None = None
        self.inlay = True

    # ---- analysis --------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16)

    def open_texts(self) -> dict[Path, str]:
        return {path_of(uri): doc.source for uri, doc in self.workspace.text_documents.items()}

    def schedule(self, uri: str) -> None:
        if uri not in self.running:
            self.running[uri] = asyncio.ensure_future(self._analyse_until_current(uri))

    async def _analyse_until_current(self, uri: str) -> None:
        try:
            while uri in self.workspace.text_documents:
                await asyncio.sleep(DEBOUNCE_S)
                doc = self.workspace.get_text_document(uri)
                version, text = doc.version, doc.source
                result = await self._analyse(uri, text)
                if uri not in self.workspace.text_documents:
                    return
                if self.workspace.get_text_document(uri).version == version:
                    self._publish(uri, result)
                    return
        finally:
            self.running.pop(uri, None)

    async def _analyse(self, uri: str, text: str) -> Analysis:
        texts = self.open_texts()
        job = lambda: analyse(path_of(uri), text, self.files, texts)  # noqa: E731
        return await asyncio.get_running_loop().run_in_executor(self.worker, job)

    async def current(self, uri: str) -> Analysis | None:
        """The analysis of the buffer as it is now (None for a buffer that is not open)."""
        if uri not in self.workspace.text_documents:
            return None
        text = self.workspace.get_text_document(uri).source
        a = self.analyses.get(uri)
        return a if a is not None and a.text == text else await self._analyse(uri, text)

    def _publish(self, uri: str, a: Analysis) -> None:
        self.analyses[uri] = a
        if a.defs is not None:
            self.defs[uri] = a.defs
        before = set(self.found.get(uri, {}))
        self.found[uri] = diagnostics(a, self.encoding)
        for path in before | set(self.found[uri]):
            self._send(path)
        for other, analysis in list(self.analyses.items()):  # buffers that import this one as it was
            if other != uri and a.path in analysis.importer and analysis.seen.get(a.path) != a.text:
                self.schedule(other)

    def _send(self, path: Path) -> None:
        """Publish a file's diagnostics: its own analysis's and those other buffers found in it."""
        uri = from_fs_path(str(path)) or str(path)
        seen, shown = set(), []
        for found in self.found.values():
            for d in found.get(path, []):
                key = (d.range.start.line, d.range.start.character, d.message)
                if key not in seen:
                    seen.add(key)
                    shown.append(d)
        if uri in self.workspace.text_documents or not shown:
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, shown))

    def closed(self, uri: str) -> None:
        self.analyses.pop(uri, None)
        self.defs.pop(uri, None)
        for path in self.found.pop(uri, {}):
            self._send(path)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A message that is not JSON gets JSON-RPC's parse error response (with no id: none can
        be read); other errors are shown as pygls shows them."""
        if isinstance(error, json.JSONDecodeError):
            parse_error = lsp.ResponseError(JsonRpcParseError.CODE, f"Parse error: {error}")
            self.protocol._send_response(None, error=parse_error)  # type: ignore[arg-type]  # JSON-RPC: id null
        else:
            super().report_server_error(error, source)

    def configure(self, options: Any) -> None:
        """`initializationOptions`: {"latencyProfile": path, "inlayHints": bool}."""
        if not isinstance(options, dict):
            return
        self.inlay = options.get("inlayHints", True) is not False
        profile = options.get("latencyProfile")
        if isinstance(profile, str) and profile:
            from ..analysis.latency import Predictor, read_profile

            try:
                self.seconds = predictor_seconds(Predictor(read_profile(profile)))
            except ArchError as e:
                self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, e.render()))


def path_of(uri: str) -> Path:
    return Path(to_fs_path(uri) or uri).absolute()


def location(span_or_path: Any, encoding: str) -> lsp.Location:
    if isinstance(span_or_path, Path):
        return lsp.Location(from_fs_path(str(span_or_path)), lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
    return lsp.Location(from_fs_path(str(span_path(span_or_path))), span_range(span_or_path, encoding))


def build() -> ArchServer:
    server = ArchServer()

    def on(method: str, options: Any = None) -> Callable:
        return server.feature(method, options)

    @on(lsp.INITIALIZE)
    def initialize(ls: ArchServer, params: lsp.InitializeParams) -> None:
        ls.configure(params.initialization_options)

    def changed(ls: ArchServer, params: Any) -> None:
        ls.schedule(params.text_document.uri)

    for method in (lsp.TEXT_DOCUMENT_DID_OPEN, lsp.TEXT_DOCUMENT_DID_CHANGE, lsp.TEXT_DOCUMENT_DID_SAVE):
        on(method)(changed)

    @on(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @on(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: ArchServer, params: lsp.HoverParams) -> lsp.Hover | None:
        a = await ls.current(params.text_document.uri)
        if a is None:
            return None
        text = hover_text(a, cursor(a.text, params.position, ls.encoding), ls.seconds)
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text)) if text else None

    @on(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["=", " "]))
    async def completion(ls: ArchServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        if uri not in ls.workspace.text_documents:
            return lsp.CompletionList(is_incomplete=False, items=[])
        doc = ls.workspace.get_text_document(uri)
        line, col = cursor(doc.source, params.position, ls.encoding)
        lines = doc.source.split("\n")
        before = "\n".join([*lines[: line - 1], lines[line - 1][: col - 1] if line <= len(lines) else ""])
        return lsp.CompletionList(is_incomplete=False, items=complete(before, ls.defs.get(uri)))

    @on(lsp.TEXT_DOCUMENT_DEFINITION)
    async def goto_definition(ls: ArchServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        a = await ls.current(params.text_document.uri)
        target = definition(a, cursor(a.text, params.position, ls.encoding)) if a else None
        return location(target, ls.encoding) if target is not None else None

    @on(lsp.TEXT_DOCUMENT_REFERENCES)
    async def find_references(ls: ArchServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        a = await ls.current(params.text_document.uri)
        if a is None:
            return []
        at = cursor(a.text, params.position, ls.encoding)
        return [location(s, ls.encoding) for s in references(a, at, params.context.include_declaration)]

    @on(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def symbols(ls: ArchServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        a = await ls.current(params.text_document.uri)
        return outline(a.module, ls.encoding) if a is not None and a.module is not None else []

    @on(lsp.TEXT_DOCUMENT_FORMATTING)
    async def formatting(ls: ArchServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        a = await ls.current(params.text_document.uri)
        if a is None or a.module is None:
            return None  # text that does not parse is left as it is
        formatted = format_module(a.module)
        return [] if formatted == a.text else [lsp.TextEdit(whole(a.text, ls.encoding), formatted)]

    @on(lsp.TEXT_DOCUMENT_CODE_ACTION)
    def code_actions(ls: ArchServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        out = []
        for d in params.context.diagnostics:
            word = d.data.get("replace") if d.source == SOURCE and isinstance(d.data, dict) else None
            if isinstance(word, str):
                edit = lsp.WorkspaceEdit(changes={params.text_document.uri: [lsp.TextEdit(d.range, word)]})
                title = f"Replace with '{word}'"
                out.append(lsp.CodeAction(title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[d], edit=edit))
        return out

    @on(lsp.TEXT_DOCUMENT_INLAY_HINT)
    async def hints(ls: ArchServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        a = await ls.current(params.text_document.uri) if ls.inlay else None
        if a is None:
            return []
        return inlay_hints(a, params.range.start.line + 1, params.range.end.line + 1, ls.encoding)

    return server


def serve() -> int:
    build().start_io()
    return 0
