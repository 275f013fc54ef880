"""Idle streams: what N open, quiet event streams cost the server.

Why: an SSE deployment mostly holds connections that send nothing for minutes. A bare
Django ``StreamingHttpResponse`` over an async generator keeps the request's
thread-sensitive sync thread alive for the whole stream, i.e. one OS thread (and its
stack) per idle client. The design target for ``SSEView`` is no thread per idle stream,
at most 20 KiB of server memory per stream and about 0% CPU while idle.

Method, per variant and per repeat, each in a fresh server process:

1. Start the server (uvicorn by default, ``--server daphne``) on a free loopback port.
2. Warm up: open and close a few streams, so lazy imports and URL resolution are done.
3. Read the server's VmRSS, thread count and open fds from /proc (``before``).
4. Open N raw sockets from this one asyncio process; each sends a GET and waits until
   it has the response headers and the first event, so every stream is really open.
5. Let them idle at least 2 s and until the server has been quiet (under 5% CPU) for a
   second, read /proc again (``after``), then measure the server's CPU time
   (utime + stime) over a 5 s idle window (``--cpu-window``). Keep-alives are due every
   15 s, so a 5 s window right after opening mostly shows none of them.
6. Close all sockets at once, wait again until the server is quiet, read /proc: the
   threads must be gone; the CPU time spent meanwhile is the cost of N disconnects.

Reported: RSS per stream = (after - before) / N, threads before/after, idle CPU as % of
one core, CPU ms per stream spent on the disconnects; medians over ``--repeat`` runs.
Results go to ``bench/results/idle_streams.json``.

Besides ours and the bare baseline, three references explain the figures: the bare view
with its thread released by hand (Django's own cost of a stream), ours with StreamLog
rows on (``LOG_STREAMS``, django_sse's default, against a sqlite file), and a raw ASGI
app (the server's own cost of a connection, the floor under any framework). One more
variant, ``channel_view``, measures what most idle streams of a live site are: a
broadcast ``ChannelView`` subscriber waiting for a publish (``bench/broadcastsite.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _harness as h

DJANGO_APP = "bench.benchsite:application"
BROADCAST_APP = "bench.broadcastsite:application"
RAW_APP = "bench.rawasgi:app"
READY_MARKER = b"data: open\n\n"  # end of the first event every idle view sends

WARM_UP_STREAMS = 5
OPEN_CONCURRENCY = 64  # connections being opened at once (daphne's listen backlog is 50)
OPEN_TIMEOUT = 30.0  # per stream: connect, headers and first event
SETTLE_SECONDS = 2.0
QUIET_CPU_FRACTION = 0.05  # "quiet": under 5% of a core over one second
SETTLE_TIMEOUT = 60.0  # stop waiting for quiet after this long (settle_seconds shows it)
# Issue 21's targets, per server: daphne's own connection costs about 4 KiB more.
RSS_TARGET_KIB = {"uvicorn": 16.0, "daphne": 20.0}


@dataclass(frozen=True)
class Variant:
    name: str
    app: str
    path: str
    description: str
    stream_log: bool = False  # serve with LOG_STREAMS on, against a migrated sqlite file
    # Broadcast history in a migrated sqlite file; nothing is published, so the stream
    # is open once its opening comment arrives.
    broadcast: bool = False

    @property
    def ready(self) -> bytes:
        return b":\n" if self.broadcast else READY_MARKER


VARIANTS = (
    Variant("sse_view", DJANGO_APP, "/sse/idle/", "django_sse SSEView"),
    Variant("bare_streaming", DJANGO_APP, "/bare/idle/", "bare StreamingHttpResponse(async gen)"),
    # References, not competitors:
    Variant("bare_released", DJANGO_APP, "/bare/idle-released/", "bare, request thread released"),
    Variant(
        "sse_view_logged", DJANGO_APP, "/sse/idle/", "SSEView + StreamLog rows", stream_log=True
    ),
    Variant("raw_asgi", RAW_APP, "/idle/", "raw ASGI app, no Django"),
    # What most idle streams of a live site are: subscribers waiting for a publish.
    Variant("channel_view", BROADCAST_APP, "/sub/", "ChannelView subscriber", broadcast=True),
)
VARIANT_NAMES = [variant.name for variant in VARIANTS]


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    # Each stream is one fd in this process and one in the server.
    soft, hard = h.raise_open_file_limit(args.streams + 200)
    chosen = [variant for variant in VARIANTS if variant.name in args.variants]
    print(
        f"idle streams: {args.streams} per run, {args.repeat} repeat(s), server {args.server}, "
        f"RLIMIT_NOFILE soft/hard {soft}/{hard}"
    )
    runs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in chosen}
    for repeat in range(1, args.repeat + 1):
        # Alternate the variants so slow drift on the machine hits all of them alike.
        for variant in chosen:
            run = measure(variant, args.server, args.streams, args.cpu_window)
            runs[variant.name].append(run)
            print(f"  run {repeat}/{args.repeat} {variant.name:<16} {summary(run)}")

    results = build_results(args, chosen, runs)
    print_table(results)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2000, help="idle streams per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--server", choices=h.SERVERS, default="uvicorn")
    parser.add_argument(
        "--cpu-window", type=float, default=5.0, help="seconds of idle CPU measured"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help=f"comma-separated subset of {','.join(VARIANT_NAMES)} (default: all)",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    args = parser.parse_args()
    if args.streams < 1 or args.repeat < 1 or not 0 < args.cpu_window <= 600:
        parser.error("--streams and --repeat must be at least 1, --cpu-window 0-600 s")
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = set(args.variants) - set(VARIANT_NAMES)
    if unknown or not args.variants:
        parser.error(f"--variants: choose from {', '.join(VARIANT_NAMES)}")
    if args.output is None:
        args.output = h.default_output("idle_streams", args.server)
    args.output = args.output.resolve()
    return args


def measure(variant: Variant, server_name: str, streams: int, cpu_window: float) -> dict[str, Any]:
    """One run of one variant in a fresh server process."""
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as directory:
        database = Path(directory) / "db.sqlite3"
        env = database_env(variant, database)
        with h.Server(server_name, variant.app, env) as server:
            run = asyncio.run(hold_idle_streams(server, variant, streams, cpu_window))
        run["server_tracebacks"] = server.tracebacks()
        run["server_errors"] = server.errors()
        if variant.stream_log:
            run["stream_log_rows"] = stream_log_outcomes(database)
        return run


def database_env(variant: Variant, database: Path) -> dict[str, str]:
    """The server's environment for ``variant``, with its tables made in ``database``
    if it needs any."""
    if variant.stream_log:
        env = {"BENCH_STREAM_LOG_DB": str(database)}
        h.migrate("bench.benchsite", env)
        return env
    if variant.broadcast:
        env = {"BENCH_DB": str(database)}
        h.migrate("bench.broadcastsite", env)
        return env
    return {}


def stream_log_outcomes(database: Path) -> dict[str, int]:
    """StreamLog rows by outcome, read once the server has stopped."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT outcome, COUNT(*) FROM django_sse_streamlog GROUP BY outcome"
        ).fetchall()
    return {str(outcome): int(count) for outcome, count in rows}


