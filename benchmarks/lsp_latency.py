"""The language server's response times on a warm server, through a real LSP client over stdio:
from `didChange` to the `publishDiagnostics` it causes, and a hover's round trip, on
`specs/mnv4_hybrid_l.arch` (our largest spec). Goals: diagnostics median <= 50 ms, hover
median <= 20 ms.

Each change edits a block's channels (alternating 192 and 200 in one `extra_dw` line, so every
change is a real re-analysis of a network that resolves); each hover is on a block line of the
buffer as last changed. Warm-up rounds are not counted.

    python benchmarks/lsp_latency.py [--spec specs/mnv4_hybrid_l.arch] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, client_capabilities

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 5


async def measure(spec: Path, rounds: int) -> tuple[list[float], list[float]]:
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "archdsl", "lsp"]).start()
    await client.initialize_session(lsp.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
    uri, text = spec.resolve().as_uri(), spec.read_text()

    async def published() -> None:  # the client records each publishDiagnostics it receives
        while uri not in client.diagnostics:
            await asyncio.sleep(0)

    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "archdsl", 1, text)))
    await asyncio.wait_for(published(), 30)
    line = next(i for i, row in enumerate(text.splitlines()) if row.strip() == "extra_dw k3/3 e4 c192 x3")
    diagnostics, hovers = [], []
    for version in range(2, rounds + WARMUP + 2):
        edited = text.replace("extra_dw k3/3 e4 c192 x3", f"extra_dw k3/3 e4 c{192 if version % 2 else 200} x3")
        client.diagnostics.pop(uri)
        start = time.perf_counter()
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [lsp.TextDocumentContentChangeWholeDocument(edited)],
            )
        )
        await asyncio.wait_for(published(), 30)
        changed = time.perf_counter() - start
        start = time.perf_counter()
        answer = await client.text_document_hover_async(
            lsp.HoverParams(lsp.TextDocumentIdentifier(uri), lsp.Position(line, 6))
        )
        hovered = time.perf_counter() - start
        assert answer is not None and "MACs" in answer.contents.value  # type: ignore[union-attr]
        if version >= WARMUP + 2:
            diagnostics.append(changed)
            hovers.append(hovered)
    await client.shutdown_session()
    await client.stop()
    return diagnostics, hovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs/mnv4_hybrid_l.arch")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    diagnostics, hovers = asyncio.run(measure(args.spec, args.rounds))
    for name, times, goal in (("didChange -> diagnostics", diagnostics, 0.050), ("hover", hovers, 0.020)):
        median = statistics.median(times)
        print(
            f"{name:26} median {median * 1e3:6.1f} ms  min {min(times) * 1e3:6.1f} ms  "
            f"max {max(times) * 1e3:6.1f} ms  goal <= {goal * 1e3:.0f} ms: {'met' if median <= goal else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
