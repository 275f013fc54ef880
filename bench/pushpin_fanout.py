"""Fan-out through Pushpin: what N held subscribers of one channel cost Django, and how
fast an event reaches all of them.

Why (issue 17): in Pushpin mode (``DJANGO_SSE["PUSHPIN"]``) Pushpin holds the streams
and Django answers each subscriber once, so Django's memory should stay flat however
many subscribers there are (target: within 10 MiB of idle), while an event still
reaches the last of 20,000 subscribers quickly (target: p99 under 200 ms, and ahead of
django-eventstream behind the same Pushpin), with no event lost.

Side by side in one run, each scenario in fresh processes (one uvicorn process, and a
Pushpin of its own where there is one):

* ``django_sse_pushpin``: subscribers connect through Pushpin 1.36 (Debian's, run by
  tests/pushpin.py from a generated config) to ``bench/broadcastsite.py``'s ChannelView
  with Pushpin mode on (``BENCH_PUSHPIN``) and the recovery URLs included.
* ``django_sse_direct``: the same subscribers straight to the same site, Pushpin mode
  off: how django_sse serves them today.
* ``eventstream_pushpin``: django-eventstream with django-grip's GripMiddleware and
  ``GRIP_URL`` behind the same kind of Pushpin (``bench/eventstreamsite.py``,
  ``BENCH_GRIP_URL``), its default configuration otherwise (no storage).

Pushpin's handler limits deliveries (subscribers x events): ``message_rate`` (2,500 per
second by default) and ``message_hwm`` (25,000 queued; more are dropped). With 20,000
subscribers the defaults allow one event per 8 s and drop the second of two events
published together, so this benchmark raises both (``--message-rate``,
``--message-hwm``), as a deployment with that many subscribers must.

Per scenario and subscriber count:

1. Warm up: open ``--warm-up-subscribers`` (1,000) subscribers the way the N are opened
   later, publish until each has an event, close them; wait until quiet and read
   Django's and Pushpin's VmRSS (``idle``): a process that has served subscribers
   before, so what serving requests at all costs (threads, their sqlite connections,
   allocator high-water) is not counted as the cost of holding N.
2. Open N subscribers from client processes (``bench/_subscribers.py``; one process may
   hold only RLIMIT_NOFILE sockets), at most ``--open-concurrency`` (64) waiting for
   their response headers at once; a connection answered with an error is opened again
   (at most 3 tries, counted). Publish warm-up events until every subscriber has one,
   wait until quiet, measure ``--idle-window`` seconds of CPU of Django and of
   Pushpin's processes with all subscribers held, then read VmRSS again (``held``;
   by then uvicorn has closed the keep-alive connections from Pushpin's zurl).
3. Latency: ``--events`` events published one at a time through ``/pub/``, which takes
   CLOCK_MONOTONIC just before publishing and returns it; each client process notes
   when each connection read the event. Per event p50, p99 and max across subscribers.
4. Sustained rate: one publisher publishes back to back over one keep-alive connection
   for ``--burst-seconds`` (at most ``--burst-max`` events); then every subscriber must
   have every event, in order. Events/s delivered = events / (last receipt by the last
   subscriber - first publish start); lost = events some subscriber never got.

Reported: medians over events, RSS figures, CPU, requests Django served per kind
(``subscribe``, ``recover``: Pushpin fetching a held stream's recovery link). Results:
bench/results/pushpin_fanout.json with every run, the command, date, versions and a
hash of the django_sse sources.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import _harness as h

sys.path.insert(0, str(h.ROOT))  # for tests.pushpin, when run as bench/pushpin_fanout.py

SIG_KEY = "bench-pushpin-key"
WARM_UP_TIMEOUT = 300.0  # every subscriber has a warm-up event
MARK_TIMEOUT = 60.0  # every subscriber has a timed event
DRAIN_TIMEOUT = 120.0  # every subscriber has the whole burst...
DRAIN_STALL = 15.0  # ...unless no burst event arrived anywhere for this long
QUIET_CPU_FRACTION = 0.05
SETTLE_TIMEOUT = 60.0
# File descriptors a server process needs besides its connections: condure has 35
# idle, uvicorn about 20. One process may have RLIMIT_NOFILE in all.
SERVER_FD_RESERVE = 100
CLIENT_FD_RESERVE = 50
PUSHPIN_SERVICES = ("condure", "pushpin-proxy", "pushpin-handler", "zurl")
MIB = 1024.0
RSS_TARGET_MIB = 10.0
P99_TARGET_MS = 200.0


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    pushpin: bool
    description: str


SCENARIOS = (
    Scenario("django_sse_pushpin", "bench.broadcastsite:application", True,
             "django_sse ChannelView in Pushpin mode, behind Pushpin, 1 uvicorn process"),
    Scenario("django_sse_direct", "bench.broadcastsite:application", False,
             "django_sse ChannelView served by Django itself (today's mode), 1 uvicorn process"),
    Scenario("eventstream_pushpin", "bench.eventstreamsite:application", True,
             "django-eventstream + django-grip (GripMiddleware, GRIP_URL) behind Pushpin, "
             "1 uvicorn process"),
)  # fmt: skip
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    soft, hard = h.raise_open_file_limit(CLIENT_FD_RESERVE + 1000)
    largest = max(args.subscribers)
    if largest + SERVER_FD_RESERVE > hard:
        sys.exit(
            f"{largest} subscribers do not fit: one server process (uvicorn, or Pushpin's "
            f"condure) holds every connection and may have {hard} open files "
            f"(RLIMIT_NOFILE), {SERVER_FD_RESERVE} of them kept for its own use. Pass "
            f"--subscribers {hard - SERVER_FD_RESERVE} or fewer, or raise the hard limit."
        )
    chosen = [s for s in SCENARIOS if s.name in args.scenarios]
    if not pushpin_available():
        print("pushpin, condure or zurl not found (apt-get install pushpin): Pushpin skipped")
        chosen = [s for s in chosen if not s.pushpin]
    if not importlib.util.find_spec("django_eventstream") or not importlib.util.find_spec(
        "django_grip"
    ):
        print(
            "django-eventstream or django-grip not installed (pip install -e '.[bench]'): skipped"
        )
        chosen = [s for s in chosen if not s.name.startswith("eventstream")]
    print(
        f"pushpin_fanout: subscribers {args.subscribers}, {args.events} timed events, "
        f"burst {args.burst_seconds} s (max {args.burst_max}), RLIMIT_NOFILE {soft}/{hard}, "
        f"Pushpin message_rate {args.message_rate}, message_hwm {args.message_hwm}"
    )
    results: dict[str, Any] = {
        "benchmark": "pushpin_fanout",
        "command": h.command_line(),
        "date": h.now_iso(),
        "environment": environment(),
        "settings": {
            "events": args.events,
            "burst_seconds": args.burst_seconds,
            "burst_max": args.burst_max,
            "idle_window": args.idle_window,
            "open_concurrency": args.open_concurrency,
            "clients": args.clients,
            "recover_interval": args.recover_interval,
            "pushpin_handler": pushpin_settings(args)["handler"],
        },
        "scenarios": {},
    }
    for count in args.subscribers:
        for scenario in chosen:
            rows = results["scenarios"].setdefault(
                scenario.name, {"description": scenario.description, "runs": {}}
            )
            print(f"  {scenario.name} with {count} subscribers ...", flush=True)
            run = measure(scenario, count, args)
            rows["runs"][str(count)] = run
            print(f"  {scenario.name:<20} {count:>6}  {summary(run)}", flush=True)
            # Written after every run: a long run interrupted keeps what it measured.
            h.write_results(args.output, results)
    print_table(results)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subscribers",
        default="19900",
        help="comma-separated subscriber counts, e.g. 1000,5000 for a "
        "quick run (default 19900: the most one process holds here)",
    )
    parser.add_argument("--events", type=int, default=10, help="timed events per run")
    parser.add_argument(
        "--burst-seconds", type=float, default=3.0, help="seconds of publishing back to back"
    )
    parser.add_argument("--burst-max", type=int, default=200, help="most events in the burst")
    parser.add_argument(
        "--idle-window",
        type=float,
        default=5.0,
        help="seconds of CPU measured with all subscribers held",
    )
    parser.add_argument(
        "--warm-up-subscribers",
        type=int,
        default=1000,
        help="subscribers opened and closed before the idle reading",
    )
    parser.add_argument(
        "--open-concurrency",
        type=int,
        default=64,
        help="connections waiting for their response at once",
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes the subscribers are spread over"
    )
    parser.add_argument(
        "--message-rate",
        type=int,
        default=10_000_000,
        help="Pushpin's [handler] message_rate (deliveries per second)",
    )
    parser.add_argument(
        "--message-hwm",
        type=int,
        default=10_000_000,
        help="Pushpin's [handler] message_hwm (deliveries queued)",
    )
    parser.add_argument(
        "--recover-interval",
        type=int,
        default=None,
        help="django_sse's PUSHPIN RECOVER_INTERVAL (default: its own, "
        "300 s); shorter shows the recovery requests within a run",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help=f"comma-separated subset of {','.join(SCENARIO_NAMES)}",
    )
    parser.add_argument("--output", type=Path, default=h.RESULTS / "pushpin_fanout.json")
    args = parser.parse_args()
    args.subscribers = [int(n) for n in args.subscribers.split(",")]
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if set(args.scenarios) - set(SCENARIO_NAMES) or not args.scenarios:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIO_NAMES)}")
    if args.events < 1 or min(args.subscribers) < 1 or args.clients < 1:
        parser.error("--events, --subscribers and --clients must be at least 1")
    if not 0 < args.burst_seconds <= 60 or args.burst_max < 1 or not 0 < args.idle_window <= 600:
        parser.error("--burst-seconds 0-60, --burst-max >= 1, --idle-window 0-600")
    args.output = args.output.resolve()
    return args


def pushpin_available() -> bool:
    names = ("pushpin", "condure", "zurl", "pushpin-proxy", "pushpin-handler")
    return all(shutil.which(name) for name in names)


def pushpin_settings(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    return {
        "handler": {"message_rate": str(args.message_rate), "message_hwm": str(args.message_hwm)}
    }


# -- one run ---------------------------------------------------------------------------


def measure(scenario: Scenario, count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fresh Django (and Pushpin) processes, the phases of the module's docstring."""
    with tempfile.TemporaryDirectory(prefix="pushpin-fanout-") as directory:
        env = {"BENCH_DB": str(Path(directory) / "history.sqlite3"), "BENCH_COUNT_REQUESTS": "1"}
        if scenario.app.startswith("bench.broadcastsite"):
            h.migrate("bench.broadcastsite", env)
        with contextlib.ExitStack() as stack:
            origin_port = h.free_port()
            pushpin = None
            if scenario.pushpin:
                from tests.pushpin import Pushpin

                pushpin = Pushpin([origin_port], sig_key=SIG_KEY, settings=pushpin_settings(args))
                stack.callback(pushpin.close)
                if scenario.app.startswith("bench.broadcastsite"):
                    setting: dict[str, Any] = {
                        "PUBLISH_URL": pushpin.publish_url,
                        "SIG_KEY": SIG_KEY,
                    }
                    if args.recover_interval:
                        setting["RECOVER_INTERVAL"] = args.recover_interval
                    env["BENCH_PUSHPIN"] = json.dumps(setting)
                else:
                    publish_base = pushpin.publish_url.removesuffix("/publish/")
                    env["BENCH_GRIP_URL"] = f"{publish_base}?iss=pushpin&key={SIG_KEY}"
            server = stack.enter_context(h.Server("uvicorn", scenario.app, env, port=origin_port))
            if pushpin is not None:
                pushpin.start()
            run = Run(server, pushpin, count, args).measure()
            run["server_tracebacks"] = server.tracebacks()
            run["server_errors"] = server.errors()
            if pushpin is not None:
                run["pushpin_log"] = pushpin_log_summary(pushpin.log())
        return run


