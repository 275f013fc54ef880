"""A process holding subscriber connections for pushpin_fanout.py.

``python bench/_subscribers.py HOST PORT PATH COUNT CONCURRENCY``. One process may hold
only as many sockets as RLIMIT_NOFILE allows (20,000 here), so the benchmark splits its
subscribers over several of these. Each opens COUNT connections (at most CONCURRENCY
waiting for their response at a time), reads all of them with epoll and notes, per
connection and with CLOCK_MONOTONIC (one clock for every process of the machine), when
each event the benchmark published arrived. Events are recognised by their data:
``warm-N`` (warm-up), ``mark-N`` (a timed event) and ``b-N`` (the burst, which must
arrive complete and in order).

It talks to the benchmark with one JSON object per line: on stdin the commands below,
on stdout first ``{"ready": ...}`` once every connection has its response headers (or
has failed; one answered with an error is opened again, at most 3 tries in all), then
one answer per command. Bodies are read through their chunked transfer encoding. It
exits when stdin closes, so it never outlives the benchmark.

* ``{"cmd": "warm", "timeout": S}``: wait until every open connection has had a warm-up
  event; answers how many have.
* ``{"cmd": "mark", "n": N, "timeout": S}``: wait until every connection has event
  ``mark-N``; answers the receipt times (0 for none).
* ``{"cmd": "burst", "total": T, "timeout": S, "stall": S2}``: wait until every
  connection has had ``b-0`` .. ``b-(T-1)``, or until none has arrived for S2 seconds;
  answers how many arrived, how many came late (after a later one: out of order or
  repeated), which were missing (a sample), and when the last arrived.
* ``{"cmd": "close"}``: close every connection and exit.
"""

from __future__ import annotations

import array
import json
import os
import re
import resource
import select
import socket
import sys
import time
from typing import Any

RECV_SIZE = 1 << 16
OPEN_TIMEOUT = 120.0  # for all connections to get their response
OPEN_ATTEMPTS = 3  # a connection refused with an error is tried again, as EventSource does
CHECK_INTERVAL = 0.05  # seconds between checks of a command's condition
# The data of a published event, in django_sse's form (data: mark-1) and in
# django-eventstream's, which sends it as JSON (data: "mark-1").
EVENT = re.compile(rb'data: "?(warm|mark|b)-(\d+)')
TAIL_MAX = 256  # bytes kept of an incomplete last line


