"""Fan-out latency: from publish to receipt, for every subscriber of one channel.

Why: broadcast must stay fast as subscribers grow. The design target is at least 5x
faster than django-eventstream for the last of 5,000 subscribers, and a p99 under
200 ms at 10,000 subscribers.

Each scenario starts its server process(es) afresh for each subscriber count:

* ``django_sse``: one uvicorn process, ``bench/broadcastsite.py``: a ChannelView,
  the in-memory channel layer, history in a migrated sqlite file.
* ``django_sse_redis``: two uvicorn processes sharing channels_redis (127.0.0.1:6379)
  and the history file; subscribers are split between them and every event is
  published through the first, so half the subscribers are a process away.
* ``raw_asgi``: ``bench/rawasgi.py``, no Django: the publishing request itself awaits
  every subscriber's ASGI ``send`` in turn. No framework can fan out faster on this
  server; it is the floor the other rows are read against.
* ``eventstream`` and ``eventstream_redis``: the same with django-eventstream
  (``bench/eventstreamsite.py``), in its default configuration and with its Redis
  pub/sub. Skipped, with a note, if django-eventstream is not installed.

The client is this process: N raw HTTP connections, each reading one stream, polled
with epoll; reading only timestamps bytes and looks for the event's marker. First
warm-up events are published until every subscriber has received one. Then
``--events`` events are published one at a time: the client asks ``/pub/``, which
takes the monotonic time just before publishing and sends it back, and the client
records, per subscriber, the monotonic time it read the marker. Latency = receipt -
publish start (CLOCK_MONOTONIC is one clock for all processes of the machine). The
client's own reading is part of every figure, for ours and the peer alike.

Reported per scenario and count: the medians over events of each event's p50, p99 and
max latency across subscribers, in ms, and subscribers that missed an event (must be
0). Results: bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import select
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

WAIT_TIMEOUT = 60.0  # seconds for every subscriber to get one event
WARM_UP_TIMEOUT = 300.0  # django-eventstream starts a thread per subscriber: slow
RECV_SIZE = 1 << 16


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    processes: int
    redis: bool
    description: str


SCENARIOS = (
    Scenario("django_sse", "bench.broadcastsite:application", 1, False,
             "django_sse ChannelView, in-memory layer, 1 process"),
    Scenario("eventstream", "bench.eventstreamsite:application", 1, False,
             "django-eventstream, 1 process"),
    Scenario("raw_asgi", "bench.rawasgi:app", 1, False,
             "raw ASGI app, no Django: one send per subscriber in the publishing request"),
    Scenario("django_sse_redis", "bench.broadcastsite:application", 2, True,
             "django_sse ChannelView, channels_redis, 2 processes"),
    Scenario("eventstream_redis", "bench.eventstreamsite:application", 2, True,
             "django-eventstream with its Redis pub/sub, 2 processes"),
)  # fmt: skip
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    h.raise_open_file_limit(max(args.subscribers) + 256)
    chosen = [s for s in SCENARIOS if s.name in args.scenarios]
    if not importlib.util.find_spec("django_eventstream"):
        print("django-eventstream is not installed (pip install django-eventstream): skipped")
        chosen = [s for s in chosen if not s.name.startswith("eventstream")]
    print(f"fanout: {args.events} events, subscribers {args.subscribers}")
    results: dict[str, Any] = {
        "benchmark": "fanout",
        "command": h.command_line(),
        "date": h.now_iso(),
        "environment": h.environment(),
        "events": args.events,
        "scenarios": {},
    }
    for scenario in chosen:
        rows = results["scenarios"].setdefault(
            scenario.name, {"description": scenario.description, "runs": {}}
        )
        for count in args.subscribers:
            if scenario.name.startswith("eventstream") and count > args.peer_max:
                continue
            run = measure(scenario, count, args.events)
            rows["runs"][str(count)] = run
            print(f"  {scenario.name:<18} {count:>6} subscribers  {summary(run)}")
    print_table(results)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1000,5000,10000",
                        help="comma-separated subscriber counts")  # fmt: skip
    parser.add_argument("--events", type=int, default=10, help="timed events per count")
    parser.add_argument("--peer-max", type=int, default=5000,
                        help="largest count measured for django-eventstream")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                        help=f"comma-separated subset of {','.join(SCENARIO_NAMES)}")  # fmt: skip
    parser.add_argument("--output", type=Path, default=h.RESULTS / "fanout.json")
    args = parser.parse_args()
    args.subscribers = [int(n) for n in args.subscribers.split(",")]
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if set(args.scenarios) - set(SCENARIO_NAMES) or not args.scenarios:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIO_NAMES)}")
    if args.events < 1 or min(args.subscribers) < 1:
        parser.error("--events and --subscribers must be at least 1")
    args.output = args.output.resolve()
    return args


def measure(scenario: Scenario, count: int, events: int) -> dict[str, Any]:
    """Fresh servers, ``count`` subscribers, warm-up, then ``events`` timed events."""
    with tempfile.TemporaryDirectory(prefix="fanout-") as directory:
        env = {"BENCH_DB": str(Path(directory) / "history.sqlite3")}
        if scenario.redis:
            env["BENCH_REDIS_PREFIX"] = f"fanout-{uuid.uuid4().hex[:8]}"
        if scenario.app.startswith("bench.broadcastsite"):
            h.migrate("bench.broadcastsite", env)
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(h.Server("uvicorn", scenario.app, env))
                for _ in range(scenario.processes)
            ]
            ports = [server.port for server in servers]
            subscribers = stack.enter_context(Subscribers(ports, count))
            warm_up = subscribers.warm_up(ports[0])
            cpu_before = [h.sample(server.pid).cpu_seconds for server in servers]
            client_cpu_before = time.process_time()
            per_event = [subscribers.deliver(ports[0], f"mark-{n:06d}") for n in range(events)]
            server_cpu = sum(
                h.sample(server.pid).cpu_seconds - before
                for server, before in zip(servers, cpu_before, strict=True)
            )
            client_cpu = time.process_time() - client_cpu_before
            tracebacks = sum(server.tracebacks() for server in servers)
    return {
        "subscribers": count,
        "warm_up_seconds": round(warm_up, 2),
        "p50_ms": median(per_event, "p50_ms"),
        "p99_ms": median(per_event, "p99_ms"),
        "max_ms": median(per_event, "max_ms"),
        "missed": sum(event["missed"] for event in per_event),
        # CPU per event, all server processes together, and this client's.
        "server_cpu_ms": round(server_cpu / events * 1000, 1),
        "client_cpu_ms": round(client_cpu / events * 1000, 1),
        "server_tracebacks": tracebacks,
        "per_event": per_event,
    }


class Subscribers:
    """``count`` subscriber connections spread over the servers, read through epoll."""

    def __init__(self, ports: list[int], count: int) -> None:
        self.ports = ports
        self.count = count
        self.sockets: dict[int, socket.socket] = {}
        self.poller = select.epoll()

    def __enter__(self) -> Subscribers:
        for n in range(self.count):
            sock = socket.create_connection((h.HOST, self.ports[n % len(self.ports)]), 30)
            sock.sendall(b"GET /sub/ HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
            sock.setblocking(False)
            self.sockets[sock.fileno()] = sock
            self.poller.register(sock.fileno(), select.EPOLLIN)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.poller.close()
        for sock in self.sockets.values():
            sock.close()

    def warm_up(self, port: int) -> float:
        """Publish until every subscriber has received one event: all are subscribed."""
        started = time.monotonic()
        got: dict[int, float] = {}
        n = 0
        while len(got) < self.count:
            if time.monotonic() - started > WARM_UP_TIMEOUT:
                raise TimeoutError(f"{self.count - len(got)} subscribers never got an event")
            n += 1
            self._read_until(b"warm-", got, publish=Publish(port, f"warm-{n}"), timeout=1.0)
        return time.monotonic() - started

    def deliver(self, port: int, marker: str) -> dict[str, Any]:
        """Publish one event; the latency of each subscriber's receipt of it."""
        publish = Publish(port, marker)
        got: dict[int, float] = {}
        self._read_until(marker.encode(), got, publish, WAIT_TIMEOUT)
        started = publish.started()
        latencies = sorted((received - started) * 1000 for received in got.values())
        return {
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
            "max_ms": round(latencies[-1], 2),
            "missed": self.count - len(got),
        }

    def _read_until(
        self, marker: bytes, got: dict[int, float], publish: Publish, timeout: float
    ) -> None:
        """Read every socket that has data; note when each first shows ``marker``.

        The publish request shares the loop, so nothing waits while it is answered.
        """
        self.poller.register(publish.fileno(), select.EPOLLIN)
        tails = dict.fromkeys(self.sockets, b"")
        deadline = time.monotonic() + timeout
        try:
            while (len(got) < self.count or not publish.done) and time.monotonic() < deadline:
                for fd, _ in self.poller.poll(0.2):
                    now = time.monotonic()
                    if fd == publish.fileno():
                        publish.read()
                        continue
                    data = self.sockets[fd].recv(RECV_SIZE)
                    if not data:
                        raise ConnectionError("a server closed a subscriber's connection")
                    if fd in got:
                        continue
                    window = tails[fd] + data
                    if marker in window:
                        got[fd] = now
                    else:
                        tails[fd] = window[-len(marker) :]
        finally:
            self.poller.unregister(publish.fileno())
            publish.close()


