"""``python -m django_sse.client URL``: print a stream's events as they arrive."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import httpx

from django_sse.client._policy import SSEConnectionError, SSEResponseError
from django_sse.client._sync import connect
from django_sse.protocol import MessageEvent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_sse.client",
        description="Print the events of a Server-Sent Events stream, reconnecting as needed.",
    )
    parser.add_argument("url")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME: VALUE", help="repeatable"
    )
    parser.add_argument("--last-event-id", default="", help="resume after this id")
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument("--max-retries", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    parser.add_argument("--no-reconnect", action="store_true")
    args = parser.parse_args(argv)
    headers = {}
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            parser.error(f"--header takes 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    try:
        with connect(
            args.url,
            headers=headers,
            last_event_id=args.last_event_id,
            max_retries=args.max_retries,
            reconnect=not args.no_reconnect,
        ) as source:
            for count, event in enumerate(source, start=1):
                print(_format(event, as_json=args.json), flush=True)
                if count == args.limit:
                    break
    except (SSEResponseError, SSEConnectionError, httpx.TransportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _format(event: MessageEvent, *, as_json: bool) -> str:
    if as_json:
        fields = {"event": event.event, "data": event.data, "id": event.id}
        return json.dumps(fields, ensure_ascii=False)
    lines = [f"event: {event.event}"] if event.event != "message" else []
    if event.id:
        lines.append(f"id: {event.id}")
    lines += [f"data: {line}" for line in event.data.split("\n")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
