"""StreamLog rows written by real streams, in-process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError
from django.test import AsyncClient, AsyncRequestFactory, override_settings

from django_sse import _log_writes
from django_sse.models import StreamLog
from django_sse.stats import Outcome, StreamStats
from django_sse.tracking import StreamTracker, client_address, describe_error, redact
from tests.llm.support import Answer
from tests.sse import collect

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("logging_on"),
]


@pytest.fixture
def logging_on() -> Iterator[None]:
    with override_settings(DJANGO_SSE={"LOG_STREAMS": True}):
        yield


async def stream(path: str, **kwargs: Any) -> list[Any]:
    response = await AsyncClient().get(path, **kwargs)
    _, events = await collect(response.streaming_content)  # type: ignore[attr-defined]
    return events


async def test_a_completed_stream_leaves_a_closed_row() -> None:
    await stream("/counter/?n=3", headers={"User-Agent": "pytest"})
    row = await StreamLog.objects.aget()
    assert (row.view_name, row.route, row.path, row.query_string) == (
        "counter",
        "counter/",
        "/counter/",
        "n=3",
    )
    assert row.outcome == "completed"
    assert row.events_sent == 3
    assert row.bytes_sent == len(
        b":\n" + b"".join(b"data: %d\nid: %d\n\n" % (i, i) for i in range(3))
    )
    assert row.last_event_id == "2"
    assert row.user_agent == "pytest"
    assert row.ended_at is not None
    assert row.duration is not None
    assert row.ended_at >= row.started_at
    assert row.error == ""


async def test_a_failed_insert_is_tried_again_whole_at_the_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    as_row = StreamTracker._as_row
    tries: list[bool] = []

    def failing_once(self: StreamTracker, *args: Any) -> StreamLog:
        tries.append(len(args) > 1)  # with the ending: the close's try
        if len(tries) == 1:
            raise DatabaseError("the database went away")
        return as_row(self, *args)

    monkeypatch.setattr(StreamTracker, "_as_row", failing_once)
    await stream("/counter/")
    row = await StreamLog.objects.aget()
    assert tries == [False, True]
    assert (row.outcome, row.events_sent, row.path) == ("completed", 3, "/counter/")
    assert row.ended_at is not None


async def test_a_row_is_inserted_as_the_stream_opens_and_finished_at_its_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    inserted = asyncio.Event()
    insert_rows = _log_writes._insert_rows

    def observed(rows: list[Any]) -> list[int | None]:
        try:
            return insert_rows(rows)
        finally:
            loop.call_soon_threadsafe(inserted.set)

    monkeypatch.setattr(_log_writes, "_insert_rows", observed)
    answer = await Answer.follow("/idle/")
    await answer.read(1)
    # Inserted by itself while the stream is open: nothing waits for a delay to pass.
    await asyncio.wait_for(inserted.wait(), 10)
    row = await StreamLog.objects.aget()
    assert (row.outcome, row.ended_at, row.path) == ("open", None, "/idle/")
    await answer.leave()
    await row.arefresh_from_db()
    assert row.outcome == "client_disconnected"
    assert row.ended_at is not None
    assert row.events_sent == 1
    assert await StreamLog.objects.acount() == 1


async def test_a_stream_whose_opening_insert_is_cut_off_by_its_loop_has_one_row(
    held: tuple[threading.Event, threading.Event],
) -> None:
    """The loop closing cancels the inserting task while the worker inserts; the close
    must finish that row, not insert a second one (and leave the first one open)."""
    entered, release = held
    tracker = StreamTracker(AsyncRequestFactory().get("/idle/"), "idle")
    stats = StreamStats()
    tracker.opened(stats)
    await asyncio.to_thread(entered.wait, 10)
    inserting = _log_writes._inserts[asyncio.get_running_loop()]._task
    assert inserting is not None
    inserting.cancel()
    stats.outcome = Outcome.SHUTDOWN
    closing = asyncio.ensure_future(tracker.closed(stats))
    release.set()
    await asyncio.wait_for(closing, 10)
    [row] = [log async for log in StreamLog.objects.all()]
    assert (row.outcome, row.path) == ("shutdown", "/idle/")


async def test_an_open_stream_keeps_only_its_rows_key_once_the_row_is_in() -> None:
    """The insert's task and the row's fields are let go while the stream stays open
    (an idle stream keeps nothing it will not use); the close still finishes the row."""
    request = AsyncRequestFactory().get("/idle/", headers={"user-agent": "pytest"})
    tracker = StreamTracker(request, "idle")
    stats = StreamStats()
    tracker.opened(stats)
    opening = tracker._opening
    assert opening is not None
    # Awaited after the tracker's own done callback, which therefore ran first.
    await asyncio.wait_for(opening, 10)
    assert (tracker._opening, tracker._row) == (None, {})
    row = await StreamLog.objects.aget()
    assert (row.outcome, row.user_agent) == ("open", "pytest")
    stats.outcome = Outcome.COMPLETED
    stats.events = 2
    await tracker.closed(stats)
    await row.arefresh_from_db()
    assert (row.outcome, row.events_sent, row.user_agent) == ("completed", 2, "pytest")
    assert row.ended_at is not None


async def test_an_error_is_recorded_without_secrets() -> None:
    await stream("/error/")
    row = await StreamLog.objects.aget()
    assert row.outcome == "error"
    assert row.error == "ValueError: secret detail"
    assert row.events_sent == 1


async def test_the_logged_in_user_is_recorded(django_user_model: Any) -> None:
    user = await django_user_model.objects.acreate(username="grace")
    client = AsyncClient()
    await sync_to_async(client.force_login)(user)
    response = await client.get("/login-required/")
    await collect(response.streaming_content)  # type: ignore[attr-defined]
    row = await StreamLog.objects.select_related("user").aget()
    assert row.user == user


@override_settings(DJANGO_SSE={"LOG_STREAMS": False})
async def test_logging_can_be_switched_off_globally() -> None:
    assert len(await stream("/counter/")) == 3
    assert await StreamLog.objects.acount() == 0


async def test_logging_can_be_switched_off_per_view() -> None:
    from tests.views import CounterView

    class Quiet(CounterView):
        log_streams = False

    response = await Quiet.as_view()(AsyncRequestFactory().get("/"))  # type: ignore[misc]
    await collect(aiter(response))
    assert await StreamLog.objects.acount() == 0


async def test_sse_response_logs_when_given_the_request() -> None:
    await stream("/function/")
    row = await StreamLog.objects.aget()
    assert row.path == "/function/"
    assert row.events_sent == 3


async def test_a_failing_log_write_never_breaks_the_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(self: StreamTracker, *args: Any) -> StreamLog:
        raise RuntimeError("database is down")

    monkeypatch.setattr(StreamTracker, "_as_row", broken)
    events = await stream("/counter/")
    assert [e.data for e in events] == ["0", "1", "2"]
    assert "Could not write a StreamLog row" in caplog.text
    assert await StreamLog.objects.acount() == 0


@pytest.mark.parametrize(
    ("setting", "headers", "remote", "expected"),
    [
        (None, {}, "10.0.0.1", "10.0.0.1"),
        (None, {"X-Forwarded-For": "1.2.3.4"}, "10.0.0.1", "10.0.0.1"),
        ("X-Forwarded-For", {"X-Forwarded-For": "6.6.6.6, 1.2.3.4"}, "10.0.0.1", "1.2.3.4"),
        ("X-Real-IP", {"X-Real-IP": "2001:db8::1"}, "10.0.0.1", "2001:db8::1"),
        # A proxy that adds the port.
        ("X-Forwarded-For", {"X-Forwarded-For": "6.6.6.6, 1.2.3.4:4711"}, "10.0.0.1", "1.2.3.4"),
        ("X-Forwarded-For", {"X-Forwarded-For": "[2001:db8::1]:443"}, "10.0.0.1", "2001:db8::1"),
        # RFC 7239.
        ("Forwarded", {"Forwarded": "for=6.6.6.6, for=1.2.3.4;proto=https"}, "10.0.0.1", "1.2.3.4"),
        ("Forwarded", {"Forwarded": 'For="[2001:db8::1]:80"'}, "10.0.0.1", "2001:db8::1"),
        # No address in the proxy's entry: unknown, not the proxy's own address.
        ("X-Forwarded-For", {"X-Forwarded-For": "not-an-ip"}, "10.0.0.1", None),
        ("X-Forwarded-For", {"X-Forwarded-For": "1.2.3.4, unknown"}, "10.0.0.1", None),
        ("Forwarded", {"Forwarded": "for=_hidden;proto=https"}, "10.0.0.1", None),
        ("Forwarded", {"Forwarded": "proto=https"}, "10.0.0.1", None),
        ("X-Forwarded-For", {"X-Forwarded-For": "1.2.3.4:5:6"}, "10.0.0.1", None),
        # No header at all: not through the proxy, the peer is the client.
        ("X-Forwarded-For", {}, "10.0.0.1", "10.0.0.1"),
        (None, {}, "garbage", None),
    ],
)
def test_client_address(
    setting: str | None, headers: dict[str, str], remote: str, expected: str | None
) -> None:
    request = AsyncRequestFactory().get("/", headers=headers)
    request.META["REMOTE_ADDR"] = remote
    with override_settings(DJANGO_SSE={"CLIENT_ADDRESS_HEADER": setting}):
        assert client_address(request) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, ""),
        (ValueError("plain"), "ValueError: plain"),
        (RuntimeError("password=hunter2 failed"), "RuntimeError: password=*** failed"),
        (OSError("api_key: sk-123 rejected"), "OSError: api_key: *** rejected"),
        (ConnectionError("postgres://app:pw@db/x"), "ConnectionError: postgres://***@db/x"),
        (
            PermissionError("Authorization: Bearer abc.def rejected"),
            "PermissionError: Authorization: *** rejected",
        ),
        (ValueError('secret="two words" leaked'), "ValueError: secret=*** leaked"),
        (ValueError("sent bearer abc123 upstream"), "ValueError: sent bearer *** upstream"),
    ],
)
def test_describe_error_hides_credentials(error: BaseException | None, expected: str) -> None:
    assert describe_error(error) == expected


def test_query_strings_are_stored_without_tokens() -> None:
    assert redact("token=abc123&n=3") == "token=***&n=3"
    assert redact("channel=news&api_key=k-1") == "channel=news&api_key=***"


async def test_a_token_in_the_stream_url_is_not_logged() -> None:
    await stream("/counter/?token=s3cret&n=1")
    row = await StreamLog.objects.aget()
    assert row.query_string == "token=***&n=1"


async def test_credentials_in_the_url_are_hidden_in_path_query_and_error() -> None:
    """Issue 26: the row's path was stored as it came, and only a few names were hidden."""
    secrets = ["S1-jsession", "S2-code", "S3-client", "S4-key"]
    await stream(
        f"/url-in-error/p;jsessionid={secrets[0]}/auth_code:{secrets[1]}/"
        f"?client_secret={secrets[2]}&n=1&api%5Fkey={secrets[3]}"
    )
    row = await StreamLog.objects.aget()
    assert row.path == "/url-in-error/p;jsessionid=***/auth_code:***/"
    assert row.query_string == "client_secret=***&n=1&api%5Fkey=***"
    assert row.outcome == "error"
    assert row.error.startswith("PermissionError: upstream refused /url-in-error/p%3Bjsessionid")
    assert "***" in row.error
    for secret in secrets:
        assert secret not in f"{row.path} {row.query_string} {row.error}"


