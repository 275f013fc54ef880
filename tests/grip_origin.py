"""A scriptable GRIP origin on a free loopback port: stdlib http.server in a thread.

It records every request (with its headers) and answers with whatever ``respond`` returns,
so a test decides the GRIP instructions (``Grip-Hold``, ``Grip-Channel``, ``Grip-Link``, ...)
request by request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class OriginRequest:
    method: str
    path: str
    headers: Message
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def hold_stream(channel: str = "test", body: bytes = b"", **extra: str) -> Reply:
    """A stream hold on ``channel``: the initial ``body`` goes out at once, then the
    connection stays open for what is published. No Content-Length: with one, Pushpin
    sends the response as complete and closes."""
    headers = {
        "Content-Type": "text/event-stream",
        "Grip-Hold": "stream",
        "Grip-Channel": channel,
        **extra,
    }
    return Reply(200, headers, body)


class GripOrigin:
    """``respond(request) -> Reply``; ``requests`` lists every request seen, in order."""

    def __init__(self, respond: Callable[[OriginRequest], Reply] | None = None) -> None:
        self.respond = respond or (lambda request: hold_stream(body=b": held\n\n"))
        self.requests: list[OriginRequest] = []
        self._changed = threading.Condition()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = OriginRequest(
                    self.command, self.path, self.headers, self.rfile.read(length)
                )
                with origin._changed:
                    origin.requests.append(request)
                    origin._changed.notify_all()
                reply = origin.respond(request)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                # No Content-Length on a hold (see hold_stream): the body ends with the
                # connection, so close it.
                if "Grip-Hold" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stopped = False

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[OriginRequest]:
        """Block until at least ``count`` requests arrived; all of them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(
                    f"origin saw {len(self.requests)} requests, not {count}, in {timeout} s"
                )
            return list(self.requests)

    def start(self) -> GripOrigin:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (a later connection is refused); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> GripOrigin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
