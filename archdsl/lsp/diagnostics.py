"""The compiler's errors as LSP diagnostics, for the buffer analysed and for the files it imports.

An error located in this buffer is shown there. One located in another file is shown here at
the place that brought it in: the outermost use of a template or family of that file that is in
this buffer, else this buffer's `import` line that leads to the file; and it is shown in that
file too (the server publishes it there when the file is open). The text is the CLI's: message,
hint, notes; a "did you mean" hint carries its word for the quick fix."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from ..errors import ArchError, Span, Suggestion, escaped
from ..language.syntax import Import
from .analysis import Analysis, NotAnalysed, span_path
from .positions import span_range

SOURCE = "archdsl"


def diagnostics(a: Analysis, encoding: str) -> dict[Path, list[lsp.Diagnostic]]:
    """Diagnostics per file: this buffer's, and those located in other files."""
    out: dict[Path, list[lsp.Diagnostic]] = {a.path: []}
    for e in a.errors:
        if e.span is None or e.span.line < 1:
            out[a.path].append(_diagnostic(e, lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)), e.message))
            continue
        where = span_path(e.span)
        out.setdefault(where, []).append(_diagnostic(e, span_range(e.span, encoding), e.message))
        if where != a.path:
            here = _place_here(a, e)
            if here is not None:
                message = f"in {e.span.file}:{e.span.line}:{e.span.col}: {e.message}"
                out[a.path].append(_diagnostic(e, span_range(here, encoding), message, fix=False))
    return out


def _place_here(a: Analysis, e: ArchError) -> Span | None:
    span = e.span
    assert span is not None
    uses = [u for u in e.uses if a.in_file(u)]
    if uses:
        return uses[-1]
    chain, path = set(), span_path(span)
    while path in a.importer and path not in chain:  # up the imports, to one of this buffer's
        chain.add(path)
        path = a.importer[path]
    imports = [i for i in (a.module.items if a.module else ()) if isinstance(i, Import)]
    for item in imports:
        if (a.path.parent / item.path).resolve() in chain:
            return item.span
    return imports[0].span if imports else None


def _diagnostic(e: ArchError, where: lsp.Range, message: str, fix: bool = True) -> lsp.Diagnostic:
    """`fix`: the range is the error's own, where a suggested word can replace it."""
    lines = [message] + ([f"hint: {e.hint}"] if e.hint else []) + [f"note: {n}" for n in e.notes]
    data = {"replace": e.hint.word} if fix and isinstance(e.hint, Suggestion) else None
    return lsp.Diagnostic(
        range=where,
        message=escaped_lines(lines),
        severity=lsp.DiagnosticSeverity.Information if isinstance(e, NotAnalysed) else lsp.DiagnosticSeverity.Error,
        source=SOURCE,
        data=data,
    )


def escaped_lines(lines: list[str]) -> str:
    """Lines of spec-derived text, each with its unprintable characters escaped."""
    return "\n".join(escaped(line) for line in lines)
