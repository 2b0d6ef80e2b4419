"""`archdsl lsp`: the language server over stdio (pygls); each request's handler. The buffers,
their analyses and diagnostics are `documents.Documents`'.

A request about a document that is not open gets an error response (invalid params); a position
past the end of a line means that line's end, as the protocol says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcParseError
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from .. import __version__
from ..errors import ArchError, Span
from ..language.fmt import format_module
from .analysis import Analysis, span_path
from .completion import complete
from .diagnostics import SOURCE
from .documents import Documents
from .figures import Seconds, predictor_seconds
from .hover import hover_text
from .inlay import inlay_hints
from .navigation import definition, references
from .outline import outline
from .positions import cursor, span_range, text_before, whole


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
        self.documents = Documents(lambda: self.workspace, self.text_document_publish_diagnostics)
        self.seconds: Seconds | None = None
        self.inlay = True

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16)

    async def analysis(self, uri: str) -> Analysis:
        """The open buffer's current analysis; an error response for a buffer that is not open."""
        a = await self.documents.current(uri)
        if a is None:
            raise JsonRpcInvalidParams(f"{uri} is not open")
        return a

    def location(self, target: Span | Path) -> lsp.Location:
        if isinstance(target, Path):
            return lsp.Location(self.documents.uri_for(target), lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
        return lsp.Location(self.documents.uri_for(span_path(target)), span_range(target, self.encoding))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A message that is not JSON (or not UTF-8) gets JSON-RPC's parse error response, with no
        id (none can be read); other errors are shown as pygls shows them."""
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            error_object = {"code": JsonRpcParseError.CODE, "message": f"Parse error: {error}"}
            self.protocol._send_data({"jsonrpc": "2.0", "id": None, "error": error_object})  # JSON-RPC: id null
        else:
            super().report_server_error(error, source)

    def configure(self, options: Any) -> None:
        """Settings, from `initializationOptions` or `workspace/didChangeConfiguration`:
        {"latencyProfile": path, "inlayHints": bool} (under "archdsl" in the latter)."""
        if not isinstance(options, dict):
            return
        self.inlay = options.get("inlayHints", True) is not False
        profile = options.get("latencyProfile")
        self.seconds = None
        if isinstance(profile, str) and profile:
            from ..analysis.latency import Predictor, read_profile

            try:
                self.seconds = predictor_seconds(Predictor(read_profile(profile)))
            except ArchError as e:
                self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, e.render()))


def build() -> ArchServer:
    server = ArchServer()
    on = server.feature

    @on(lsp.INITIALIZE)
    def initialize(ls: ArchServer, params: lsp.InitializeParams) -> None:
        ls.documents.encoding = ls.encoding
        ls.configure(params.initialization_options)

    @on(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def settings(ls: ArchServer, params: lsp.DidChangeConfigurationParams) -> None:
        if isinstance(params.settings, dict):
            ls.configure(params.settings.get("archdsl", params.settings))

    def changed(ls: ArchServer, params: Any) -> None:
        if ls.documents.get(params.text_document.uri) is not None:
            ls.documents.schedule(params.text_document.uri)

    for method in (lsp.TEXT_DOCUMENT_DID_OPEN, lsp.TEXT_DOCUMENT_DID_CHANGE, lsp.TEXT_DOCUMENT_DID_SAVE):
        on(method)(changed)

    @on(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ArchServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.documents.closed(params.text_document.uri)

    @on(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: ArchServer, params: lsp.HoverParams) -> lsp.Hover | None:
        a = await ls.analysis(params.text_document.uri)
        text = hover_text(a, cursor(a.text, params.position, ls.encoding), ls.seconds)
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text)) if text else None

    @on(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["=", " "]))
    def completion(ls: ArchServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        doc = ls.documents.get(params.text_document.uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"{params.text_document.uri} is not open")
        before = text_before(doc.source, cursor(doc.source, params.position, ls.encoding))
        return lsp.CompletionList(is_incomplete=False, items=complete(before, ls.documents.defs_of(doc.uri)))

    @on(lsp.TEXT_DOCUMENT_DEFINITION)
    async def goto_definition(ls: ArchServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        a = await ls.analysis(params.text_document.uri)
        target = definition(a, cursor(a.text, params.position, ls.encoding))
        return ls.location(target) if target is not None else None

    @on(lsp.TEXT_DOCUMENT_REFERENCES)
    async def find_references(ls: ArchServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        a = await ls.analysis(params.text_document.uri)
        others = [x for x in ls.documents.published.values() if x.path != a.path]
        at = cursor(a.text, params.position, ls.encoding)
        return [ls.location(s) for s in references(a, at, params.context.include_declaration, others)]

    @on(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def symbols(ls: ArchServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        a = await ls.analysis(params.text_document.uri)
        return outline(a.module, ls.encoding) if a.module is not None else []

    @on(lsp.TEXT_DOCUMENT_FORMATTING)
    async def formatting(ls: ArchServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        a = await ls.analysis(params.text_document.uri)
        if a.module is None:
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
        a = await ls.analysis(params.text_document.uri)
        if not ls.inlay:
            return []
        return inlay_hints(a, params.range.start.line + 1, params.range.end.line + 1, ls.encoding)

    return server


def serve() -> int:
    build().start_io()
    return 0