@pytest.mark.parametrize(
    ("user_agent", "stored"),
    [
        ("MyApp/2.1 (api_key=k-s3cret; build 7)", "MyApp/2.1 (api_key=***; build 7)"),
        ("sync-client/1.0 token:s3cret", "sync-client/1.0 token:***"),
        ("bot/1 Bearer s3cret", "bot/1 Bearer ***"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120",
        ),
    ],
)
async def test_a_user_agent_is_stored_without_credentials(user_agent: str, stored: str) -> None:
    """Some clients put their key in the User-Agent: it is redacted as an error is."""
    await stream("/counter/?n=1", headers={"User-Agent": user_agent})
    row = await StreamLog.objects.aget()
    assert row.user_agent == stored


@override_settings(DJANGO_SSE={"LOG_STREAMS": True, "REDACTED_NAMES": ["otp"]})
async def test_redacted_names_extend_what_rows_hide() -> None:
    await stream("/counter/?OTP=123456&n=1")
    row = await StreamLog.objects.aget()
    assert row.query_string == "OTP=***&n=1"


@override_settings(DJANGO_SSE={"LOG_STREAMS": True, "REDACTED_NAMES": "otp"})
async def test_a_misconfigured_redacted_names_fails_the_logged_stream_by_name() -> None:
    with pytest.raises(ImproperlyConfigured, match="REDACTED_NAMES"):
        await AsyncClient().get("/counter/?otp=1")
    assert await StreamLog.objects.acount() == 0


