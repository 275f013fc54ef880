"""render_event(): a template, or a template partial, rendered as an event's data.

Rendering reads the database whenever the context holds a queryset, and the ORM refuses
to run on the event loop (SynchronousOnlyOperation): so the template renders in a worker
thread that closes its connections after, like every other database call of a stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from django_sse._workers import in_worker
from django_sse.protocol import Event

__all__ = ["render_event"]


async def render_event(
    template_name: str,
    context: Mapping[str, Any] | None = None,
    *,
    request: HttpRequest | None = None,
    event: str | None = None,
    id: str | None = None,
) -> Event:
    """An Event whose data is ``template_name`` rendered with ``context``.

    ``template_name`` may name a partial (``"rooms/room.html#message"``, Django 6.0+).
    With ``request``, the context processors run, as with ``render()``; autoescaping is
    Django's. HTML of several lines goes out as several ``data:`` lines, which clients
    join back with line breaks.
    """
    html = await in_worker(render_to_string, template_name, context, request)
    return Event(data=html, event=event, id=id)
