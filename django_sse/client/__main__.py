"""``python -m django_sse.client URL``: print a stream's events as they arrive."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import httpx

from django_sse.client._policy import SSEConnectionError, SSEResponseError
from django_sse.client._redirects import SSERedirectError
from django_sse.client._sync import connect
from django_sse.protocol import MessageEvent

# What ends a run with "error: ..." and status 1; anything else is a bug worth a traceback.
FAILURES = (
    SSEResponseError,
    SSEConnectionError,
    SSERedirectError,
    httpx.HTTPError,
    httpx.InvalidURL,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_sse.client",
        description="Print the events of a Server-Sent Events stream, reconnecting as needed.",
    )
    parser.add_argument("url", type=_http_url)
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME: VALUE", help="repeatable"
    )
    parser.add_argument("--last-event-id", default="", help="resume after this id")
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument("--max-retries", type=int, default=None)
    parser.add_argument("--limit", type=_positive, default=None, help="stop after this many events")
    parser.add_argument("--no-reconnect", action="store_true")
    args = parser.parse_args(argv)
    headers = {}
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            parser.error(f"--header takes 'Name: value', not {header!r}")
        if not header.isascii():
            # HTTP has no agreed encoding for other text in a header.
            parser.error(f"--header takes ASCII only, not {header!r}")
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
    except FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _http_url(text: str) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number from 1 up, not {text!r}")
    return number


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
