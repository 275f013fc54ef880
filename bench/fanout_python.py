"""Fan-out's Python cost per subscriber, without the kernel's.

Why: ``fanout.py`` measures a real server, where most of each subscriber's CPU is the
kernel's ``write()`` to a loopback socket (which also runs the receiving side's TCP).
That part is the same for every framework and noisy on a shared machine, and it hides
what a change to django_sse's own path from the hub to the server's ``send()`` is
worth. Here every stream runs in this process through ``bench/broadcastsite.py``'s
ASGI application (a ``ChannelView``, the in-memory layer), with a ``send`` that does
what uvicorn's does for a body chunk but writes to no socket.

Per run: N streams open and catch up, then ``--events`` events are fanned out straight
from the hub's feed (``_Feed.fan_out()``, as the layer's message would, without the
publish around it), each timed with ``perf_counter`` from the call until it returns;
every subscriber's ``send`` has run by then. Then the same events go out as a raw ASGI
app sends them: one ``await send(message)`` per subscriber in a loop. Reported: the
fastest event of each, in µs per subscriber, and their ratio; ``--repeat`` runs, each
in a fresh process, and their medians. Results: bench/results/fanout_python.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _harness as h

CHANNEL = "bench"
MARK = b"mark-"


class _Transport:
    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)


class _Connection:
    """One client connection: ASGI receive and send as uvicorn's look to the app."""

    def __init__(self, delivered: _Delivered) -> None:
        self.transport = _Transport()
        self.delivered = delivered
        self.started = False
        self.requested = False

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Until the client leaves, which it never does here.
        return await asyncio.get_running_loop().create_future()  # type: ignore[no-any-return]

    async def send(self, message: Mapping[str, Any]) -> None:
        if not self.started:
            self.started = True
            return
        body = message.get("body", b"")
        chunk = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
        if not message.get("more_body", False):
            chunk.append(b"0\r\n\r\n")
        self.transport.write(b"".join(chunk))
        if MARK in body:
            self.delivered.one()


class _Delivered:
    """Counts the connections an event reached; done once all ``expected`` have it."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.done: asyncio.Future[None] | None = None

    def expect(self, expected: int) -> asyncio.Future[None]:
        self.count, self.expected = 0, expected
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def one(self) -> None:
        self.count += 1
        if self.count == self.expected and self.done is not None:
            self.done.set_result(None)


def _scope(port: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/sub/",
        "raw_path": b"/sub/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"text/event-stream")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", port),
    }


async def _measure(count: int, events: int) -> dict[str, float]:
    # By the name the servers of fanout.py import it under; it configures Django.
    application = importlib.import_module("bench.broadcastsite").application
    from django_sse.broadcast import apublish
    from django_sse.broadcast._history import StoredEvent
    from django_sse.broadcast._hub import get_hub

    delivered = _Delivered()
    connections = [_Connection(delivered) for _ in range(count)]
    streams = [
        asyncio.ensure_future(application(_scope(10_000 + n), c.receive, c.send))
        for n, c in enumerate(connections)
    ]
    # Every stream caught up and waiting: one published event reaches them all.
    while True:
        reached = delivered.expect(count)
        await apublish(CHANNEL, (MARK + b"warm-up").decode())
        try:
            await asyncio.wait_for(asyncio.shield(reached), 5)
            break
        except TimeoutError:
            continue
    feed = get_hub()._feeds[CHANNEL]
    ours: list[float] = []
    for n in range(events):
        assert feed.last is not None
        stored = StoredEvent(CHANNEL, feed.last + 1, "", f"mark-{n}")
        reached = delivered.expect(count)
        started = time.perf_counter()
        feed.fan_out(stored)
        ours.append(time.perf_counter() - started)
        await reached
    raw: list[float] = []
    message = {"type": "http.response.body", "body": b"data: mark-raw\n\n", "more_body": True}
    for _ in range(events):
        delivered.expect(count)
        started = time.perf_counter()
        for connection in connections:
            await connection.send(message)
        raw.append(time.perf_counter() - started)
    for stream in streams:
        stream.cancel()
    return {"django_sse_us": min(ours) / count * 1e6, "raw_asgi_us": min(raw) / count * 1e6}


def _child(count: int, events: int) -> None:
    """One run, in this fresh process: its figures as one line of JSON."""
    try:
        run = importlib.import_module("uvloop").run  # uvicorn's loop, where installed
    except ImportError:
        run = asyncio.run
    figures = run(_measure(count, events))
    print(json.dumps(figures))
    sys.stdout.flush()
    os._exit(0)  # the streams wait for ever; the run is over


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=40, help="events per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each in a fresh process")
    parser.add_argument("--output", type=Path, default=h.RESULTS / "fanout_python.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscribers < 1 or args.events < 1 or args.repeat < 1:
        parser.error("--subscribers, --events and --repeat must be at least 1")
    if args.child:
        _child(args.subscribers, args.events)
    runs = []
    with tempfile.TemporaryDirectory(prefix="fanout-python-") as directory:
        env = {"BENCH_DB": str(Path(directory) / "history.sqlite3"), "PYTHONPATH": str(h.ROOT)}
        h.migrate("bench.broadcastsite", env)
        for _ in range(args.repeat):
            child = subprocess.run(
                [sys.executable, __file__, "--child", f"--subscribers={args.subscribers}",
                 f"--events={args.events}"],
                env={**os.environ, **env}, check=True, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            run = json.loads(child.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"  django_sse {run['django_sse_us']:.2f} µs, raw ASGI {run['raw_asgi_us']:.2f} µs"
            )
    medians = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    ratio = medians["django_sse_us"] / medians["raw_asgi_us"]
    print(
        f"{args.subscribers} subscribers, fastest of {args.events} events, medians of "
        f"{args.repeat} runs: django_sse {medians['django_sse_us']} µs per subscriber, "
        f"raw ASGI loop {medians['raw_asgi_us']} µs ({ratio:.1f}x)"
    )
    h.write_results(
        args.output,
        {
            "benchmark": "fanout_python",
            "command": h.command_line(),
            "date": h.now_iso(),
            "environment": h.environment(),
            "subscribers": args.subscribers,
            "events": args.events,
            "medians": medians,
            "runs": runs,
        },
    )
    print(f"wrote {h.display_path(args.output)}")
    return 0


if __name__ == "__main__":
    h.run(main)
