"""Resumable answers stay their owner's, and cannot run up the model bill.

Each test tries what an attacker, or a careless page, would: follow or stop another
user's long answer once its first events are pruned from history, start answers and
never read them, start more than the limit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import AsyncClient, override_settings

from django_sse.llm.models import Generation
from tests.llm.conftest import stop_answers
from tests.llm.support import HELLO, Answer, post, provider_at
from tests.llm.upstream import Upstream
from tests.llm.views import API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

START = "/llm/resumable/"
# Not hex-only, so a random completion id can never contain one by chance.
USERNAMES = {"ada": "ada_lovelace", "bob": "bob_kahn"}


@pytest.fixture
async def users(django_user_model: Any) -> dict[str, AsyncClient]:
    """Two logged-in users, with sessions, and an anonymous client."""
    clients = {"ada": AsyncClient(), "bob": AsyncClient(), "anonymous": AsyncClient()}
    for name in ("ada", "bob"):
        user = await django_user_model.objects.acreate(username=USERNAMES[name])
        await sync_to_async(clients[name].force_login)(user)
    return clients


async def start(
    upstream: Upstream,
    scenario: str,
    client: AsyncClient | None = None,
    *,
    headers: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> Any:
    with provider_at(upstream.base_url(scenario), **(settings or {})):
        return await post(START, HELLO, client, headers=headers)


async def started(
    upstream: Upstream, scenario: str, client: AsyncClient, settings: dict[str, Any] | None = None
) -> Any:
    response = await start(upstream, scenario, client, settings=settings)
    assert response.status_code == 201, response.content
    return response.json()


async def record(generation_id: str) -> Generation:
    row: Generation = await Generation.objects.aget(pk=generation_id)
    return row


# --- 1. ownership outlives the pruned history ----------------------------------------


async def test_a_long_answer_stays_private_after_its_first_events_are_pruned(
    upstream: Upstream, users: dict[str, AsyncClient]
) -> None:
    # History keeps 5 events: pruned, the answer has lost its start event.
    settings = {"BROADCAST_HISTORY_SIZE": 5}
    answer = await started(upstream, "slow-5-40", users["ada"], settings)
    with override_settings(DJANGO_SSE={"LOG_STREAMS": True, **settings}):
        await Answer(await users["ada"].get(answer["stream_url"])).rest()
        await sync_to_async(call_command)("sse_prune_history", verbosity=0)
        events = await Answer(await users["ada"].get(answer["stream_url"])).rest()
        assert events[0].event == "reset"
        assert "start" not in [e.event for e in events]
        assert events[-1].event == "done"
        for name in ("bob", "anonymous"):
            client = users[name]
            follow = await client.get(answer["stream_url"])
            replay = await client.get(answer["stream_url"], headers={"Last-Event-ID": "3"})
            query_replay = await client.get(answer["stream_url"] + "?lastEventId=3")
            stop = await client.post(answer["stop_url"])
            statuses = [r.status_code for r in (follow, replay, query_replay, stop)]
            assert statuses == [403, 403, 403, 403], name
            assert b"t0 " not in b"".join(r.content for r in (follow, replay, query_replay, stop))
            assert follow.json()["error"]["code"] == "permission_denied"


async def test_a_running_answer_is_refused_to_others_too(
    upstream: Upstream, users: dict[str, AsyncClient]
) -> None:
    answer = await started(upstream, "slow-20-40", users["ada"])
    assert (await users["bob"].get(answer["stream_url"])).status_code == 403
    assert (await users["bob"].post(answer["stop_url"])).status_code == 403
    assert (await record(answer["id"])).outcome == "running"
    assert (await users["ada"].post(answer["stop_url"])).status_code == 202


async def test_no_other_channel_view_serves_an_answer(
    upstream: Upstream, users: dict[str, AsyncClient]
) -> None:
    """The test project's room view serves every channel but private.*: not this one."""
    answer = await started(upstream, "answer", users["ada"])
    own = await Answer(await users["ada"].get(answer["stream_url"])).rest()
    assert own[-1].event == "done"
    for client in users.values():
        response = await client.get(
            f"/broadcast/rooms/llm.{answer['id']}/", headers={"Last-Event-ID": "0"}
        )
        assert response.status_code == 403
        assert not response.streaming


async def test_an_answer_whose_owner_was_deleted_is_nobodys(
    upstream: Upstream, users: dict[str, AsyncClient], django_user_model: Any
) -> None:
    answer = await started(upstream, "answer", users["ada"])
    await Answer(await users["ada"].get(answer["stream_url"])).rest()
    await django_user_model.objects.filter(username=USERNAMES["ada"]).adelete()
    for client in users.values():
        assert (await client.get(answer["stream_url"])).status_code == 404


@pytest.mark.parametrize("output", ["native", "openai", "vercel", "resumable"])
async def test_no_event_names_the_user(
    upstream: Upstream, users: dict[str, AsyncClient], django_user_model: Any, output: str
) -> None:
    ada = await django_user_model.objects.aget(username=USERNAMES["ada"])
    client = users["ada"]
    if output == "resumable":
        answer = await started(upstream, "answer", client)
        events = await Answer(await client.get(answer["stream_url"])).rest()
    else:
        path, body, headers = {
            "native": ("/llm/chat/", HELLO, {}),
            "vercel": ("/llm/vercel/", HELLO, {}),
            "openai": (
                "/llm/v1/chat/completions",
                {**HELLO, "stream": True, "stream_options": {"include_usage": True}},
                {"Authorization": f"Bearer {API_KEY}"},
            ),
        }[output]
        with provider_at(upstream.base_url("answer")):
            events = await (await Answer.ask(path, body, client=client, headers=headers)).rest()
    assert len(events) >= 3
    for event in events:
        payload = json.loads(event.data) if event.data.startswith("{") else {}
        assert not {"owner", "user", "user_id", "username"} & set(payload), event
        assert USERNAMES["ada"] not in event.data
        assert f'"{ada.pk}"' not in event.data