async def hold_idle_streams(
    server: h.Server, variant: Variant, streams: int, cpu_window: float
) -> dict[str, Any]:
    async with StreamPool(server.port, variant.path, variant.ready) as warm_up:
        await warm_up.open(WARM_UP_STREAMS)
    await asyncio.sleep(1.0)  # let the warm-up streams' threads and tasks finish
    before = h.sample(server.pid)

    async with StreamPool(server.port, variant.path, variant.ready) as pool:
        started = time.monotonic()
        await pool.open(streams)
        open_seconds = time.monotonic() - started
        settle_seconds = await settle(server.pid)
        after = h.sample(server.pid)
        await asyncio.sleep(cpu_window)
        end_of_idle = h.sample(server.pid).cpu_seconds
        cpu_seconds = end_of_idle - after.cpu_seconds
        still_open = pool.count_open()

    # Let the server finish what the disconnects started (StreamLog updates, for one)
    # before it is stopped; how long that takes is worth knowing too.
    close_settle_seconds = await settle(server.pid)
    released = h.sample(server.pid)
    return {
        "streams": streams,
        "streams_open_at_end": still_open,
        "open_seconds": round(open_seconds, 3),
        "settle_seconds": round(settle_seconds, 1),
        "rss_kib_before": before.rss_kib,
        "rss_kib_after": after.rss_kib,
        "rss_kib_per_stream": round((after.rss_kib - before.rss_kib) / streams, 2),
        "threads_before": before.threads,
        "threads_after": after.threads,
        "threads_per_stream": round((after.threads - before.threads) / streams, 4),
        "threads_after_close": released.threads,
        "close_settle_seconds": round(close_settle_seconds, 1),
        "close_cpu_ms_per_stream": round(1000 * (released.cpu_seconds - end_of_idle) / streams, 3),
        "rss_kib_after_close": released.rss_kib,
        "fds_before": before.open_fds,
        "fds_after": after.open_fds,
        "idle_cpu_percent": round(100 * cpu_seconds / cpu_window, 2),
    }