class Subscribers:
    def __init__(self, host: str, port: int, path: str, count: int, concurrency: int) -> None:
        self.host, self.port, self.count, self.concurrency = host, port, count, concurrency
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        self.poller = select.epoll()
        self.sockets: list[socket.socket | None] = []
        self.index: dict[int, int] = {}  # fd -> connection index
        self.head: list[bytes] = []  # response bytes until the end of the headers
        self.streaming: list[bool] = []  # headers and a first body byte received
        self.tail: list[bytes] = []
        # Chunked transfer encoding (uvicorn's and condure's): an event may be split
        # over two chunks, so the body is taken out of its chunks before it is read.
        self.chunked: list[bool] = []
        self.chunk_left: list[int] = []  # bytes of the current chunk still to come
        self.chunk_skip: list[int] = []  # bytes of the CRLF after a chunk still to come
        self.chunk_line: list[bytes] = []  # an incomplete chunk-size line
        self.warm = bytearray(count)
        # Burst events: one past the highest number seen, how many arrived in order
        # (each higher than the one before), how many late, when the last one came.
        self.next_b = array.array("q", bytes(8 * count))
        self.b_received = array.array("q", bytes(8 * count))
        self.b_late = array.array("q", bytes(8 * count))
        self.b_last = array.array("d", bytes(8 * count))
        self.b_missing: list[int] = []  # a sample of the numbers skipped
        self.b_progress = 0.0  # when any burst event last arrived
        self.marks: dict[int, array.array[float]] = {}
        self.waiting = 0  # opened, response not yet there
        self.attempts = array.array("q", bytes(8 * count))
        self.to_retry: list[int] = []
        self.retried = 0
        self.failures: list[str] = []
        self.closed_by_server = 0
        self.commands = b""

    # -- opening -----------------------------------------------------------------------

    def open_all(self) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + OPEN_TIMEOUT
        while len(self.sockets) < self.count or self.waiting or self.to_retry:
            while self.waiting < self.concurrency and (
                self.to_retry or len(self.sockets) < self.count
            ):
                if self.to_retry:
                    self.retried += 1
                    self._open_one(self.to_retry.pop())
                else:
                    self._open_one()
            self._poll(0.1)
            if time.monotonic() > deadline:
                self.failures.append(f"{self.waiting} responses missing after {OPEN_TIMEOUT} s")
                break
        return {
            "ready": sum(self.streaming),
            "retried": self.retried,
            "failures": self.failures[:5],
            "seconds": round(time.monotonic() - started, 3),
        }

    def _open_one(self, i: int | None = None) -> None:
        """Open connection ``i`` again, or the next one."""
        if i is None:
            i = len(self.sockets)
            self.sockets.append(None)
            self._grow()
        self.attempts[i] += 1
        try:
            sock = socket.create_connection((self.host, self.port), timeout=30)
            sock.sendall(self.request)
        except OSError as error:
            self.failures.append(f"connect: {error}")
            return
        sock.setblocking(False)
        self.sockets[i] = sock
        self.index[sock.fileno()] = i
        self.poller.register(sock.fileno(), select.EPOLLIN)
        self.waiting += 1

    def _grow(self) -> None:
        self.head.append(b"")
        self.streaming.append(False)
        self.tail.append(b"")
        self.chunked.append(False)
        self.chunk_left.append(0)
        self.chunk_skip.append(0)
        self.chunk_line.append(b"")

    # -- reading -----------------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        for fd, _ in self.poller.poll(timeout):
            now = time.monotonic()
            if fd == 0:
                self._read_commands()
                continue
            i = self.index[fd]
            sock = self.sockets[i]
            assert sock is not None
            try:
                data = sock.recv(RECV_SIZE)
            except OSError as error:
                data = b""
                self.failures.append(f"recv: {error}")
            if not data:
                self._drop(i, fd)
                continue
            if not self.streaming[i]:
                data = self._response_start(i, data)
            if data and self.chunked[i]:
                data = self._dechunk(i, data)
            if data:
                self._consume(i, data, now)

    def _response_start(self, i: int, data: bytes) -> bytes:
        """Collect the headers; the body bytes after them once the stream is open."""
        head = self.head[i] + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head[i] = head
            return b""
        self.head[i] = b""
        if not head.startswith(b"HTTP/1.1 200"):
            if len(self.failures) < 20:
                self.failures.append(head[:300].decode(errors="replace"))
            sock = self.sockets[i]
            assert sock is not None
            self._drop(i, sock.fileno(), by_server=False)
            if self.attempts[i] < OPEN_ATTEMPTS:
                self.to_retry.append(i)
            return b""
        self.streaming[i] = True
        self.waiting -= 1
        self.chunked[i] = b"transfer-encoding: chunked" in head[:end].lower()
        return head[end + 4 :]

    def _dechunk(self, i: int, data: bytes) -> bytes:
        parts = []
        pos, size = 0, len(data)
        while pos < size:
            left = self.chunk_left[i]
            if left:
                take = min(left, size - pos)
                parts.append(data[pos : pos + take])
                pos += take
                self.chunk_left[i] = left - take
                if take == left:
                    self.chunk_skip[i] = 2
                continue
            skip = self.chunk_skip[i]
            if skip:
                take = min(skip, size - pos)
                pos += take
                self.chunk_skip[i] = skip - take
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self.chunk_line[i] += data[pos:]
                break
            line = self.chunk_line[i] + data[pos:end]
            self.chunk_line[i] = b""
            pos = end + 1
            length = int(line.split(b";")[0].strip() or b"0", 16)
            if length == 0:  # the last chunk: the response ended
                break
            self.chunk_left[i] = length
        return b"".join(parts)

    def _consume(self, i: int, data: bytes, now: float) -> None:
        buffer = self.tail[i] + data if self.tail[i] else data
        cut = buffer.rfind(b"\n") + 1
        self.tail[i] = buffer[cut:][-TAIL_MAX:]
        for kind, number in EVENT.findall(buffer, 0, cut):
            n = int(number)
            if kind == b"b":
                self.b_progress = now
                if n >= self.next_b[i]:
                    if n > self.next_b[i] and len(self.b_missing) < 20:
                        self.b_missing.extend(range(self.next_b[i], n)[:5])
                    self.next_b[i] = n + 1
                    self.b_received[i] += 1
                    self.b_last[i] = now
                else:
                    self.b_late[i] += 1
            elif kind == b"mark":
                times = self.marks.get(n)
                if times is None:
                    times = self.marks[n] = array.array("d", bytes(8 * self.count))
                if not times[i]:
                    times[i] = now
            else:
                self.warm[i] = 1

    def _drop(self, i: int, fd: int, by_server: bool = True) -> None:
        self.poller.unregister(fd)
        sock = self.sockets[i]
        if sock is not None:
            sock.close()
        self.sockets[i] = None
        if not self.streaming[i]:
            self.waiting -= 1
            if by_server:
                self.failures.append("closed before its response")
        elif by_server:
            self.closed_by_server += 1

    # -- commands ----------------------------------------------------------------------

    def serve(self) -> None:
        os.set_blocking(0, False)
        self.poller.register(0, select.EPOLLIN)
        while True:
            line = self._next_command()
            if line is None:
                self._poll(1.0)
                continue
            command = json.loads(line)
            if command["cmd"] == "close":
                self.close()
                reply({"closed": True})
                return
            reply(self._wait_for(command))

    def _next_command(self) -> bytes | None:
        line, newline, rest = self.commands.partition(b"\n")
        if not newline:
            return None
        self.commands = rest
        return line

    def _read_commands(self) -> None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return
        if not data:  # the benchmark is gone
            self.close()
            sys.exit(0)
        self.commands += data

    def _wait_for(self, command: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + float(command.get("timeout", 60))
        open_ = [i for i, sock in enumerate(self.sockets) if sock is not None]
        while True:
            answer = self._check(command, open_)
            if answer["done"] or time.monotonic() > deadline:
                if command["cmd"] == "mark":  # the times, complete or not
                    times = self.marks.get(int(command["n"]))
                    answer["times"] = [times[i] if times else 0.0 for i in open_]
                answer["closed_by_server"] = self.closed_by_server
                answer["open"] = sum(sock is not None for sock in self.sockets)
                return answer
            end = time.monotonic() + CHECK_INTERVAL
            while time.monotonic() < end:
                self._poll(max(0.0, end - time.monotonic()))

    def _check(self, command: dict[str, Any], open_: list[int]) -> dict[str, Any]:
        cmd = command["cmd"]
        if cmd == "warm":
            warm = sum(self.warm[i] for i in open_)
            return {"done": warm == len(open_), "warm": warm}
        if cmd == "mark":
            times = self.marks.get(int(command["n"]))
            got = 0 if times is None else sum(1 for i in open_ if times[i])
            return {"done": got == len(open_), "got": got}
        if cmd == "burst":
            total = int(command["total"])
            complete = sum(1 for i in open_ if self.b_received[i] >= total)
            stalled = time.monotonic() - self.b_progress > float(command["stall"])
            return {
                "done": complete == len(open_) or stalled,
                "complete": complete,
                "received": sum(self.b_received[i] for i in open_),
                "late": sum(self.b_late[i] for i in open_),
                "missing_sample": sorted(set(self.b_missing))[:20],
                "last": max((self.b_last[i] for i in open_), default=0.0),
            }
        raise ValueError(f"unknown command {cmd!r}")

    def close(self) -> None:
        for sock in self.sockets:
            if sock is not None:
                sock.close()
        self.sockets = [None] * len(self.sockets)


def reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def main() -> None:
    host, port, path, count, concurrency = sys.argv[1:6]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subscribers = Subscribers(host, int(port), path, int(count), int(concurrency))
    reply(subscribers.open_all())
    subscribers.serve()


if __name__ == "__main__":
    main()