# --- 2. limits on answers nobody reads ------------------------------------------------


async def test_a_user_gets_429_past_the_limit_before_the_model_is_asked(
    upstream: Upstream, users: dict[str, AsyncClient]
) -> None:
    limits = {"LLM_GENERATIONS_PER_USER": 2}
    first = await started(upstream, "slow-50-100", users["ada"], settings=limits)
    await started(upstream, "slow-50-100", users["ada"], settings=limits)
    refused = await start(upstream, "slow-50-100", users["ada"], settings=limits)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "5"
    assert refused.json()["error"]["code"] == "too_many_generations"
    assert "2 answers running" in refused.json()["error"]["message"]
    assert len(upstream.requests) == 2
    # Another user is counted on their own.
    assert (await start(upstream, "answer", users["bob"], settings=limits)).status_code == 201
    # Stopping one makes room.
    assert (await users["ada"].post(first["stop_url"])).status_code == 202
    await Answer(await users["ada"].get(first["stream_url"])).rest()
    assert (await start(upstream, "answer", users["ada"], settings=limits)).status_code == 201


async def test_anonymous_clients_are_counted_by_address(upstream: Upstream) -> None:
    limits = {"LLM_GENERATIONS_PER_ADDRESS": 1, "CLIENT_ADDRESS_HEADER": "X-Forwarded-For"}
    here, there = {"X-Forwarded-For": "10.0.0.1"}, {"X-Forwarded-For": "10.0.0.2"}
    assert (await start(upstream, "slow-50-100", headers=here, settings=limits)).status_code == 201
    assert (await start(upstream, "slow-50-100", headers=here, settings=limits)).status_code == 429
    assert (await start(upstream, "slow-50-100", headers=there, settings=limits)).status_code == 201
    rows = [row async for row in Generation.objects.order_by("started_at")]
    assert [(row.user_id, row.client_address) for row in rows] == [
        (None, "10.0.0.1"),
        (None, "10.0.0.2"),
    ]


async def test_a_view_may_raise_the_limit(upstream: Upstream) -> None:
    limits = {"LLM_GENERATIONS_PER_ADDRESS": 1}
    with provider_at(upstream.base_url("slow-50-100"), **limits):
        for _ in range(3):
            response = await post("/llm/resumable-generous/", HELLO)
            assert response.status_code == 201


async def test_an_answer_nobody_follows_is_abandoned(upstream: Upstream) -> None:
    answer = await started(
        upstream, "slow-20", AsyncClient(), {"LLM_GENERATION_ABANDON_AFTER": 0.2}
    )
    await upstream.requests[0].wait_closed(timeout=5.0)
    assert upstream.requests[0].client_closed
    events = await (await Answer.follow(answer["stream_url"])).rest()
    assert events[-1].event == "done"
    assert events[-1].json()["finish_reason"] == "abandoned"
    assert (await record(answer["id"])).outcome == "abandoned"


async def test_an_answer_someone_follows_is_not_abandoned(upstream: Upstream) -> None:
    # 100 tokens 30 ms apart: the answer outlives the abandon period three times over. A
    # period of a second, not less: the follower's first heartbeat must come within it,
    # which on a busy machine took longer than 0.2 s.
    settings = {"LLM_GENERATION_ABANDON_AFTER": 1.0}
    answer = await started(upstream, "slow-30-100", AsyncClient(), settings)
    with override_settings(DJANGO_SSE={"LOG_STREAMS": True, **settings}):
        events = await (await Answer.follow(answer["stream_url"])).rest()
    assert events[-1].json()["finish_reason"] == "stop"
    assert "".join(json.loads(e.data).get("text", "") for e in events if e.event == "token") == (
        "".join(f"t{i} " for i in range(100))
    )
    assert (await record(answer["id"])).outcome == "completed"


async def test_an_answer_that_runs_too_long_is_stopped(upstream: Upstream) -> None:
    answer = await started(upstream, "slow-20", AsyncClient(), {"LLM_GENERATION_TIMEOUT": 0.2})
    events = await (await Answer.follow(answer["stream_url"])).rest()
    assert events[-1].json()["finish_reason"] == "timeout"
    assert (await record(answer["id"])).outcome == "timeout"


async def test_resumable_answers_have_a_token_cap_a_view_can_raise(upstream: Upstream) -> None:
    await started(upstream, "answer", AsyncClient(), {"LLM_GENERATION_MAX_TOKENS": 300})
    with provider_at(upstream.base_url("answer")):
        assert (await post("/llm/resumable-generous/", HELLO)).status_code == 201
    capped, raised = (request.body for request in upstream.requests)
    assert capped["max_tokens"] == 300
    assert raised["max_tokens"] == 8000


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [("answer", "completed"), ("unauthorized", "error"), ("mid-stream-error", "error")],
)
async def test_each_answer_records_how_it_ended(
    upstream: Upstream, scenario: str, outcome: str
) -> None:
    answer = await started(upstream, scenario, AsyncClient())
    await (await Answer.follow(answer["stream_url"])).rest()
    row = await record(answer["id"])
    assert (row.outcome, row.model) == (outcome, "gpt-4o-mini")
    assert row.ended_at is not None


async def test_an_answer_cut_by_the_server_stopping_is_recorded_as_an_error(
    upstream: Upstream,
) -> None:
    answer = await started(upstream, "slow-50-100", AsyncClient())
    await upstream.wait_request(0)
    await stop_answers()
    assert (await record(answer["id"])).outcome == "error"
