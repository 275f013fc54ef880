"""Single-stream throughput: how fast one SSEView stream can deliver small events.

Why: the engine runs a pump task, a bounded buffer and a response iterator between the
view's generator and the server. That must not cost much against writing to the
server directly; the design target is at least 0.85x a raw ASGI app.

Each variant streams 200,000 (``--events``) events, all byte-identical on the wire:
an opening ``:`` comment line, then ``Event(data=str(i), id=str(i)).encode()``, i.e.
``data: 17\\nid: 17\\n\\n`` (24 bytes on average):

* ``sse_view``: an SSEView yielding ``Event`` objects, encoded by the engine as it goes
  (what an application does; this is "ours").
* ``sse_view_bytes``: the same SSEView yielding the pre-encoded bytes, which separates
  the engine's cost from encoding.
* ``sse_view_metrics_off``: ``sse_view`` in a server with ``METRICS`` off. The others
  count Prometheus metrics (issue 18: within 3 % of this one).
* ``bare_streaming``: a bare Django StreamingHttpResponse over an async generator
  yielding the pre-encoded bytes.
* ``raw_asgi``: an ASGI app without Django, one ``http.response.body`` per event, the
  bytes pre-encoded before timing starts. The target is measured against this.
* ``raw_asgi_batched``: the same app sending 64 events per message, which is what the
  engine does with a fast source (events ready together leave in one write). It is the
  ceiling for ours, so ``sse_view_bytes / raw_asgi_batched`` is the engine's own cost.

Every variant has its own server process (uvicorn, or ``--server daphne``), all started
together; repeats go round the variants so that drift hits them alike, after one
untimed warm-up run each. The client is a blocking socket in this process: the clock
runs from sending the request to receiving the end of the chunked body, and only
collects bytes. Afterwards (untimed) the body is de-chunked and parsed with
``django_sse.protocol.EventParser``; a run counts only if it has exactly N events with
the expected ids and data, and all variants' bodies must be identical.

Reported: events/s and MB/s (10^6 bytes of SSE body, without chunk framing), medians
over ``--repeat`` runs, and the ratios to raw ASGI. The server's and the client's CPU
time per run show which side was the bottleneck. Results: bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _harness as h

from django_sse.protocol import EventParser

DJANGO_APP = "bench.benchsite:application"
RAW_APP = "bench.rawasgi:app"
RUN_TIMEOUT = 300.0  # seconds for one run, whatever the server
RECV_SIZE = 1 << 18
RCVBUF = 1 << 22
CHUNKED_END = b"\r\n0\r\n\r\n"  # the last chunk's CRLF, then the zero-size chunk
RATIO_TARGET = 0.85
# Counting metrics may cost at most 3 % of the events/s.
METRICS_TARGET = 0.97


@dataclass(frozen=True)
class Variant:
    name: str
    app: str
    path: str
    description: str
    # The server's environment on top of this process's.
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = (
    Variant("sse_view", DJANGO_APP, "/sse/flood/", "django_sse SSEView, Event objects"),
    Variant("sse_view_bytes", DJANGO_APP, "/sse/flood-bytes/", "django_sse SSEView, bytes"),
    Variant(
        "sse_view_metrics_off",
        DJANGO_APP,
        "/sse/flood/",
        "django_sse SSEView, metrics off",
        env=(("BENCH_METRICS", "off"),),
    ),
    Variant("bare_streaming", DJANGO_APP, "/bare/flood/", "bare StreamingHttpResponse, bytes"),
    Variant("raw_asgi", RAW_APP, "/flood/", "raw ASGI app, one send per event"),
    Variant("raw_asgi_batched", RAW_APP, "/flood-batched/", "raw ASGI app, 64 events per send"),
)
VARIANT_NAMES = [variant.name for variant in VARIANTS]


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    h.raise_open_file_limit(256)
    chosen = [variant for variant in VARIANTS if variant.name in args.variants]
    print(
        f"throughput: {args.events} events per run, {args.repeat} repeat(s), "
        f"server {args.server}, variants {', '.join(v.name for v in chosen)}"
    )
    runs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in chosen}
    bodies: dict[str, str] = {}
    with contextlib.ExitStack() as stack:  # stops every server started, whatever happens
        servers = {
            v.name: stack.enter_context(h.Server(args.server, v.app, dict(v.env))) for v in chosen
        }
        for variant in chosen:
            warm_up = stream_once(servers[variant.name], variant, args.events)
            bodies[variant.name] = warm_up["body_sha256"]
            print(f"  warm-up {variant.name:<15} {summary(warm_up)}")
        for repeat in range(1, args.repeat + 1):
            for variant in chosen:
                run = stream_once(servers[variant.name], variant, args.events)
                runs[variant.name].append(run)
                print(f"  run {repeat}/{args.repeat} {variant.name:<15} {summary(run)}")
        tracebacks = {name: server.tracebacks() for name, server in servers.items()}
        errors = {name: server.errors() for name, server in servers.items()}

    if len(set(bodies.values())) != 1:
        raise AssertionError(f"variants sent different bodies: {bodies}")
    results = build_results(args, chosen, runs, tracebacks, errors)
    print_table(results)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per stream")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per variant (median)")
    parser.add_argument("--server", choices=h.SERVERS, default="uvicorn")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help=f"comma-separated subset of {','.join(VARIANT_NAMES)} (default: all)",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    args = parser.parse_args()
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be at least 1")
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    if set(args.variants) - set(VARIANT_NAMES) or not args.variants:
        parser.error(f"--variants: choose from {', '.join(VARIANT_NAMES)}")
    if args.output is None:
        args.output = h.default_output("throughput", args.server)
    args.output = args.output.resolve()
    return args


def stream_once(server: h.Server, variant: Variant, events: int) -> dict[str, Any]:
    """Time one stream of ``events`` events, then check what arrived (untimed)."""
    target = f"{variant.path}?n={events}"
    cpu_before = h.sample(server.pid).cpu_seconds
    client_cpu_before = time.process_time()
    seconds, received = receive_stream(server.port, target)
    client_cpu = time.process_time() - client_cpu_before
    server_cpu = h.sample(server.pid).cpu_seconds - cpu_before

    response = decode_http(received)
    check_events(response.body, events)
    return {
        "events": events,
        "seconds": round(seconds, 4),
        "events_per_second": round(events / seconds, 1),
        "mb_per_second": round(len(response.body) / seconds / 1e6, 3),
        "body_bytes": len(response.body),
        "wire_bytes": len(received),
        "http_chunks": response.chunks,
        "server_cpu_seconds": round(server_cpu, 3),
        "client_cpu_seconds": round(client_cpu, 3),
        "body_sha256": hashlib.sha256(response.body).hexdigest(),
    }


def receive_stream(port: int, target: str) -> tuple[float, bytes]:
    """Send one GET and collect the raw response until the chunked body ends.

    The timed loop only receives and looks at the last bytes: no parsing.
    """
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {h.HOST}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    pieces: list[bytes] = []
    tail = b""
    with socket.create_connection((h.HOST, port), timeout=30.0) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        started = time.perf_counter()
        deadline = started + RUN_TIMEOUT
        sock.sendall(request)
        while True:  # bounded: every recv times out after 30 s, and by the deadline
            piece = sock.recv(RECV_SIZE)
            if not piece:  # the server closed the connection
                break
            pieces.append(piece)
            tail = (tail + piece[-len(CHUNKED_END) :])[-len(CHUNKED_END) :]
            if tail.endswith(CHUNKED_END):
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{target}: no end of stream within {RUN_TIMEOUT:.0f} s")
        seconds = time.perf_counter() - started
    return seconds, b"".join(pieces)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: int  # HTTP chunks in the body (one per server write, at least)


def decode_http(raw: bytes) -> Response:
    """Split status line, headers and body; undo chunked transfer coding."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        raise AssertionError("no complete response header received")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status != 200:
        raise AssertionError(f"HTTP {status}: {rest[:200]!r}")
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return Response(status, headers, rest, chunks=0)
    parts: list[bytes] = []
    position = 0
    while position < len(rest):  # each pass consumes one chunk, so this ends
        line_end = rest.index(b"\r\n", position)
        size = int(rest[position:line_end].split(b";")[0], 16)
        if size == 0:
            break
        start = line_end + 2
        parts.append(rest[start : start + size])
        if rest[start + size : start + size + 2] != b"\r\n":
            raise AssertionError(f"malformed chunk at byte {position}")
        position = start + size + 2
    else:
        raise AssertionError("chunked body ended without its zero-size chunk")
    return Response(status, headers, b"".join(parts), chunks=len(parts))


