"""Channel names and the event ids of single- and multi-channel streams."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_sse.broadcast._channels import (
    MAX_NAME_LENGTH,
    format_id,
    group_name,
    parse_id,
    validate_channels,
)
from django_sse.protocol import MAX_LAST_EVENT_ID

names = st.from_regex(r"[A-Za-z0-9_.-]{1,80}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**63 - 1)


@given(st.dictionaries(names, seqs, min_size=1, max_size=8))
def test_an_id_parses_back_to_its_positions(positions: dict[str, int]) -> None:
    channels = tuple(positions)
    assert parse_id(format_id(positions), channels) == positions


def test_single_and_multi_channel_ids() -> None:
    assert format_id({"chat": 12}) == "12"
    assert format_id({"chat": 12, "news": 5}) == "chat:12,news:5"
    assert parse_id("12", ("chat",)) == {"chat": 12}
    assert parse_id("chat:12", ("chat",)) == {"chat": 12}
    assert parse_id("news:5,gone:3", ("chat", "news")) == {"news": 5}


@pytest.mark.parametrize(
    "value",
    ["", "x", "-1", "+1", "1e3", "\u0661", "1" * 20, "a:1,", ",a:1", "a:1,b", "a b:1", "a:x"],
)
def test_malformed_ids(value: str) -> None:
    assert parse_id(value, ("a", "b")) is None


def test_a_bare_number_cannot_resume_several_channels() -> None:
    assert parse_id("3", ("a", "b")) is None


def test_channels_are_deduplicated_in_order() -> None:
    assert validate_channels(["b", "a", "b"]) == ("b", "a")


def test_a_str_is_not_a_list_of_channels() -> None:
    with pytest.raises(TypeError, match="not the str 'chat'"):
        validate_channels("chat")


def test_the_longest_id_fits_the_last_event_id_limit() -> None:
    widest = [f"{n:0{MAX_NAME_LENGTH}}" for n in range(11)]
    channels = validate_channels(widest[:10])
    assert len(format_id(dict.fromkeys(channels, 2**63 - 1))) <= MAX_LAST_EVENT_ID
    with pytest.raises(ValueError, match="Too many channels"):
        validate_channels(widest)


def test_group_names_stay_within_what_channels_allows() -> None:
    assert len(group_name("x" * MAX_NAME_LENGTH)) < 100
