"""Idle breakdown: where each KiB of an idle stream goes, by layer, by line, by type.

Why: ``idle_streams.py`` says how much an idle stream costs (RSS per stream); this one
says who keeps it. Cutting memory starts from knowing whether it is Django's request,
the handler's tasks and coroutine frames, the response, our engine, the view's
generator, or the server's own per-connection objects.

Method, per variant, in a fresh server process (``bench/_traced_server.py``: the same
server, with :mod:`tracemalloc` started before any import):

1. Warm up with a few streams and close them, as ``idle_streams.py`` does.
2. SIGUSR1: the server collects garbage and writes a tracemalloc snapshot and a census
   of the live objects the garbage collector tracks, by type (``before``).
3. Open N idle streams (``idle_streams.StreamPool``: headers and first event received),
   let the server go quiet, then SIGUSR1 again (``after``).
4. Diff the two: retained bytes and blocks per stream by allocating line, grouped into
   layers by file, and live objects per stream by type.

The snapshots see only what Python allocates through its allocators (objects, frames,
buffers held as bytes); what C libraries allocate themselves (uvloop's libuv handles,
the kernel's socket buffers) and allocator overhead are in RSS only, so RSS per stream
is reported beside the traced total. tracemalloc itself adds to RSS (one trace per
block), so that RSS figure is above ``idle_streams.py``'s; compare breakdowns with each
other, and RSS with ``idle_streams.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import linecache
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import _harness as h
import idle_streams
from idle_streams import WARM_UP_STREAMS, StreamPool, Variant, database_env, settle

VARIANTS = {
    variant.name: variant
    for variant in idle_streams.VARIANTS
    if variant.name in ("sse_view", "sse_view_logged", "bare_released", "raw_asgi", "channel_view")
}
SNAPSHOT_TIMEOUT = 120.0  # the census walks every live object; 20,000 streams take a while
TOP = 25  # rows in the by-line and by-type tables

# Allocating file -> layer, first match wins. Paths are matched with "/" on both sides.
LAYERS = (
    ("/django_sse/", "django_sse (engine, response, view)"),
    ("/django/core/handlers/asgi.py", "Django ASGI handler and ASGIRequest"),
    ("/django/http/", "Django HttpRequest/HttpResponse"),
    ("/django/", "Django, other"),
    ("/asgiref/", "asgiref"),
    ("/uvicorn/", "uvicorn per connection"),
    ("/httptools/", "uvicorn per connection"),
    ("/daphne/", "daphne/Twisted per connection"),
    ("/twisted/", "daphne/Twisted per connection"),
    ("/autobahn/", "daphne/Twisted per connection"),
    ("/asyncio/", "asyncio (tasks, futures, transports)"),
    ("/bench/", "the benchmark's view (user code)"),
)


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    soft, hard = h.raise_open_file_limit(args.streams + 200)
    print(
        f"idle breakdown: {args.streams} streams, server {args.server}, tracemalloc on, "
        f"RLIMIT_NOFILE soft/hard {soft}/{hard}"
    )
    results: dict[str, Any] = {
        "benchmark": "idle_breakdown",
        "command": h.command_line(),
        "date": h.now_iso(),
        "server": args.server,
        "streams": args.streams,
        "environment": h.environment(),
        "variants": {},
    }
    for name in args.variants:
        results["variants"][name] = breakdown(args.server, VARIANTS[name], args.streams)
        print_variant(name, results["variants"][name])
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=h.SERVERS, default="uvicorn")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument(
        "--variants",
        type=lambda text: text.split(","),
        default=list(VARIANTS),
        help=f"comma-separated subset of: {','.join(VARIANTS)}",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    if args.output is None:
        args.output = h.default_output("idle_breakdown", args.server)
    return args


def breakdown(server_name: str, variant: Variant, streams: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="idle-breakdown-") as out_dir:
        env = database_env(variant, Path(out_dir) / "db.sqlite3")
        server = h.Server(server_name, variant.app, env={"PYTHONPATH": str(h.ROOT), **env})
        server.command = [
            sys.executable, str(h.ROOT / "bench" / "_traced_server.py"),
            server_name, variant.app, str(server.port), out_dir,
        ]  # fmt: skip
        with server:
            return asyncio.run(measure(server, variant, streams, Path(out_dir)))


async def measure(
    server: h.Server, variant: Variant, streams: int, out_dir: Path
) -> dict[str, Any]:
    async with StreamPool(server.port, variant.path, variant.ready) as warm_up:
        await warm_up.open(WARM_UP_STREAMS)
    await settle(server.pid)
    rss_before = h.sample(server.pid).rss_kib
    before = await snapshot(server, out_dir, 1)
    async with StreamPool(server.port, variant.path, variant.ready) as pool:
        await pool.open(streams)
        await settle(server.pid)
        rss_after = h.sample(server.pid).rss_kib
        after = await snapshot(server, out_dir, 2)
        still_open = pool.count_open()
    if still_open != streams:
        raise RuntimeError(f"only {still_open} of {streams} streams stayed open")
    return diff(before, after, streams) | {
        "rss_kib_per_stream": round((rss_after - rss_before) / streams, 2),
        "server_tracebacks": server.tracebacks(),
    }


async def snapshot(
    server: h.Server, out_dir: Path, number: int
) -> tuple[tracemalloc.Snapshot, dict[str, list[int]]]:
    os.kill(server.pid, signal.SIGUSR1)
    done = out_dir / f"{number}.done"
    deadline = time.monotonic() + SNAPSHOT_TIMEOUT
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot within {SNAPSHOT_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)
    census = json.loads((out_dir / f"{number}.census").read_text())
    return tracemalloc.Snapshot.load(str(out_dir / f"{number}.snapshot")), census


def diff(
    before: tuple[tracemalloc.Snapshot, dict[str, list[int]]],
    after: tuple[tracemalloc.Snapshot, dict[str, list[int]]],
    streams: int,
) -> dict[str, Any]:
    lines = [
        stat
        for stat in after[0].compare_to(before[0], "lineno")
        if stat.size_diff > 0 and stat.count_diff >= streams // 2
    ]
    layers: Counter[str] = Counter()
    for stat in after[0].compare_to(before[0], "filename"):
        layers[layer_of(stat.traceback[0].filename)] += stat.size_diff
    traced = sum(stat.size_diff for stat in after[0].compare_to(before[0], "filename"))
    types = [
        (name, count - before[1].get(name, [0, 0])[0], size - before[1].get(name, [0, 0])[1])
        for name, (count, size) in after[1].items()
    ]
    return {
        "traced_kib_per_stream": round(traced / 1024 / streams, 2),
        # Layers of at least 0.05 KiB a stream: the rest is noise of the run (imports).
        "by_layer": {
            name: round(size / 1024 / streams, 2)
            for name, size in layers.most_common()
            if abs(size) >= 0.05 * 1024 * streams
        },
        "by_line": [
            {
                "where": f"{short_path(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                "code": linecache.getline(
                    stat.traceback[0].filename, stat.traceback[0].lineno
                ).strip()[:70],
                "bytes_per_stream": round(stat.size_diff / streams),
                "blocks_per_stream": round(stat.count_diff / streams, 2),
            }
            for stat in sorted(lines, key=lambda stat: -stat.size_diff)[:TOP]
        ],
        "by_type": [
            {
                "type": name,
                "objects_per_stream": round(count / streams, 2),
                "bytes_per_stream": round(size / streams),
            }
            for name, count, size in sorted(types, key=lambda row: -row[2])[:TOP]
            if count >= streams // 2
        ],
    }


def layer_of(filename: str) -> str:
    path = "/" + filename.replace(os.sep, "/")
    for fragment, name in LAYERS:
        if fragment in path:
            return name
    return f"other: {Path(filename).name}"


def short_path(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "lib", "main"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return filename


def print_variant(name: str, result: dict[str, Any]) -> None:
    print(
        f"\n## {name}: RSS {result['rss_kib_per_stream']} KiB/stream with tracemalloc on, "
        f"traced {result['traced_kib_per_stream']} KiB/stream"
    )
    print("\n| layer (allocating file) | KiB/stream |\n|---|---:|")
    for layer, kib in result["by_layer"].items():
        print(f"| {layer} | {kib:.2f} |")
    print("\n| allocating line | bytes/stream | blocks/stream | code |\n|---|---:|---:|---|")
    for row in result["by_line"]:
        print(
            f"| {row['where']} | {row['bytes_per_stream']} | {row['blocks_per_stream']} "
            f"| `{row['code']}` |"
        )
    print("\n| live object type | objects/stream | bytes/stream |\n|---|---:|---:|")
    for row in result["by_type"]:
        print(f"| {row['type']} | {row['objects_per_stream']} | {row['bytes_per_stream']} |")


if __name__ == "__main__":
    h.run(main)