class Run:
    def __init__(self, server: h.Server, pushpin: Any, count: int, args: argparse.Namespace):
        self.server = server
        self.pushpin = pushpin
        self.count = count
        self.args = args
        self.port = pushpin.http_port if pushpin is not None else server.port
        self.publisher = Publisher(server.port)

    def measure(self) -> dict[str, Any]:
        run: dict[str, Any] = {"subscribers": self.count}
        try:
            run.update(self._phases())
        finally:
            self.publisher.close()
        return run

    def _phases(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # 1. Warm-up: as many subscribers as are opened at once later, so that what
        # serving that many requests at a time takes (threads, buffers, imports) is
        # in the idle figure; then idle.
        warm_up = min(self.count, self.args.warm_up_subscribers)
        with Clients(self.port, warm_up, 1, self.args.open_concurrency) as few:
            self._warm_up(few, "warm-up")
        time.sleep(1.0)
        self._settle()
        idle = self._sample()
        requests_idle = self._requests()

        # 2. N subscribers held.
        cpu = self._cpu()
        with Clients(self.port, self.count, self.args.clients, self.args.open_concurrency) as c:
            out["open_seconds"] = c.open_seconds
            # Connections answered with an error and opened again (up to 3 tries).
            out["open_retried"] = c.retried
            out["open_failures"] = c.failures
            out["warm_up_seconds"] = self._warm_up(c, "subscribers")
            # Subscribers whose connection the server (or Pushpin) closed: none should be.
            out["closed_after_warm_up"] = c.closed_by_server()
            out["cpu_opening_ms_per_subscriber"] = {
                side: round((after - cpu[side]) * 1000 / self.count, 3)
                for side, after in self._cpu().items()
            }
            out["settle_seconds"] = self._settle()
            requests_held = self._requests()
            cpu_before = self._cpu()
            time.sleep(self.args.idle_window)
            cpu_after = self._cpu()
            requests_after_idle = self._requests()
            # After the idle window: the server has closed the keep-alive connections
            # Pushpin's zurl opened to it (uvicorn: after 5 s).
            held = self._sample()
            out["idle_cpu_percent"] = {
                side: round((cpu_after[side] - cpu_before[side]) / self.args.idle_window * 100, 2)
                for side in cpu_after
            }
            out["requests_during_idle_window"] = diff(requests_after_idle, requests_held)

            # 3. Latency, event by event.
            cpu_before = self._cpu_by_process()
            per_event = [self._deliver(c, n) for n in range(self.args.events)]
            cpu_after = self._cpu_by_process()
            out["cpu_ms_per_event"] = {
                name: round(
                    (cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / self.args.events, 1
                )
                for name in cpu_after
            }
            for key in ("p50_ms", "p99_ms", "max_ms"):
                out[key] = round(statistics.median(event[key] for event in per_event), 2)
            out["missed"] = sum(event["missed"] for event in per_event)
            out["per_event"] = per_event
            requests_before_burst = self._requests()

            # 4. Sustained publishing.
            out["burst"] = self._burst(c)
            out["burst"]["requests"] = diff(self._requests(), requests_before_burst)
            out["closed_by_server"] = c.closed_by_server()
        after_burst = self._sample()

        out["django_rss_idle_kib"] = idle["django"]["rss_kib"]
        out["django_rss_held_kib"] = held["django"]["rss_kib"]
        out["django_rss_growth_mib"] = round(
            (held["django"]["rss_kib"] - idle["django"]["rss_kib"]) / MIB, 1
        )
        out["django_rss_after_burst_kib"] = after_burst["django"]["rss_kib"]
        if self.pushpin is not None:
            out["pushpin_rss_idle_kib"] = idle["pushpin"]["rss_kib"]
            out["pushpin_rss_held_kib"] = held["pushpin"]["rss_kib"]
            out["pushpin_rss_after_burst_kib"] = after_burst["pushpin"]["rss_kib"]
        out["samples"] = {"idle": idle, "held": held, "after_burst": after_burst}
        out["requests"] = {
            "warm_up": requests_idle,
            "total": self._requests(),
        }
        out["requests_per_subscriber"] = round(
            diff(out["requests"]["total"], requests_idle).get("subscribe", 0) / self.count, 3
        )
        return out

    # -- phases --------------------------------------------------------------------------

    def _warm_up(self, clients: Clients, what: str) -> float:
        """Publish until every subscriber has had an event: all are subscribed."""
        started = time.monotonic()
        n = 0
        while True:
            n += 1
            published = time.monotonic()
            self.publisher.publish(f"warm-{n}")
            answers = clients.command({"cmd": "warm", "timeout": 1.0})
            warm = sum(a["warm"] for a in answers)
            still_open = sum(a["open"] for a in answers)  # the server may close some
            if warm >= still_open:
                return round(time.monotonic() - started, 2)
            if time.monotonic() - started > WARM_UP_TIMEOUT:
                raise TimeoutError(f"{what}: {still_open - warm} never got a warm-up event")
            time.sleep(max(0.0, published + 0.5 - time.monotonic()))  # 2 per second at most

    def _deliver(self, clients: Clients, n: int) -> dict[str, Any]:
        started = self.publisher.publish(f"mark-{n}")
        answers = clients.command({"cmd": "mark", "n": n, "timeout": MARK_TIMEOUT})
        times = [t for answer in answers for t in answer["times"]]
        latencies = sorted((t - started) * 1000 for t in times if t)
        missed = len(times) - len(latencies)
        if not latencies:
            return {"p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan, "missed": missed}
        return {
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
            "max_ms": round(latencies[-1], 2),
            "missed": missed,
        }

    def _burst(self, clients: Clients) -> dict[str, Any]:
        cpu_before = self._cpu()
        first = None
        total = 0
        started = time.monotonic()
        while total < self.args.burst_max and time.monotonic() - started < self.args.burst_seconds:
            at = self.publisher.publish(f"b-{total}")
            first = at if first is None else first
            total += 1
        publish_seconds = time.monotonic() - started
        answers = clients.command(
            {"cmd": "burst", "total": total, "timeout": DRAIN_TIMEOUT, "stall": DRAIN_STALL}
        )
        drained = time.monotonic() - started
        cpu_after = self._cpu()
        complete = sum(a["complete"] for a in answers)
        received = sum(a["received"] for a in answers)
        open_ = sum(a["open"] for a in answers)
        last = max(a["last"] for a in answers)
        assert first is not None
        delivered_seconds = last - first if complete == open_ and last else math.nan
        return {
            "events": total,
            "publish_seconds": round(publish_seconds, 3),
            "publishes_per_s": round(total / publish_seconds, 1),
            "delivered_seconds": round(delivered_seconds, 3),
            "events_per_s": round(total / delivered_seconds, 1) if complete == open_ else 0.0,
            "deliveries_per_s": round(total * open_ / delivered_seconds)
            if complete == open_
            else 0,
            "subscribers_complete": complete,
            "lost": total * open_ - received,
            "late": sum(a["late"] for a in answers),
            "missing_sample": sorted({n for a in answers for n in a["missing_sample"]})[:20],
            "waited_seconds": round(drained, 1),
            "cpu_seconds": {
                side: round(cpu_after[side] - cpu_before[side], 2) for side in cpu_after
            },
        }

    # -- readings ------------------------------------------------------------------------

    def _pushpin_processes(self) -> dict[int, str]:
        return {} if self.pushpin is None else self.pushpin.processes()

    def _sample(self) -> dict[str, Any]:
        django = h.sample(self.server.pid)
        sample: dict[str, Any] = {
            "django": {
                "rss_kib": django.rss_kib,
                "hwm_kib": peak_rss(self.server.pid),
                "threads": django.threads,
                "open_fds": django.open_fds,
            },
        }
        if self.pushpin is not None:
            services: dict[str, int] = {}
            for pid, name in self._pushpin_processes().items():
                with contextlib.suppress(OSError):
                    services[name] = services.get(name, 0) + h.sample(pid).rss_kib
            sample["pushpin"] = {
                "rss_kib": sum(services.get(name, 0) for name in PUSHPIN_SERVICES),
                "by_process_kib": services,
            }
        return sample

    def _cpu_by_process(self) -> dict[str, float]:
        """CPU seconds of Django and of each of Pushpin's processes, by name."""
        cpu = {"django": h.sample(self.server.pid).cpu_seconds}
        for pid, name in self._pushpin_processes().items():
            with contextlib.suppress(OSError):
                cpu[name] = cpu.get(name, 0.0) + h.sample(pid).cpu_seconds
        return cpu

    def _cpu(self) -> dict[str, float]:
        cpu = {"django": h.sample(self.server.pid).cpu_seconds}
        if self.pushpin is not None:
            total = 0.0
            for pid in self._pushpin_processes():
                with contextlib.suppress(OSError):
                    total += h.sample(pid).cpu_seconds
            cpu["pushpin"] = total
        return cpu

    def _settle(self) -> float:
        """Wait until Django and Pushpin have been quiet (< 5 % of a core) for a second."""
        started = time.monotonic()
        previous = self._cpu()
        while time.monotonic() - started < SETTLE_TIMEOUT:
            time.sleep(1.0)
            now = self._cpu()
            if all(now[side] - previous[side] < QUIET_CPU_FRACTION for side in now):
                break
            previous = now
        return round(time.monotonic() - started, 1)

    def _requests(self) -> dict[str, int]:
        connection = http.client.HTTPConnection(h.HOST, self.server.port, timeout=30)
        try:
            connection.request("GET", "/bench/requests/")
            counts: dict[str, int] = json.loads(connection.getresponse().read())
            return counts
        finally:
            connection.close()


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {
        key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)
    }


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def pushpin_log_summary(log: str) -> dict[str, Any]:
    """Pushpin's warnings and errors: dropped messages would show here."""
    lines = [
        line
        for line in log.splitlines()
        if "[WARN]" in line or "[ERR]" in line or "error" in line.lower()
    ]
    return {"warnings_and_errors": len(lines), "first": lines[:10]}


class Publisher:
    """``GET /pub/?data=...`` on one keep-alive connection to Django; the server's
    CLOCK_MONOTONIC just before it published."""

    # Uvicorn closes a keep-alive connection idle for 5 s (--timeout-keep-alive): one
    # idle for longer than this is replaced before it is used, never retried after.
    IDLE_REUSE = 2.0

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection(h.HOST, port, timeout=60)
        self.used = time.monotonic()

    def publish(self, data: str) -> float:
        if time.monotonic() - self.used > self.IDLE_REUSE:
            self.connection.close()  # http.client reconnects on the next request
        self.connection.request("GET", f"/pub/?data={data}", headers={"Host": h.HOST})
        response = self.connection.getresponse()
        body = response.read()
        self.used = time.monotonic()
        if response.status != 200:
            raise RuntimeError(f"publish failed: {response.status} {body[:300]!r}")
        return float(json.loads(body)["started"])

    def close(self) -> None:
        self.connection.close()


class Clients:
    """Subscribers spread over ``processes`` client processes (bench/_subscribers.py)."""

    def __init__(self, port: int, count: int, processes: int, concurrency: int) -> None:
        self.port = port
        self.count = count
        self.processes = max(1, min(processes, count))
        self.concurrency = max(1, concurrency // self.processes)
        self._workers: list[subprocess.Popen[bytes]] = []
        self.open = 0
        self.open_seconds = 0.0
        self.retried = 0
        self.failures: list[str] = []

    def __enter__(self) -> Clients:
        try:
            share, extra = divmod(self.count, self.processes)
            for n in range(self.processes):
                command = [
                    sys.executable,
                    str(h.ROOT / "bench" / "_subscribers.py"),
                    h.HOST,
                    str(self.port),
                    "/sub/",
                    str(share + (n < extra)),
                    str(self.concurrency),
                ]
                self._workers.append(
                    subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                )
            ready = [self._answer(worker) for worker in self._workers]
        except BaseException:
            self.__exit__()
            raise
        self.open = sum(answer["ready"] for answer in ready)
        self.open_seconds = max(answer["seconds"] for answer in ready)
        self.retried = sum(answer["retried"] for answer in ready)
        self.failures = [f for answer in ready for f in answer["failures"]]
        if self.open < self.count:
            self.__exit__()
            raise RuntimeError(
                f"{self.count - self.open} of {self.count} subscribers did not open: "
                f"{self.failures}"
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                self._send(worker, {"cmd": "close"})
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()

    def command(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        for worker in self._workers:
            self._send(worker, command)
        return [self._answer(worker) for worker in self._workers]

    def closed_by_server(self) -> int:
        answers = self.command({"cmd": "warm", "timeout": 0})
        return sum(answer["closed_by_server"] for answer in answers)

    @staticmethod
    def _send(worker: subprocess.Popen[bytes], command: dict[str, Any]) -> None:
        stdin: IO[bytes] | None = worker.stdin
        assert stdin is not None
        stdin.write(json.dumps(command).encode() + b"\n")
        stdin.flush()

    @staticmethod
    def _answer(worker: subprocess.Popen[bytes]) -> dict[str, Any]:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"a client process exited ({worker.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer


# -- report ----------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    env = h.environment()
    for name in (
        "django-eventstream",
        "django-grip",
        "gripcontrol",
        "pubcontrol",
        "httpx",
        "channels",
    ):
        env["packages"][name] = h._version(name)
    env["pushpin"] = {}
    for binary, flag in (("pushpin", "--version"), ("condure", "--version"), ("zurl", "--version")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            output = subprocess.run(
                [binary, flag], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            env["pushpin"][binary] = output.splitlines()[0] if output else None
    return env


def summary(run: dict[str, Any]) -> str:
    burst = run["burst"]
    text = (
        f"Django RSS {run['django_rss_idle_kib'] / MIB:.1f} -> "
        f"{run['django_rss_held_kib'] / MIB:.1f} MiB (+{run['django_rss_growth_mib']}), "
    )
    if "pushpin_rss_held_kib" in run:
        text += f"Pushpin {run['pushpin_rss_held_kib'] / MIB:.1f} MiB, "
    return text + (
        f"p50 {run['p50_ms']:.1f} p99 {run['p99_ms']:.1f} max {run['max_ms']:.1f} ms, "
        f"missed {run['missed']}, burst {burst['events']} ev at {burst['publishes_per_s']}/s "
        f"-> {burst['events_per_s']} ev/s delivered, lost {burst['lost']}, "
        f"closed {run['closed_by_server']}, "
        f"requests {run['requests']['total']}"
    )


def print_table(results: dict[str, Any]) -> None:
    print("\nmedians over events; RSS in MiB; events/s delivered to every subscriber")
    header = (
        f"{'scenario':<20} {'subs':>6} {'Dj idle':>8} {'Dj held':>8} {'growth':>7} "
        f"{'PP held':>8} {'p50':>7} {'p99':>7} {'max':>7} {'missed':>6} {'pub/s':>7} "
        f"{'ev/s':>7} {'lost':>6} {'closed':>6} {'recover':>7} {'Dj idle CPU':>11}"
    )
    print(header)
    for name, scenario in results["scenarios"].items():
        for count, run in scenario["runs"].items():
            pushpin = run.get("pushpin_rss_held_kib")
            burst = run["burst"]
            recover = run["requests"]["total"].get("recover", 0)
            print(
                f"{name:<20} {count:>6} {run['django_rss_idle_kib'] / MIB:>8.1f} "
                f"{run['django_rss_held_kib'] / MIB:>8.1f} {run['django_rss_growth_mib']:>7.1f} "
                f"{(pushpin / MIB if pushpin else math.nan):>8.1f} {run['p50_ms']:>7.1f} "
                f"{run['p99_ms']:>7.1f} {run['max_ms']:>7.1f} {run['missed']:>6} "
                f"{burst['publishes_per_s']:>7.1f} {burst['events_per_s']:>7.1f} "
                f"{burst['lost']:>6} {run['closed_by_server']:>6} {recover:>7} "
                f"{run['idle_cpu_percent']['django']:>10.1f}%"
            )
    runs = {name: scenario["runs"] for name, scenario in results["scenarios"].items()}
    ours, peer = runs.get("django_sse_pushpin", {}), runs.get("eventstream_pushpin", {})
    for count in sorted(set(ours) & set(peer), key=int):
        a, b = ours[count], peer[count]
        print(
            f"at {count}: django-eventstream / django_sse through Pushpin: p99 "
            f"{ratio(b['p99_ms'], a['p99_ms'])}, max {ratio(b['max_ms'], a['max_ms'])}; "
            f"events/s delivered django_sse / django-eventstream "
            f"{ratio(a['burst']['events_per_s'], b['burst']['events_per_s'])}"
        )
    for count, run in sorted(ours.items(), key=lambda item: int(item[0])):
        growth_ok = run["django_rss_growth_mib"] <= RSS_TARGET_MIB
        p99_ok = run["p99_ms"] < P99_TARGET_MS
        lossless = run["missed"] == 0 and run["burst"]["lost"] == 0 and not run["closed_by_server"]
        print(
            f"targets at {count}, django_sse through Pushpin: Django RSS within "
            f"{RSS_TARGET_MIB:.0f} MiB of idle {'met' if growth_ok else 'NOT met'}; p99 < "
            f"{P99_TARGET_MS:.0f} ms {'met' if p99_ok else 'NOT met'}; no loss "
            f"{'met' if lossless else 'NOT met'}"
        )


def ratio(numerator: float, denominator: float) -> str:
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
