"""Example 3: consume a demo stream from Python with django_sse's async client.

    python client_consumption.py [BASE_URL] [--events N]

Reads the production-patterns stream (Example 4), printing each event and each
decision the client makes. Stop the server in the middle and start it again: the
client waits, reconnects with Last-Event-ID and carries on with no gap.
"""

from __future__ import annotations

import argparse
import asyncio

from django_sse.client import ClientStatus, aconnect

STREAM_PATH = "/examples/production/stream/"


def report(status: ClientStatus) -> None:
    """Every decision of the client: connected, reconnecting in N s, gave up."""
    if status.state == "reconnecting":
        print(f"  (reconnecting in {status.delay:.1f} s after id {status.last_event_id or '-'})")
    else:
        print(f"  ({status.state})")


async def consume(base_url: str, count: int) -> list[int]:
    """The numbers of the first ``count`` events, printed as they arrive."""
    numbers: list[int] = []
    async with aconnect(base_url + STREAM_PATH, on_status=report, max_retries=10) as source:
        async for event in source:
            payload = event.json()
            print(f"id={event.id}  n={payload['n']}  time={payload['time']}")
            numbers.append(payload["n"])
            if len(numbers) == count:
                break
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(consume(args.base_url.rstrip("/"), args.events))


if __name__ == "__main__":
    main()