class Publish:
    """One non-blocking ``GET /pub/?data=...``; the server answers with its start time."""

    def __init__(self, port: int, data: str) -> None:
        self.sock = socket.create_connection((h.HOST, port), 30)
        self.sock.sendall(
            f"GET /pub/?data={data} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
        )
        self.sock.setblocking(False)
        self.response = b""
        self.done = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            data = self.sock.recv(RECV_SIZE)
            self.response += data
            self.done = not data

    def started(self) -> float:
        head, _, body = self.response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"publish failed: {self.response[:300]!r}")
        # Content-Length or chunked, the body holds one JSON object.
        return float(json.loads(body[body.index(b"{") : body.rindex(b"}") + 1])["started"])

    def close(self) -> None:
        self.sock.close()


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(row[key] for row in rows)), 2)


def summary(run: dict[str, Any]) -> str:
    return (
        f"p50 {run['p50_ms']:>8.1f} ms  p99 {run['p99_ms']:>8.1f} ms  "
        f"max {run['max_ms']:>8.1f} ms  missed {run['missed']}  "
        f"cpu/event server {run['server_cpu_ms']} ms, client {run['client_cpu_ms']} ms"
    )


def print_table(results: dict[str, Any]) -> None:
    print("\nmedians over events (ms)")
    print(f"{'scenario':<18} {'subscribers':>11} {'p50':>8} {'p99':>8} {'max':>8} {'missed':>7}")
    for name, scenario in results["scenarios"].items():
        for count, run in scenario["runs"].items():
            print(
                f"{name:<18} {count:>11} {run['p50_ms']:>8.1f} {run['p99_ms']:>8.1f} "
                f"{run['max_ms']:>8.1f} {run['missed']:>7}"
            )
    runs = {name: scenario["runs"] for name, scenario in results["scenarios"].items()}
    peer = runs.get("eventstream", {})
    for name in ("django_sse", "raw_asgi"):
        for count in sorted(set(runs.get(name, {})) & set(peer), key=int):
            ratio = peer[count]["max_ms"] / runs[name][count]["max_ms"]
            print(f"last subscriber at {count}: {name} {ratio:.1f}x faster than django-eventstream")


if __name__ == "__main__":
    sys.exit(main())
