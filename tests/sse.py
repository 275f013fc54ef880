"""Reading event streams in tests: over a raw socket, and from in-process responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from urllib.parse import urlsplit

from django_sse.protocol import EventParser, MessageEvent

READ_TIMEOUT = 10.0


class RawStream:
    """An HTTP/1.1 request over a raw socket, so a test sees bytes as they arrive."""

    def __init__(self, url: str, method: str = "GET", headers: dict[str, str] | None = None):
        self.url = urlsplit(url)
        self.method = method
        self.headers = headers or {}
        self.parser = EventParser()
        self.status = 0
        self.response_headers: dict[str, str] = {}
        self.raw = bytearray()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._chunked = False
        self.truncated = False

    async def __aenter__(self) -> RawStream:
        host, port = self.url.hostname or "127.0.0.1", self.url.port or 80
        self._reader, self._writer = await asyncio.open_connection(host, port)
        target = self.url.path + (f"?{self.url.query}" if self.url.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in filter(None, header_lines):
            name, _, value = line.partition(":")
            self.response_headers[name.strip().lower()] = value.strip()
        self._chunked = self.response_headers.get("transfer-encoding") == "chunked"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def read_body_chunk(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        assert self._reader is not None
        if not self._chunked:
            return await asyncio.wait_for(self._reader.read(65536), READ_TIMEOUT)
        try:
            size_line = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), READ_TIMEOUT)
            size = int(size_line.split(b";")[0], 16)
            data = await asyncio.wait_for(self._reader.readexactly(size + 2), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            self.truncated = True  # the server closed without the final empty chunk
            return b""
        return data[:-2]

    async def next_events(self) -> list[MessageEvent]:
        """Read until at least one event is complete; [] when the stream ends first."""
        while True:
            chunk = await self.read_body_chunk()
            if not chunk:
                return []
            self.raw += chunk
            events = self.parser.feed(chunk)
            if events:
                return events

    async def read_until(self, marker: bytes) -> None:
        """Read until the raw body contains ``marker`` (e.g. a keep-alive comment)."""
        while marker not in self.raw:
            chunk = await self.read_body_chunk()
            if not chunk:
                raise AssertionError(f"stream ended before {marker!r}: {bytes(self.raw)!r}")
            self.raw += chunk
            self.parser.feed(chunk)

    async def read_all(self) -> list[MessageEvent]:
        events: list[MessageEvent] = []
        while True:
            chunk = await self.read_body_chunk()
            if not chunk:
                return events
            self.raw += chunk
            events += self.parser.feed(chunk)


async def collect(content: AsyncIterable[bytes]) -> tuple[bytes, list[MessageEvent]]:
    """Drain an in-process streaming response: its raw bytes and parsed events."""
    raw = b""
    async for chunk in content:
        raw += chunk
    return raw, EventParser().feed(raw)
