"""Resumable generations: one upstream call, any number of streams, resume, stop."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from django_sse.broadcast import _history
from django_sse.llm import Message, _records, astop, get_provider
from django_sse.llm._generation import RunningGeneration
from django_sse.llm.models import Generation
from django_sse.protocol import MessageEvent
from tests.llm.support import HELLO, SPLIT_PAIRS_TEXT, Answer, post, provider_at
from tests.llm.upstream import Upstream, recorded_text

pytestmark = pytest.mark.django_db(transaction=True)


async def start(upstream: Upstream, scenario: str) -> dict[str, Any]:
    with provider_at(upstream.base_url(scenario)):
        response = await post("/llm/resumable/", HELLO)
    assert response.status_code == 201, response.content
    started: dict[str, Any] = response.json()
    assert started["stream_url"] == f"/llm/resumable/{started['id']}/"
    assert started["stop_url"] == f"/llm/resumable/{started['id']}/stop/"
    return started


def text(events: list[MessageEvent]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "token")


async def test_the_answer_streams_from_its_beginning(upstream: Upstream) -> None:
    started = await start(upstream, "answer")
    answer = await Answer.follow(started["stream_url"])
    events = await answer.rest()  # the stream ends after the answer's last event
    assert events[0].event == "start"
    assert events[0].json() == {"model": "gpt-4o-mini"}
    assert text(events) == recorded_text("answer")
    assert events[-1].event == "done"
    assert events[-1].json()["finish_reason"] == "stop"
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    assert len(upstream.requests) == 1
    assert (
        answer.response.stats.completion_tokens == events[-1].json()["usage"]["completion_tokens"]
    )


async def test_a_dropped_stream_resumes_mid_answer_exactly_once(upstream: Upstream) -> None:
    started = await start(upstream, "slow-20-40")
    first = await Answer.follow(started["stream_url"])
    before = (await first.read(4))[:4]
    await first.leave()
    resumed = await Answer.follow(started["stream_url"], last_event_id=before[-1].id)
    after = await resumed.rest()
    events = before + after
    assert text(events) == "".join(f"t{i} " for i in range(40))
    assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    assert len(upstream.requests) == 1


async def test_another_tab_watches_the_same_answer(upstream: Upstream) -> None:
    started = await start(upstream, "slow-20-20")
    one, two = (
        await Answer.follow(started["stream_url"]),
        await Answer.follow(started["stream_url"]),
    )
    assert text(await one.rest()) == text(await two.rest()) == "".join(f"t{i} " for i in range(20))
    assert len(upstream.requests) == 1


async def test_stop_ends_the_answer_and_the_upstream_request(upstream: Upstream) -> None:
    started = await start(upstream, "slow-20")
    answer = await Answer.follow(started["stream_url"])
    await answer.read(3)
    stopped = await AsyncClient().post(started["stop_url"])
    assert stopped.status_code == 202
    events = await answer.rest()
    assert events[-1].event == "done"
    assert events[-1].json()["finish_reason"] == "stopped"
    request = upstream.requests[0]
    await request.wait_closed(timeout=1.0)
    assert request.client_closed
    assert request.tokens_written < upstream.slow_max_tokens


async def test_after_the_end_a_reconnect_gets_204(upstream: Upstream) -> None:
    started = await start(upstream, "answer")
    events = await (await Answer.follow(started["stream_url"])).rest()
    late = await AsyncClient().get(started["stream_url"], headers={"Last-Event-ID": events[-1].id})
    assert late.status_code == 204
    replayed = await Answer.follow(started["stream_url"], last_event_id=events[-3].id)
    assert [e.id for e in await replayed.rest()] == [e.id for e in events[-2:]]


@pytest.mark.parametrize("last_event_id", ["abc", "-1", "1.5", "1e3"])
async def test_an_id_that_names_no_position_reads_from_the_beginning(
    upstream: Upstream, last_event_id: str
) -> None:
    """A hand-set or stale id: a reset, then only what came next (after the end, nothing
    and no end) would lose the answer the docs promise every new follower."""
    started = await start(upstream, "answer")
    whole = await (await Answer.follow(started["stream_url"])).rest()
    again = await (await Answer.follow(started["stream_url"], last_event_id=last_event_id)).rest()
    assert [(e.event, e.data, e.id) for e in again] == [(e.event, e.data, e.id) for e in whole]


async def test_provider_errors_end_the_answer(upstream: Upstream) -> None:
    started = await start(upstream, "unauthorized")
    events = await (await Answer.follow(started["stream_url"])).rest()
    assert [e.event for e in events] == ["start", "error"]
    assert events[-1].json()["code"] == "authentication"


async def test_an_emoji_cut_in_two_halves_is_published_whole(upstream: Upstream) -> None:
    """Half a pair (or a NUL) could not be published: the answer stopped there, and its
    followers waited for an end that never came."""
    started = await start(upstream, "split-pairs")
    events = await (await Answer.follow(started["stream_url"])).rest()
    assert text(events) == SPLIT_PAIRS_TEXT
    assert events[-1].event == "done"
    row = await Generation.objects.aget(pk=started["id"])
    assert row.outcome == "completed"


@pytest.mark.parametrize("generation", ["nope", "A" * 22])
async def test_unknown_generations_are_404(generation: str) -> None:
    stream = await AsyncClient().get(f"/llm/resumable/{generation}/")
    stop = await AsyncClient().post(f"/llm/resumable/{generation}/stop/")
    assert (stream.status_code, stop.status_code) == (404, 404)
    assert stream.json()["error"]["code"] == "not_found"


async def test_bad_input_starts_nothing(upstream: Upstream) -> None:
    with provider_at(upstream.base_url("answer")):
        response = await post("/llm/resumable/", {"messages": []})
    assert response.status_code == 400
    assert upstream.requests == []


async def test_stopping_an_ended_answer_says_so(upstream: Upstream) -> None:
    started = await start(upstream, "answer")
    await (await Answer.follow(started["stream_url"])).rest()
    response = await AsyncClient().post(started["stop_url"])
    assert response.status_code == 200
    assert response.json() == {"id": started["id"], "stopping": False, "ended": True}


async def test_a_logged_in_users_answer_is_theirs_alone(
    upstream: Upstream, django_user_model: Any
) -> None:
    ada, bob = AsyncClient(), AsyncClient()
    for client, name in ((ada, "ada"), (bob, "bob")):
        user = await django_user_model.objects.acreate(username=name)
        await sync_to_async(client.force_login)(user)
    with provider_at(upstream.base_url("answer")):
        started = (await post("/llm/resumable/", HELLO, ada)).json()
    refused = await bob.get(started["stream_url"])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert (await bob.post(started["stop_url"])).status_code == 403
    assert (await AsyncClient().get(started["stream_url"])).status_code == 403
    answer = await ada.get(started["stream_url"])
    assert answer.status_code == 200
    await Answer(answer).rest()


@pytest.mark.parametrize("how", ["through the layer", "in this process"])
async def test_a_stop_as_soon_as_it_started_is_not_lost(upstream: Upstream, how: str) -> None:
    with provider_at(upstream.base_url("slow-20")):
        generation = RunningGeneration(get_provider(), [Message(role="user", content="Hello")])
        anyone = _records.Admission(None, None, per_user=None, per_address=None)
        await _history.in_worker(_records.admit, generation.id, anyone, "gpt-4o-mini", "test")
        await generation.start()
        # Before the generation's task has run at all.
        if how == "in this process":
            generation.stop()
        else:
            await astop(generation.id)
    events = await (await Answer.follow(f"/llm/resumable/{generation.id}/")).rest()
    assert [e.event for e in events] == ["start", "done"]
    assert events[-1].json()["finish_reason"] == "stopped"


async def test_an_answers_urls_take_only_their_own_methods_and_a_csrf_token(
    upstream: Upstream,
) -> None:
    started = await start(upstream, "slow-20-40")
    checked = AsyncClient(enforce_csrf_checks=True)
    assert (await checked.post(started["stop_url"])).status_code == 403
    assert (await AsyncClient().get(started["stop_url"])).status_code == 405
    assert (await AsyncClient().head(started["stream_url"])).status_code == 405
    assert (await AsyncClient().post(started["stream_url"])).status_code == 405
    # None of them stopped it: its owner still can.
    stopping = await AsyncClient().post(started["stop_url"])
    assert stopping.json() == {"id": started["id"], "stopping": True, "ended": False}
