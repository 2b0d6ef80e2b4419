"""The language server's JSON-RPC layer under a broken client: raw bytes on its standard input
get the protocol's error responses (parse error, invalid params, method not found), and the
server goes on answering."""

from __future__ import annotations

import json
import subprocess
import sys


def test_malformed_json_rpc_gets_error_responses_and_the_server_goes_on():
    """Raw bytes on the server's stdin, as a broken client would send them."""
    server = subprocess.Popen(
        [sys.executable, "-m", "archdsl", "lsp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert server.stdin is not None and server.stdout is not None

    def send(body: bytes) -> None:
        server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]

    def receive() -> dict:
        length = 0
        while (line := server.stdout.readline()) not in (b"\r\n", b""):  # type: ignore[union-attr]
            name, value = line.decode().split(":", 1)
            length = int(value) if name.lower() == "content-length" else length
        return json.loads(server.stdout.read(length))  # type: ignore[union-attr]

    try:
        send(b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {')  # cut short
        send(b'{"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {"position": 3}}')
        initialize = {"processId": None, "rootUri": None, "capabilities": {}}
        send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": initialize}).encode())
        send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "archdsl/unknown", "params": {}}).encode())
        answers = [receive() for _ in range(4)]
    finally:
        server.kill()
        server.wait()
    assert answers[0]["error"]["code"] == -32700 and answers[0]["id"] is None  # parse error: no id to answer
    assert (answers[1]["id"], answers[1]["error"]["code"]) == (2, -32602)  # invalid params
    assert answers[2]["id"] == 3 and "hoverProvider" in answers[2]["result"]["capabilities"]
    assert (answers[3]["id"], answers[3]["error"]["code"]) == (4, -32601)  # method not found
