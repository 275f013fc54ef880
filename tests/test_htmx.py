"""django_sse.htmx: partials wrapped so their markup cannot be broken from a value."""

from __future__ import annotations

import pytest

from django_sse.htmx import hx_partial, render_partial


def test_a_partial_says_where_and_how() -> None:
    assert hx_partial('<tr id="row-3"></tr>', target="#row-3") == (
        '<hx-partial hx-target="#row-3" hx-swap="outerHTML"><tr id="row-3"></tr></hx-partial>'
    )
    assert 'hx-swap="beforeend scroll:bottom"' in hx_partial(
        "<li>x</li>", target="#log", swap="beforeend scroll:bottom"
    )


@pytest.mark.parametrize("swap", ["before", "prepend", "append scroll:bottom", "after"])
def test_htmx_4s_short_names_of_the_insert_swaps_are_taken(swap: str) -> None:
    assert f'hx-swap="{swap}"' in hx_partial("<li>x</li>", target="#log", swap=swap)


def test_a_target_cannot_end_the_tag() -> None:
    wrapped = hx_partial("<p>x</p>", target='#a"><script>alert(1)</script>')
    assert "<script>" not in wrapped
    assert 'hx-target="#a&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in wrapped


@pytest.mark.parametrize(
    "swap", ["", "sideways", 'outerHTML" onclick="x', "beforeend <b>", "innerHTML transition"]
)
def test_a_swap_htmx_does_not_know_is_refused_by_name(swap: str) -> None:
    with pytest.raises(ValueError, match="is not an htmx swap") as refused:
        hx_partial("<p>x</p>", target="#t", swap=swap)
    assert repr(swap) in str(refused.value)


def test_a_partial_needs_a_target() -> None:
    with pytest.raises(ValueError, match="needs a target"):
        hx_partial("<p>x</p>", target=" ")


async def test_render_partial_wraps_a_rendered_template() -> None:
    event = await render_partial(
        "render/users.html", {"users": [], "note": "<i>"}, target="#users", id="9"
    )
    assert event.event is None  # unnamed: htmx 4 swaps it
    assert event.id == "9"
    assert event.data.startswith('<hx-partial hx-target="#users" hx-swap="outerHTML"><ul id')
    assert "&lt;i&gt;" in event.data
    assert event.data.endswith("</hx-partial>")