def test_a_message_clients_are_shown_is_stored_as_it_is() -> None:
    """A provider's error is safe to show by contract; "authentication: The" is no secret."""
    from django_sse.llm import ProviderError

    refused = ProviderError("authentication", "The language model provider refused the API key.")
    assert describe_error(refused) == f"ProviderError: {refused}"
    assert describe_error(PermissionError(str(refused))).startswith(
        "PermissionError: authentication: *** language"
    )


def test_describe_error_is_truncated() -> None:
    assert len(describe_error(ValueError("x" * 5000))) == 1000


async def test_a_missing_table_is_reported_once_without_tracebacks(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(_log_writes, "_warned_table_missing", False)
    monkeypatch.setattr(StreamLog._meta, "db_table", "django_sse_not_migrated")
    for _ in range(3):
        assert len(await stream("/counter/")) == 3
    warnings = [r for r in caplog.records if "table does not exist" in r.getMessage()]
    assert len(warnings) == 1
    assert "manage.py migrate" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        # Text decoded with "surrogateescape" holds lone surrogates, which UTF-8 cannot
        # encode; PostgreSQL refuses NUL in text.
        (b"bad \xff byte".decode("utf-8", "surrogateescape"), "bad \ufffd byte"),
        ("nul \x00 inside", "nul \ufffd inside"),
    ],
)
async def test_text_no_database_takes_is_stored_with_replacement_characters(
    text: str, stored: str
) -> None:
    tracker = StreamTracker(AsyncRequestFactory().get("/counter/"), "counter")
    stats = StreamStats(outcome=Outcome.ERROR, error=ValueError(text), model=text)
    await tracker.closed(stats)
    row = await StreamLog.objects.aget()
    assert (row.outcome, row.error, row.model) == ("error", f"ValueError: {stored}", stored)


