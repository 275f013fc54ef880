"""An ASGI server (uvicorn or daphne) with tracemalloc on, for ``idle_breakdown.py``.

``python bench/_traced_server.py SERVER APP PORT OUT_DIR`` serves APP like the
benchmarks' servers do, in this process, with :mod:`tracemalloc` started before
anything is imported. On each SIGUSR1 it collects garbage, then writes
``OUT_DIR/<n>.snapshot`` (tracemalloc's snapshot) and ``OUT_DIR/<n>.census`` (the
number and ``sys.getsizeof`` bytes of every live object the garbage collector tracks, by
type), and last ``OUT_DIR/<n>.done``, so the reader knows both files are complete.

Collecting first matters: what is measured is what the open streams keep alive, not
garbage that is merely waiting for the collector.
"""

from __future__ import annotations

import gc
import json
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

FRAMES = 1  # the allocating line is enough to attribute; deeper traces cost RSS


def census() -> dict[str, list[int]]:
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return {name: [counts[name], sizes[name]] for name in counts}


def install_dumper(out_dir: Path) -> None:
    taken = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        gc.collect()
        tracemalloc.take_snapshot().dump(str(out_dir / f"{taken}.snapshot"))
        (out_dir / f"{taken}.census").write_text(json.dumps(census()))
        (out_dir / f"{taken}.done").touch()

    signal.signal(signal.SIGUSR1, dump)


def serve(server: str, app: str, port: int) -> None:
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    elif server == "daphne":
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", "127.0.0.1", "-p", str(port), app])
    else:
        raise SystemExit(f"unknown server {server!r}")


if __name__ == "__main__":
    tracemalloc.start(FRAMES)
    server_name, app_path, port_text, out = sys.argv[1:5]
    install_dumper(Path(out))
    serve(server_name, app_path, int(port_text))