def check_events(body: bytes, expected: int) -> None:
    """The body must be exactly ``expected`` events: data and id 0, 1, 2, ... in order."""
    if not body.startswith(b":\n"):
        raise AssertionError(f"body does not open with a comment line: {body[:40]!r}")
    events = EventParser().feed(body)
    if len(events) != expected:
        raise AssertionError(f"expected {expected} events, parsed {len(events)}")
    for i, event in enumerate(events):
        if event.data != str(i) or event.id != str(i):
            raise AssertionError(f"event {i} is {event!r}")


def summary(run: dict[str, Any]) -> str:
    return (
        f"{run['events_per_second']:>10,.0f} events/s {run['mb_per_second']:7.2f} MB/s  "
        f"{run['seconds']:6.2f} s  {run['http_chunks']:>7} chunks  "
        f"CPU server {run['server_cpu_seconds']:.2f} s client {run['client_cpu_seconds']:.2f} s"
    )


MEDIAN_KEYS = (
    "events_per_second",
    "mb_per_second",
    "seconds",
    "http_chunks",
    "server_cpu_seconds",
    "client_cpu_seconds",
)


def build_results(
    args: argparse.Namespace,
    chosen: list[Variant],
    runs: dict[str, list[dict[str, Any]]],
    tracebacks: dict[str, int],
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    variants = {
        variant.name: {
            **asdict(variant),
            "median": h.median_of(runs[variant.name], MEDIAN_KEYS),
            "server_tracebacks": tracebacks[variant.name],
            "server_errors": errors[variant.name],
            "runs": runs[variant.name],
        }
        for variant in chosen
    }
    return {
        "benchmark": "throughput",
        "date": h.now_iso(),
        "command": h.command_line(),
        "server": args.server,
        "server_command": h.server_command(args.server, "<app>", "<port>"),
        "events": args.events,
        "repeat": args.repeat,
        "event": "Event(data=str(i), id=str(i)), after a ':\\n' opening line",
        "environment": h.environment(),
        "variants": variants,
        "ratios": compute_ratios(variants),
    }


def compute_ratios(variants: dict[str, Any]) -> dict[str, Any]:
    """Median events/s of each variant over raw ASGI's (the target) and over batched raw."""

    def rate(name: str) -> float:
        return float(variants[name]["median"]["events_per_second"])

    ratios: dict[str, Any] = {"target_ours_over_raw": RATIO_TARGET}
    for reference in ("raw_asgi", "raw_asgi_batched"):
        if reference in variants:
            for name in variants.keys() - {"raw_asgi", "raw_asgi_batched"}:
                ratios[f"{name}_over_{reference}"] = round(rate(name) / rate(reference), 3)
    if {"raw_asgi", "raw_asgi_batched"} <= variants.keys():
        ratios["raw_asgi_batched_over_raw_asgi"] = round(
            rate("raw_asgi_batched") / rate("raw_asgi"), 3
        )
    if {"sse_view", "sse_view_metrics_off"} <= variants.keys():
        ratios["metrics_on_over_off"] = round(rate("sse_view") / rate("sse_view_metrics_off"), 3)
        ratios["metrics_meet_target"] = ratios["metrics_on_over_off"] >= METRICS_TARGET
    if "sse_view_over_raw_asgi" in ratios:
        ratios["ours_meets_target"] = ratios["sse_view_over_raw_asgi"] >= RATIO_TARGET
    return dict(sorted(ratios.items()))


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\nMedians of {results['repeat']} run(s), {results['events']:,} events per stream, "
        f"server {results['server']}:\n"
    )
    header = (
        f"{'variant':<36} {'events/s':>10} {'MB/s':>7} {'x raw':>6} {'chunks':>8} "
        f"{'server CPU s':>12} {'client CPU s':>12}"
    )
    print(header)
    print("-" * len(header))
    ratios = results["ratios"]
    for name, variant in results["variants"].items():
        m = variant["median"]
        ratio = ratios.get(f"{name}_over_raw_asgi", 1.0 if name == "raw_asgi" else None)
        shown = f"{ratio:.3f}" if ratio is not None else "-"
        print(
            f"{variant['description']:<36} {m['events_per_second']:>10,.0f} "
            f"{m['mb_per_second']:>7.2f} {shown:>6} {m['http_chunks']:>8.0f} "
            f"{m['server_cpu_seconds']:>12.2f} {m['client_cpu_seconds']:>12.2f}"
        )
    if "ours_meets_target" in ratios:
        print(
            f"\nours/raw = {ratios['sse_view_over_raw_asgi']:.3f} "
            f"(target >= {RATIO_TARGET}): {'met' if ratios['ours_meets_target'] else 'NOT met'}"
        )
    if "metrics_meet_target" in ratios:
        print(
            f"metrics on/off = {ratios['metrics_on_over_off']:.3f} "
            f"(target >= {METRICS_TARGET}): {'met' if ratios['metrics_meet_target'] else 'NOT met'}"
        )
    troubled = {n: v["server_tracebacks"] for n, v in results["variants"].items()}
    if any(troubled.values()):
        print(f"WARNING: server tracebacks: {troubled}")


if __name__ == "__main__":
    h.run(main)
