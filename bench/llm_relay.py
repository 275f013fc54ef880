"""LLM relay: what ChatView adds between a model's tokens and the client.

Why: a chat view must relay each token as it comes, start the answer about as soon as
the model does, and stop the model (and its billing) as soon as the reader leaves.
Targets: per-token relay latency p99 under 2 ms, time to first token added by our stack
under 5 ms, client disconnect to upstream connection closed under 200 ms.

The upstream is ``tests/llm/upstream.py``, a local server speaking OpenAI's streaming
chat-completions format, on a thread of this process; Django (``bench/llmsite.py``: a
``ChatView`` in the native format, ``OpenAIProvider`` on the official SDK, StreamLog rows
in sqlite, CSRF middleware) runs in one server process started afresh for the run; the
client is httpx in this process's main thread. The upstream stamps each token with
``time.perf_counter()`` once its bytes are in the kernel, and the client stamps each read
the same way: one clock, so receipt - write is the token's trip through Django.

1. Relay latency. ``slow-20-200``: a token every 20 ms, 200 of them, each relayed alone:
   the stack's own latency per token; the target applies here. ``fast-2000``: 2,000 tokens
   written as fast as Django reads them: latency under load, mostly time queued behind
   earlier tokens, reported for information with the relay rate and the server's CPU per
   token. Per run: p50, p99 and max over tokens; reported: medians over runs.
2. Time to first token added. The same client, warm keep-alive connections on both sides
   (the site keeps one provider, so one connection pool, per scenario), from sending the
   request to reading the first content token: through ChatView, through the same
   answer from a view written without django_sse (``bare``, see llmsite.py), and from
   the upstream directly (the request the SDK sends). Each round takes the three in a
   rotating order; added = the median of the rounds' differences from the direct
   request. The same clock also splits each time: until the
   upstream has the request, and from its writing the first token to the client reading
   it. ``slow-20-5``: the first token comes alone, 20 ms after the request, as a model
   sends it; the target applies here. ``answer``: a recorded reply written all at once,
   for information: its first token reaches Django together with all the others.
3. Cancel. Read 3 tokens of ``slow-20``, close the connection (t0 just before closing),
   then wait for the upstream to see its connection from Django close: ``closed_at - t0``.

Each phase warms up first (untimed). Results: bench/results/llm_relay.json
(``llm_relay.daphne.json`` with ``--server daphne``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import _harness as h
import httpx

sys.path.insert(0, str(h.ROOT))  # for tests.llm.upstream, when run as bench/llm_relay.py

from django_sse.protocol import EventParser, MessageEvent
from tests.llm.upstream import RequestRecord, Upstream

APP = "bench.llmsite:application"
Request = AbstractContextManager[httpx.Response]  # a streamed request, not yet sent
FAST, SLOW = "fast-2000", "slow-20-200"
TTFT_SCENARIOS = ("slow-20-5", "answer")
TTFT_TARGET = "slow-20-5"  # the target applies to a first token that comes alone
CANCEL_SCENARIO = "slow-20"  # 500 tokens, 10 s, if nothing cancels it
CANCEL_AFTER_TOKENS = 3

TARGET_RELAY_P99_MS = 2.0
TARGET_ADDED_TTFT_MS = 5.0
TARGET_CANCEL_MS = 200.0

REQUEST_TIMEOUT = 30.0  # seconds, per read and per response
TOKEN = re.compile(r"t(\d+) ")
BODY = {"messages": [{"role": "user", "content": "Hello"}]}
DIRECT_BODY = {
    "model": "bench-model",
    "messages": BODY["messages"],
    "stream": True,
    "stream_options": {"include_usage": True},
}

TTFT_DESCRIPTIONS = {
    "answer": "a recorded answer written at once: the first token comes with all the others",
    "slow-20-5": "the first token 20 ms after the request, alone, as a model sends it",
}
RELAY_DESCRIPTIONS = {
    SLOW: "a token every 20 ms: the relay's own latency per token (the target applies)",
    FAST: "2,000 tokens as fast as Django reads them: latency under load, mostly queueing",
}


def main() -> int:
    args = parse_args()
    h.exit_on_sigterm()
    print(
        f"llm_relay on {args.server}: relay {args.relay_runs} runs, time to first token "
        f"{args.ttft_runs} runs, cancel {args.cancel_runs} runs"
    )
    results: dict[str, Any] = {
        "benchmark": "llm_relay",
        "command": h.command_line(),
        "date": h.now_iso(),
        "environment": h.environment(),
        "server": args.server,
        "targets_ms": {
            "relay_p99": TARGET_RELAY_P99_MS,
            "added_time_to_first_token": TARGET_ADDED_TTFT_MS,
            "cancel": TARGET_CANCEL_MS,
        },
    }
    with tempfile.TemporaryDirectory(prefix="llm-relay-") as directory:
        env = {"BENCH_DB": str(Path(directory) / "streamlog.sqlite3")}
        h.migrate("bench.llmsite", env)
        # The upstream thread is started before the server is forked. It then waits in
        # epoll with no request in flight and holds no lock the child could need between
        # fork and exec (the harness's preexec_fn only calls prctl).
        with Upstream.in_thread() as upstream:
            env["BENCH_UPSTREAM"] = upstream.url
            with h.Server(args.server, APP, env) as server:
                site = Site(f"http://{h.HOST}:{server.port}")
                try:
                    results["relay"] = {
                        scenario: relay(site, upstream, server.pid, scenario, args.relay_runs)
                        for scenario in (SLOW, FAST)
                    }
                    results["time_to_first_token"] = {
                        scenario: time_to_first_token(site, upstream, scenario, args.ttft_runs)
                        for scenario in TTFT_SCENARIOS
                    }
                    results["cancel"] = cancel(site, upstream, args.cancel_runs)
                finally:
                    site.close()
                results["server_tracebacks"] = server.tracebacks()
                results["server_errors"] = server.errors()
            results["upstream_errors"] = [repr(error) for error in upstream.errors]
    print_report(results)
    h.write_results(args.output, results)
    print(f"\nwrote {h.display_path(args.output)}")
    if results["server_tracebacks"] or results["upstream_errors"]:
        print("the server or the upstream logged errors: see the JSON file")
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=h.SERVERS, default="uvicorn")
    parser.add_argument("--relay-runs", type=int, default=10, help="runs per relay scenario")
    parser.add_argument("--ttft-runs", type=int, default=20,
                        help="rounds per time-to-first-token scenario")  # fmt: skip
    parser.add_argument("--cancel-runs", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if min(args.relay_runs, args.ttft_runs, args.cancel_runs) < 1:
        parser.error("every --*-runs must be at least 1")
    args.output = (args.output or h.default_output("llm_relay", args.server)).resolve()
    return args


class Site:
    """Keep-alive clients: one to Django (with a CSRF cookie and its header), one to the
    upstream directly."""

    def __init__(self, url: str) -> None:
        csrf = secrets.token_hex(16)
        self.url = url
        self.django = httpx.Client(
            timeout=REQUEST_TIMEOUT, cookies={"csrftoken": csrf}, headers={"X-CSRFToken": csrf}
        )
        self.direct = httpx.Client(
            timeout=REQUEST_TIMEOUT, headers={"Authorization": "Bearer bench-unused"}
        )

    def chat(
        self, scenario: str, client: httpx.Client | None = None, view: str = "chat"
    ) -> Request:
        """POST the conversation to ChatView (or to the view written without django_sse,
        ``view="bare"``): a context manager giving the response."""
        url = f"{self.url}/{view}/{scenario}/"
        return (client or self.django).stream("POST", url, json=BODY)

    def upstream(self, upstream: Upstream, scenario: str) -> Request:
        """The same conversation straight to the upstream, as the SDK would send it."""
        url = f"{upstream.base_url(scenario)}/chat/completions"
        return self.direct.stream("POST", url, json=DIRECT_BODY)

    def close(self) -> None:
        self.django.close()
        self.direct.close()


def events(response: httpx.Response) -> Iterator[tuple[float, MessageEvent]]:
    """Each SSE event of the response with the perf_counter() of the read that completed it.

    Bounded: the response ends, a read times out, or REQUEST_TIMEOUT passes in all.
    """
    if response.status_code != 200:
        response.read()
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    parser = EventParser()
    deadline = time.perf_counter() + REQUEST_TIMEOUT
    for raw in response.iter_raw():
        now = time.perf_counter()
        for event in parser.feed(raw):
            yield now, event
        if now > deadline:
            raise TimeoutError(f"the response took over {REQUEST_TIMEOUT} s")


def checked(event: MessageEvent) -> MessageEvent:
    if event.event == "error":
        raise RuntimeError(f"the stream ended with an error: {event.data}")
    return event


# 1. Relay latency.


def relay(site: Site, upstream: Upstream, pid: int, scenario: str, runs: int) -> dict[str, Any]:
    relay_once(site, upstream, pid, scenario)  # warm-up: the scenario's provider and pool
    per_run = [relay_once(site, upstream, pid, scenario) for _ in range(runs)]
    summary = {key: median(per_run, key) for key in ("p50_ms", "p99_ms", "max_ms")}
    summary |= {
        "tokens_per_second": median(per_run, "tokens_per_second"),
        "server_cpu_us_per_token": median(per_run, "server_cpu_us_per_token"),
        "worst_max_ms": max(run["max_ms"] for run in per_run),
    }
    print(f"  relay {scenario:<12} {fmt(summary, 'p50_ms', 'p99_ms', 'max_ms')}")
    return {"description": RELAY_DESCRIPTIONS[scenario], **summary, "runs": per_run}


def relay_once(site: Site, upstream: Upstream, pid: int, scenario: str) -> dict[str, Any]:
    first = len(upstream.requests)
    received: dict[int, float] = {}
    done = False
    cpu_before = h.sample(pid).cpu_seconds
    with site.chat(scenario) as response:
        for now, event in events(response):
            if checked(event).event == "token":
                for match in TOKEN.finditer(event.json()["text"]):
                    received[int(match[1])] = now
            done = done or event.event == "done"
    cpu = h.sample(pid).cpu_seconds - cpu_before
    record = finished(upstream, first)
    written = record.token_times
    if not done or sorted(received) != list(range(len(written))) or not written:
        raise RuntimeError(
            f"{scenario}: got {len(received)} tokens of {len(written)} written (done: {done})"
        )
    latencies = sorted((received[i] - at) * 1000 for i, at in enumerate(written))
    return {
        "tokens": len(written),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3),
        "min_ms": round(latencies[0], 3),
        "tokens_per_second": round(len(written) / (received[len(written) - 1] - written[0])),
        # The whole request's server CPU (request, SDK, StreamLog...), per token.
        "server_cpu_us_per_token": round(cpu / len(written) * 1e6, 1),
    }


def finished(upstream: Upstream, index: int) -> RequestRecord:
    record = upstream.wait_request_sync(index)
    record.wait_finished_sync(timeout=REQUEST_TIMEOUT)
    if not record.completed:
        raise RuntimeError(f"the upstream's answer did not complete: {record!r}")
    return record


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of them at or below it."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# 2. Time to first token.


def time_to_first_token(site: Site, upstream: Upstream, scenario: str, runs: int) -> dict[str, Any]:
    def token(event: MessageEvent) -> bool:
        return checked(event).event == "token"

    paths: dict[str, Callable[[], dict[str, float]]] = {
        "direct": lambda: first_token(upstream, site.upstream(upstream, scenario), is_content),
        "django": lambda: first_token(upstream, site.chat(scenario), token),
        "bare": lambda: first_token(upstream, site.chat(scenario, view="bare"), token),
    }
    for _ in range(3):  # warm-up: connections on both sides, the providers, imports
        for measure in paths.values():
            measure()
    names = list(paths)
    rounds = []
    for run in range(runs):
        order = names[run % 3 :] + names[: run % 3]  # none of them always goes first
        rounds.append({name: paths[name]() for name in order})
    summary: dict[str, Any] = {"description": TTFT_DESCRIPTIONS[scenario]}
    for name in names:
        for key in ("ttft_ms", "to_upstream_ms", "first_token_relay_ms"):
            summary[f"{name}_{key}"] = median([each[name] for each in rounds], key)
    for name, prefix in (("django", ""), ("bare", "bare_")):
        added = [each[name]["ttft_ms"] - each["direct"]["ttft_ms"] for each in rounds]
        summary[f"{prefix}added_ms"] = round(statistics.median(added), 3)
        summary[f"{prefix}added_max_ms"] = round(max(added), 3)
    shown = fmt(summary, "django_ttft_ms", "direct_ttft_ms", "added_ms", "bare_added_ms")
    print(f"  time to first token {scenario:<10} {shown}")
    return {**summary, "runs": rounds}


def first_token(
    upstream: Upstream, request: Request, is_token: Callable[[MessageEvent], bool]
) -> dict[str, float]:
    """From sending the request to reading its first token, and where the time went: until
    the upstream had the request, and from the upstream writing the token to its receipt.

    Reads to the end, so the connection goes back to the pool.
    """
    index = len(upstream.requests)
    started = time.perf_counter()
    first: float | None = None
    with request as response:
        for now, event in events(response):
            if first is None and is_token(event):
                first = now
    if first is None:
        raise RuntimeError("the answer had no token")
    record = finished(upstream, index)
    return {
        "ttft_ms": round((first - started) * 1000, 3),
        "to_upstream_ms": round((record.received_at - started) * 1000, 3),
        "first_token_relay_ms": round((first - record.token_times[0]) * 1000, 3),
    }


def is_content(event: MessageEvent) -> bool:
    if event.data == "[DONE]":
        return False
    choices = json.loads(event.data).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


# 3. Cancel.


def cancel(site: Site, upstream: Upstream, runs: int) -> dict[str, Any]:
    cancel_once(site, upstream)  # warm-up
    per_run = [cancel_once(site, upstream) for _ in range(runs)]
    summary = {
        "median_ms": median(per_run, "cancel_ms"),
        "max_ms": max(run["cancel_ms"] for run in per_run),
    }
    print(f"  cancel {fmt(summary, *summary)}")
    return {**summary, "runs": per_run}


def cancel_once(site: Site, upstream: Upstream) -> dict[str, Any]:
    """A fresh connection, so that closing the response closes the socket."""
    first = len(upstream.requests)
    tokens = 0
    closing: float | None = None
    client = httpx.Client(
        timeout=REQUEST_TIMEOUT, cookies=site.django.cookies, headers=site.django.headers
    )
    with client, site.chat(CANCEL_SCENARIO, client) as response:
        for _, event in events(response):
            tokens += checked(event).event == "token"
            if tokens >= CANCEL_AFTER_TOKENS:
                closing = time.perf_counter()
                break
    if closing is None:
        raise RuntimeError(f"{CANCEL_SCENARIO} ended before {CANCEL_AFTER_TOKENS} tokens")
    record = upstream.wait_request_sync(first)
    record.wait_closed_sync(timeout=REQUEST_TIMEOUT)
    assert record.closed_at is not None
    if not record.client_closed:
        raise RuntimeError(f"the upstream closed the connection, not Django: {record!r}")
    return {
        "cancel_ms": round((record.closed_at - closing) * 1000, 3),
        "tokens_read": tokens,
        "tokens_written": record.tokens_written,
    }


# Report.


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(row[key] for row in rows)), 3)


def fmt(summary: dict[str, Any], *keys: str) -> str:
    return "  ".join(f"{key} {summary[key]:.3f}" for key in keys)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def print_report(results: dict[str, Any]) -> None:
    relay_rows, ttft_rows = results["relay"], results["time_to_first_token"]
    print(f"\n{results['server']}: relay latency, upstream write -> client receipt "
          "(ms; per run over its tokens, then the median over runs)")  # fmt: skip
    print(f"{'scenario':<12} {'tokens':>6} {'p50':>8} {'p99':>8} {'max':>8} "
          f"{'tokens/s':>9} {'server CPU/token':>17}")  # fmt: skip
    for scenario, row in relay_rows.items():
        print(
            f"{scenario:<12} {row['runs'][0]['tokens']:>6} {row['p50_ms']:>8.3f} "
            f"{row['p99_ms']:>8.3f} {row['max_ms']:>8.3f} {row['tokens_per_second']:>9,.0f} "
            f"{row['server_cpu_us_per_token']:>14,.0f} us"
        )
        print(f"  {row['description']}")
    print("\ntime to first token, request sent -> first token read (ms, medians); the same")
    print("clock splits it: sent -> upstream has the request, upstream wrote it -> read")
    print(f"{'scenario':<12} {'':<7} {'total':>8} {'to upstream':>12} {'relay':>8}")
    for scenario, row in ttft_rows.items():
        for path, label in (("direct", "direct"), ("django", "ours"), ("bare", "bare")):
            print(
                f"{scenario if path == 'direct' else '':<12} {label:<7} "
                f"{row[f'{path}_ttft_ms']:>8.3f} {row[f'{path}_to_upstream_ms']:>12.3f} "
                f"{row[f'{path}_first_token_relay_ms']:>8.3f}"
            )
        for prefix, label in (("", "ours"), ("bare_", "bare")):
            print(
                f"{'':<12} {'added':<7} {row[f'{prefix}added_ms']:>8.3f}  {label} (median of "
                f"the rounds' differences; max {row[f'{prefix}added_max_ms']:.3f})"
            )
        print(f"  {row['description']}")
    cancel_row = results["cancel"]
    print(
        f"\ncancel, client closes -> upstream connection closed: median "
        f"{cancel_row['median_ms']:.1f} ms, max {cancel_row['max_ms']:.1f} ms "
        f"({len(cancel_row['runs'])} runs)"
    )
    slow_p99, fast_p99 = relay_rows[SLOW]["p99_ms"], relay_rows[FAST]["p99_ms"]
    added, burst = ttft_rows[TTFT_TARGET]["added_ms"], ttft_rows["answer"]["added_ms"]
    cancelled = cancel_row["median_ms"]
    lines = [
        f"relay p99 < {TARGET_RELAY_P99_MS:g} ms, {SLOW}: {slow_p99:.3f} ms, "
        f"{verdict(slow_p99 < TARGET_RELAY_P99_MS)}  ({FAST}, under load: {fast_p99:.1f} ms)",
        f"added time to first token < {TARGET_ADDED_TTFT_MS:g} ms, {TTFT_TARGET}: "
        f"{added:.3f} ms, {verdict(added < TARGET_ADDED_TTFT_MS)}  "
        f"(answer, in one burst: {burst:.3f} ms)",
        f"cancel < {TARGET_CANCEL_MS:g} ms: median {cancelled:.1f} ms, "
        f"{verdict(cancelled < TARGET_CANCEL_MS)}  (max {cancel_row['max_ms']:.1f} ms)",
    ]
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
