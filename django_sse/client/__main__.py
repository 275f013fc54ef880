"""``python -m django_sse.client URL``: print a stream's events as they arrive."""

from __future__ import annotations

import argparse
import codecs
import io
import json
import os
import sys
from collections.abc import Callable, Sequence

import httpx

from django_sse.client._options import SourceOptions, check_url
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
    # A negative count gave up at the first reconnection, "after -1 attempt(s)".
    parser.add_argument("--max-retries", type=_at_least(0), default=None)
    parser.add_argument(
        "--limit", type=_at_least(1), default=None, help="stop after this many events"
    )
    parser.add_argument("--no-reconnect", action="store_true")
    args = parser.parse_args(argv)
    headers = {}
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            parser.error(f"--header takes 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    options = {
        "headers": headers,
        "last_event_id": args.last_event_id,
        "max_retries": args.max_retries,
        "reconnect": not args.no_reconnect,
    }
    try:
        SourceOptions(**options)  # as connect() checks them, to fail as a usage error
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    # An output in a legacy code page (a Windows console or file, a Latin-1 locale)
    # cannot carry every character an event may hold: printing one raised in the middle
    # of the stream. JSON lines escape them instead, and text shows them as escapes.
    as_ascii = codecs.lookup(sys.stdout.encoding or "ascii").name != "utf-8"
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        with connect(args.url, **options) as source:
            for count, event in enumerate(source, start=1):
                print(_format(event, as_json=args.json, as_ascii=as_ascii), flush=True)
                if count == args.limit:
                    break
    except FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`| head -3`): the end of the run, not a failure to report.
        # stdout goes nowhere from here on, or flushing it at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a pipeline's writer
    return 0


def _http_url(text: str) -> str:
    """The URL, checked as ``connect()`` checks it, to fail as a usage error: a request
    to it would fail at once, or reach another port."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({exc})") from None
    try:
        check_url(url)
    except httpx.UnsupportedProtocol:
        raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {text!r}") from None
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None  # it names the URL and why
    return text


def _at_least(least: int) -> Callable[[str], int]:
    """The type of an option that takes a whole number from ``least`` up."""

    def whole_number(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = least - 1
        if number < least:
            raise argparse.ArgumentTypeError(f"takes a whole number from {least} up, not {text!r}")
        return number

    return whole_number


def _format(event: MessageEvent, *, as_json: bool, as_ascii: bool) -> str:
    if as_json:
        fields = {"event": event.event, "data": event.data, "id": event.id}
        return json.dumps(fields, ensure_ascii=as_ascii)
    lines = [f"event: {event.event}"] if event.event != "message" else []
    if event.id:
        lines.append(f"id: {event.id}")
    lines += [f"data: {line}" for line in event.data.split("\n")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
