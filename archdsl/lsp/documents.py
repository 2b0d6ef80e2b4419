"""The open buffers and their analyses: when each is analysed, which result is published, and
whose diagnostics go to which file.

A buffer is analysed on open, change and save, in one worker thread, a moment after the change
(edits that come while an analysis runs are taken together by the next). A result is published
only when the buffer still holds the text it was made from, so a stale result never overwrites a
newer one. Buffers that import a changed (or closed) one are analysed again. Requests use the
buffer's latest analysis, made on the spot when the buffer has moved on.

Buffers are keyed as pygls keys them (the URI, percent-decoded); files by their resolved path,
as the loader resolves imports (a symbolic link to a spec is that spec); what is published goes
to the URI the client gave the buffer."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument, Workspace

from ..language.loader import Definitions
from .analysis import Analysis, EditorFiles, analyse
from .diagnostics import diagnostics

DEBOUNCE_S = 0.01  # after a change, before its analysis: keystrokes typed together are one


def path_of(uri: str) -> Path:
    return Path(to_fs_path(uri) or unquote(uri)).resolve()


class Documents:
    def __init__(self, workspace: Callable[[], Workspace], publish: Callable[[lsp.PublishDiagnosticsParams], None]):
        self._workspace = workspace
        self._publish_params = publish
        self.encoding: str = lsp.PositionEncodingKind.Utf16
        self.files = EditorFiles()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archdsl-analysis")
        self.published: dict[str, Analysis] = {}  # buffer -> its latest published analysis
        self.latest: dict[str, Analysis] = {}  # buffer -> its latest analysis, published or made for a request
        self.defs: dict[str, Definitions] = {}  # buffer -> what its latest analysis that loaded saw
        self.found: dict[str, dict[Path, list[lsp.Diagnostic]]] = {}  # buffer -> diagnostics per file
        self.running: dict[str, asyncio.Task] = {}

    # ---- buffers ----------------------------------------------------------------------------

    def get(self, uri: str) -> TextDocument | None:
        return self._workspace().text_documents.get(unquote(uri))

    def open_texts(self) -> dict[Path, str]:
        return {path_of(doc.uri): doc.source for doc in self._workspace().text_documents.values()}

    def defs_of(self, uri: str) -> Definitions | None:
        return self.defs.get(unquote(uri))

    def uri_for(self, path: Path) -> str:
        """The URI the client knows `path` by: its open buffer's, else the file's."""
        for doc in self._workspace().text_documents.values():
            if path_of(doc.uri) == path:
                return doc.uri
        return from_fs_path(str(path)) or str(path)

    # ---- analysis ---------------------------------------------------------------------------

    def schedule(self, uri: str) -> None:
        key = unquote(uri)
        if key not in self.running:
            self.running[key] = asyncio.ensure_future(self._analyse_until_current(key))

    async def _analyse_until_current(self, key: str) -> None:
        try:
            while (doc := self.get(key)) is not None:
                await asyncio.sleep(DEBOUNCE_S)
                doc = self.get(key)
                if doc is None:
                    return
                text = doc.source
                result = await self._analyse(doc.uri, text)
                doc = self.get(key)
                if doc is not None and doc.source == text:  # not changed, closed or reopened since
                    self._publish(key, result)
                    return
        finally:
            self.running.pop(key, None)

    async def _analyse(self, uri: str, text: str) -> Analysis:
        texts = self.open_texts()
        result = await asyncio.get_running_loop().run_in_executor(
            self.worker, analyse, path_of(uri), text, self.files, texts
        )
        self.latest[unquote(uri)] = result
        return result

    async def current(self, uri: str) -> Analysis | None:
        """The analysis of the buffer as it is now (None for a buffer that is not open)."""
        doc = self.get(uri)
        if doc is None:
            return None
        a = self.latest.get(unquote(uri))
        return a if a is not None and a.text == doc.source else await self._analyse(doc.uri, doc.source)

    # ---- diagnostics ------------------------------------------------------------------------

    def _publish(self, key: str, a: Analysis) -> None:
        self.published[key] = a
        if a.defs is not None:
            self.defs[key] = a.defs
        before = set(self.found.get(key, {}))
        self.found[key] = diagnostics(a, self.encoding)
        for path in before | set(self.found[key]):
            self._send(path)
        self._reanalyse_importers(a.path, a.text)

    def _reanalyse_importers(self, path: Path, text: str | None) -> None:
        """Analyse again the buffers importing `path` whose analysis saw another text of it
        (`text` None: the buffer is closed, they read the disk now)."""
        for other, analysis in list(self.published.items()):
            if analysis.path != path and path in analysis.importer and analysis.seen.get(path) != text:
                self.schedule(other)

    def _send(self, path: Path) -> None:
        """Publish a file's diagnostics: its own analysis's and those other buffers found in it."""
        seen, shown = set(), []
        for found in self.found.values():
            for d in found.get(path, []):
                key = (d.range.start.line, d.range.start.character, d.message)
                if key not in seen:
                    seen.add(key)
                    shown.append(d)
        uri = self.uri_for(path)
        if self.get(uri) is not None or not shown:  # a file that is not open gets nothing (but a clearing)
            self._publish_params(lsp.PublishDiagnosticsParams(uri, shown))

    def closed(self, uri: str) -> None:
        key = unquote(uri)
        for table in (self.published, self.latest, self.defs):
            table.pop(key, None)
        path = path_of(uri)
        for other in self.found.pop(key, {}):
            if other != path:
                self._send(other)
        self._publish_params(lsp.PublishDiagnosticsParams(uri, []))
        self._reanalyse_importers(path, None)
