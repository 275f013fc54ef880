"""Publish one broadcast event from the command line (deploy hooks, cron, debugging)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_sse.broadcast import publish
from django_sse.broadcast.models import BroadcastChannel
from django_sse.management.commands._common import migrated


class Command(BaseCommand):
    help = "Publish an event to a broadcast channel and print its sequence number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help="The channel to publish to.")
        parser.add_argument("data", help="The event's data: text, or JSON with --json.")
        parser.add_argument("--event", help="The SSE event type (default: message).")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Parse DATA as JSON; it is sent re-encoded, compactly.",
        )

    def handle(
        self, *args: Any, channel: str, data: str, event: str | None, as_json: bool, **options: Any
    ) -> None:
        value: Any = data
        if as_json:
            try:
                value = json.loads(data)
            except ValueError as error:
                raise CommandError(f"DATA is not valid JSON: {error}") from error
            except RecursionError:
                # Python's parser recurses once per level of arrays and objects.
                raise CommandError("DATA is nested too deeply to be parsed as JSON") from None
        try:
            with migrated(BroadcastChannel):
                seq = publish(channel, value, event=event)
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(str(seq))
