"""A real HTTP server on loopback that answers with canned bytes, so the real
anthropic SDK can parse what the translators produce (streams and bodies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic


@dataclass
class CannedReply:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"


@dataclass
class CannedServer:
    """Answers every POST with `reply`; records the JSON bodies it was sent."""

    base_url: str
    reply: CannedReply = field(default_factory=CannedReply)
    received: list[dict[str, Any]] = field(default_factory=list)

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.base_url, api_key="test-key", max_retries=0)

    def serve_json(self, body: dict[str, Any], status: int = 200) -> None:
        self.reply = CannedReply(status, "application/json", json.dumps(body).encode())

    def serve_sse(self, stream: bytes) -> None:
        self.reply = CannedReply(200, "text/event-stream", stream)


def _handler(server: CannedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            server.received.append(json.loads(self.rfile.read(length) or b"{}"))
            reply = server.reply
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@contextmanager
def running_canned_server() -> Iterator[CannedServer]:
    canned = CannedServer(base_url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(canned))
    canned.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield canned
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
