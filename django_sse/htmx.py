"""htmx helpers: fragments that htmx 4 puts where they say, rendered off the loop.

htmx 4 swaps each unnamed event of a stream into the element that opened it, and moves
every ``<hx-partial hx-target=... hx-swap=...>`` in it to its own target: one stream
updates several parts of a page. htmx 2's SSE extension swaps named events instead
(``sse-swap="row"``): there, ``render_event(..., event="row")`` is all it takes. See
docs/htmx.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_sse._render import render_event
from django_sse.protocol import Event

__all__ = ["SWAP_STYLES", "hx_partial", "render_partial"]

# htmx 4's swap styles (htmx 2's, plus its morphs and text), and the short names it reads
# as four of them (before, prepend, append, after).
SWAP_STYLES = frozenset(
    {
        "innerHTML",
        "outerHTML",
        "beforebegin",
        "afterbegin",
        "beforeend",
        "afterend",
        "before",
        "prepend",
        "append",
        "after",
        "delete",
        "none",
        "textContent",
        "innerMorph",
        "outerMorph",
        "upsert",
    }
)
# A modifier after the style: "outerHTML transition:true", "beforeend scroll:bottom".
_MODIFIER = re.compile(r"[A-Za-z-]+:[\w#.:-]+")


def hx_partial(html: str, *, target: str, swap: str = "outerHTML") -> SafeString:
    """``html`` wrapped for htmx 4 to put at ``target`` (a CSS selector) with ``swap``.

    Both attribute values are escaped, so no value can end the tag early; a swap whose
    style htmx does not know raises ValueError naming it.
    """
    _check_swap(swap)
    if not target.strip():
        raise ValueError("hx_partial() needs a target: a CSS selector such as '#row-3'")
    return format_html(
        '<hx-partial hx-target="{}" hx-swap="{}">{}</hx-partial>',
        target,
        swap,
        SafeString(html),
    )


async def render_partial(
    template_name: str,
    context: Mapping[str, Any] | None = None,
    *,
    target: str,
    swap: str = "outerHTML",
    request: HttpRequest | None = None,
    id: str | None = None,
) -> Event:
    """An unnamed event (which htmx 4 swaps) holding ``template_name`` rendered as for
    render_event() and wrapped by hx_partial()."""
    rendered = await render_event(template_name, context, request=request)
    return Event(data=hx_partial(rendered.data, target=target, swap=swap), id=id)


def _check_swap(swap: str) -> None:
    style, *modifiers = swap.split() or [""]
    if style not in SWAP_STYLES or not all(_MODIFIER.fullmatch(m) for m in modifiers):
        raise ValueError(
            f"hx-swap {swap!r} is not an htmx swap: a style ({', '.join(sorted(SWAP_STYLES))}) "
            "and modifiers such as 'transition:true'"
        )