@pytest.fixture
async def finished(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once a close's update of a row has gone through, from its worker thread."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    update = StreamTracker._update

    def observed(self: StreamTracker, *args: Any) -> Any:
        result = update(self, *args)
        loop.call_soon_threadsafe(done.set)
        return result

    monkeypatch.setattr(StreamTracker, "_update", observed)
    return done


@override_settings(DJANGO_SSE={"LOG_STREAMS": True, "CLEANUP_TIMEOUT": 0.05})
async def test_a_close_that_gives_up_on_a_slow_insert_still_finishes_the_row(
    held: tuple[threading.Event, threading.Event], finished: asyncio.Event
) -> None:
    """The database is locked through the insert (a migration building an index, say)
    for longer than CLEANUP_TIMEOUT: the close stops waiting for it, and the row, once
    in, must still get its outcome, not stay open for as long as its process lives."""
    entered, release = held
    answer = await Answer.follow("/idle/")
    await answer.read(1)
    await asyncio.to_thread(entered.wait, 10)
    await answer.leave()  # Returns once the close has given up on the insert.
    release.set()
    await asyncio.wait_for(finished.wait(), 5)
    row = await StreamLog.objects.aget()
    assert (row.outcome, row.events_sent) == ("client_disconnected", 1)
    assert row.ended_at is not None


async def test_a_final_update_the_database_refuses_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, finished: asyncio.Event, caplog: Any
) -> None:
    """A lock held past the database's own timeout ("database is locked") as the stream
    closes: the row must not stay open, counted in the admin's open streams, until
    someone runs sse_close_stale_logs --older-than."""
    monkeypatch.setattr(_log_writes, "RETRY_DELAYS", (0.0, 0.0, 0.0), raising=False)
    update = StreamTracker._update
    refusals = [OperationalError("database is locked")] * 2

    def locked_twice(self: StreamTracker, *args: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return update(self, *args)

    monkeypatch.setattr(StreamTracker, "_update", locked_twice)
    events = await stream("/counter/")
    assert len(events) == 3
    await asyncio.wait_for(finished.wait(), 5)
    row = await StreamLog.objects.aget()
    assert (row.outcome, row.events_sent, row.last_event_id) == ("completed", 3, "2")
    assert "Could not write a StreamLog row" in caplog.text