async def settle(pid: int) -> float:
    """Wait SETTLE_SECONDS, then until the server is quiet; returns the time waited.

    Work the streams started may still be running (StreamLog inserts, for one), and
    sampling before it is done would count it as idle cost.
    """
    started = time.monotonic()
    await asyncio.sleep(SETTLE_SECONDS - 1.0)
    previous = h.sample(pid).cpu_seconds
    while time.monotonic() - started < SETTLE_TIMEOUT:
        await asyncio.sleep(1.0)
        current = h.sample(pid).cpu_seconds
        if current - previous < QUIET_CPU_FRACTION:
            break
        previous = current
    return time.monotonic() - started


class StreamPool:
    """Raw sockets holding streams open; leaving the ``async with`` closes them all."""

    def __init__(self, port: int, path: str, ready: bytes) -> None:
        self._port = port
        self._ready = ready
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {h.HOST}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self._streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> StreamPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        streams, self._streams = self._streams, []
        for _, writer in streams:
            writer.close()
        await asyncio.wait_for(
            asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True),
            timeout=OPEN_TIMEOUT,
        )

    async def open(self, count: int) -> None:
        """Open ``count`` streams, at most OPEN_CONCURRENCY connecting at once."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one() -> None:
            async with gate:
                await asyncio.wait_for(self._open_one(), timeout=OPEN_TIMEOUT)

        await asyncio.gather(*(one() for _ in range(count)))

    async def _open_one(self) -> None:
        reader, writer = await asyncio.open_connection(h.HOST, self._port)
        self._streams.append((reader, writer))  # registered first: closed even on error
        writer.write(self._request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status.decode(errors='replace')}")
        await reader.readuntil(self._ready)

    def count_open(self) -> int:
        """Streams the server has not closed (their reader has seen no EOF or error)."""
        return sum(
            1
            for reader, writer in self._streams
            if not (reader.at_eof() or writer.is_closing() or reader.exception())
        )


def summary(run: dict[str, Any]) -> str:
    return (
        f"{run['rss_kib_per_stream']:7.2f} KiB/stream  threads {run['threads_before']}"
        f"->{run['threads_after']}->{run['threads_after_close']}  "
        f"idle CPU {run['idle_cpu_percent']:.2f}%  open {run['open_seconds']:.2f}s  "
        f"close {run['close_cpu_ms_per_stream']:.2f} ms CPU/stream"
    )


MEDIAN_KEYS = (
    "rss_kib_per_stream",
    "rss_kib_before",
    "rss_kib_after",
    "threads_before",
    "threads_after",
    "threads_per_stream",
    "threads_after_close",
    "idle_cpu_percent",
    "open_seconds",
    "settle_seconds",
    "close_settle_seconds",
    "close_cpu_ms_per_stream",
)


def build_results(
    args: argparse.Namespace, chosen: list[Variant], runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for variant in chosen:
        variant_runs = runs[variant.name]
        variants[variant.name] = {
            **asdict(variant),
            "median": h.median_of(variant_runs, MEDIAN_KEYS),
            "runs": variant_runs,
        }
    return {
        "benchmark": "idle_streams",
        "date": h.now_iso(),
        "command": h.command_line(),
        "server": args.server,
        "server_command": h.server_command(args.server, "<app>", "<port>"),
        "streams": args.streams,
        "repeat": args.repeat,
        "min_settle_seconds": SETTLE_SECONDS,
        "cpu_window_seconds": args.cpu_window,
        "cpu_resolution_percent": round(100 / h.CLOCK_TICKS / args.cpu_window, 3),
        "environment": h.environment(),
        "variants": variants,
        "comparison": compare(variants, args.server),
    }


def compare(variants: dict[str, Any], server: str) -> dict[str, Any]:
    """Ours against the baseline, the target and the references that were run."""

    def per_stream(name: str) -> float | None:
        return variants[name]["median"]["rss_kib_per_stream"] if name in variants else None

    ours, bare = per_stream("sse_view"), per_stream("bare_streaming")
    target = RSS_TARGET_KIB[server]
    comparison: dict[str, Any] = {"rss_target_kib_per_stream": target}
    if ours is None:
        return comparison
    comparison["ours_meets_rss_target"] = ours <= target
    comparison["ours_holds_no_thread_per_stream"] = (
        variants["sse_view"]["median"]["threads_per_stream"] < 0.01
    )
    if bare:
        comparison["rss_per_stream_ours_over_bare"] = round(ours / bare, 3)
    # What the engine adds to Django's own cost, and what Django adds to the server's.
    for reference in ("bare_released", "raw_asgi"):
        value = per_stream(reference)
        if value is not None:
            comparison[f"ours_minus_{reference}_kib_per_stream"] = round(ours - value, 2)
    logged = per_stream("sse_view_logged")
    if logged is not None:
        comparison["stream_log_adds_kib_per_stream"] = round(logged - ours, 2)
    return comparison


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\nMedians of {results['repeat']} run(s), {results['streams']} idle streams, "
        f"server {results['server']} (KiB = /proc's kB; CPU resolution "
        f"{results['cpu_resolution_percent']}%):\n"
    )
    header = (
        f"{'variant':<40} {'KiB/stream':>10} {'threads before':>15} {'after':>6} "
        f"{'closed':>7} {'idle CPU %':>10} {'close ms CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for variant in results["variants"].values():
        m = variant["median"]
        print(
            f"{variant['description']:<40} {m['rss_kib_per_stream']:>10.2f} "
            f"{m['threads_before']:>15.0f} {m['threads_after']:>6.0f} "
            f"{m['threads_after_close']:>7.0f} {m['idle_cpu_percent']:>10.2f} "
            f"{m['close_cpu_ms_per_stream']:>12.3f}"
        )
    print()
    for key, value in results["comparison"].items():
        print(f"{key}: {value}")
    ours = results["variants"].get("sse_view")
    if ours is not None and len(ours["runs"]) > 1:
        spread = [run["rss_kib_per_stream"] for run in ours["runs"]]
        print(
            f"ours KiB/stream per run: {', '.join(f'{value:.2f}' for value in spread)} "
            f"(stdev {statistics.stdev(spread):.2f})"
        )
    troubled = {
        name: [run["server_tracebacks"] for run in variant["runs"]]
        for name, variant in results["variants"].items()
        if any(run["server_tracebacks"] for run in variant["runs"])
    }
    if troubled:
        print(f"WARNING: server tracebacks per run: {troubled}")


if __name__ == "__main__":
    h.run(main)
