"""Views that stream: SSEView, whose ``stream()`` generator becomes an event stream, and
``sse_response()`` for function-based views. Both add the request's concerns to the
response: permissions, Last-Event-ID, and the stream log."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views import View

from django_sse import conf
from django_sse._limits import Slots, acquire, allow, subject_of
from django_sse._metrics import UNNAMED
from django_sse.protocol import FINISHED_ID, MAX_LAST_EVENT_ID
from django_sse.response import WSGI_REFUSAL, SSEResponse
from django_sse.stats import OnClose, Outcome
from django_sse.tracking import client_address, tracker_for, view_name

__all__ = ["SSEView", "last_event_id", "load_user", "sse_response"]

logger = logging.getLogger("django_sse")


class SSEView(View):
    """Serve ``stream()`` as Server-Sent Events.

    Options left as ``None`` take the project defaults from ``settings.DJANGO_SSE``.
    Only GET is allowed unless a subclass lists more in ``http_method_names``
    (e.g. ``["post"]`` for a stream that takes a request body).
    """

    http_method_names = ["get", "options"]

    keep_alive: float | None = None
    retry: int | None = None
    max_duration: float | None = None
    # Write a StreamLog row for each stream; None follows the LOG_STREAMS setting.
    log_streams: bool | None = None

    login_required: bool = False
    # With login_required: answer 403 instead of redirecting anonymous users to login.
    raise_exception: bool = False
    # Streams one user (or anonymous address) may have open at once, counted with all
    # their other streams; None follows the STREAM_LIMIT_PER_USER and
    # STREAM_LIMIT_PER_ADDRESS settings.
    stream_limit_per_user: int | None = None
    stream_limit_per_address: int | None = None

    last_event_id: str | None = None

    # Every limit a view may have is known before any request: a subject's streams take
    # their slots among as many as the largest, so that each view counts them all.
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _allow(cls.stream_limit_per_user, cls.stream_limit_per_address)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        _allow(initkwargs.get("stream_limit_per_user"), initkwargs.get("stream_limit_per_address"))
        return super().as_view(**initkwargs)

    # A coroutine function, so that Django's decorators applied with
    # method_decorator(..., name="dispatch") take their async path: their sync one reads
    # request.user (a database query) on the event loop, and returns a redirect where
    # Django awaits a coroutine.
    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        # Whatever django-stubs says, every handler of an async view is a coroutine
        # function: Django wraps its 405 and OPTIONS answers in one.
        response: Awaitable[HttpResponseBase] = super().dispatch(request, *args, **kwargs)  # type: ignore[assignment]
        return await response

    async def stream(self, request: HttpRequest, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Yield Events, str data, JSON-able data or bytes. Subclasses override this."""
        raise NotImplementedError(f"{type(self).__name__} must define async def stream()")
        yield  # pragma: no cover  (makes this an async generator)

    async def has_permission(self, request: HttpRequest) -> bool:
        """Decide before any byte is streamed whether this request may subscribe."""
        return True

    async def on_close(self, reason: Outcome) -> None:
        """Called once when the stream ends, after the generator's cleanup has run."""

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return await self._respond(request, *args, **kwargs)

    async def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return await self._respond(request, *args, **kwargs)

    async def _respond(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not isinstance(request, ASGIRequest):
            logger.error("%s at %s: %s", type(self).__name__, request.path, WSGI_REFUSAL)
            return HttpResponse(WSGI_REFUSAL, status=500, content_type="text/plain")
        denied = await self._check_access(request)
        if denied is not None:
            return denied
        self.last_event_id = last_event_id(request)
        if self.last_event_id == FINISHED_ID:
            return finished()
        slot = await self._take_slot(request)
        if isinstance(slot, HttpResponseBase):
            return slot
        try:
            return self._response(request, slot, *args, **kwargs)
        except BaseException:
            # Only the stream's close gives a slot back, and this stream will not open.
            if slot is not None:
                await slot.give_back()
            raise

    def _response(
        self, request: HttpRequest, slot: Slots | None, *args: Any, **kwargs: Any
    ) -> SSEResponse:
        source = self.stream(request, *args, **kwargs)
        if not hasattr(source, "__aiter__"):
            raise TypeError(
                f"{type(self).__name__}.stream() must be an async generator "
                f"(async def with yield), not return {type(source).__name__}"
            )
        name = view_name(request, f"{type(self).__module__}.{type(self).__qualname__}")
        return SSEResponse(
            source,
            keep_alive=self.keep_alive,
            retry=self.retry,
            max_duration=self.max_duration,
            on_close=self.on_close,
            observer=[
                observer
                for observer in (tracker_for(request, self.log_streams, name), slot)
                if observer is not None
            ],
            name=name,
        )

    async def _check_access(self, request: HttpRequest) -> HttpResponseBase | None:
        if self.login_required and not await _is_authenticated(request):
            if self.raise_exception:
                raise PermissionDenied("Authentication required")
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        allowed = self.has_permission(request)
        if not inspect.isawaitable(allowed):
            raise TypeError(
                f"{type(self).__name__}.has_permission() must be async def "
                f"(it returned {type(allowed).__name__}, not an awaitable)"
            )
        if not await allowed:
            raise PermissionDenied("You may not subscribe to this stream")
        return None

    async def _take_slot(self, request: HttpRequest) -> Slots | HttpResponseBase | None:
        """One of the user's (or address's) stream slots, or the 429 refusing the stream."""
        per_user = conf.limit("STREAM_LIMIT_PER_USER", self.stream_limit_per_user)
        per_address = conf.limit("STREAM_LIMIT_PER_ADDRESS", self.stream_limit_per_address)
        if per_user is None and per_address is None:
            return None
        user = await load_user(request)
        user_id = user.pk if user is not None and user.is_authenticated else None
        subject = subject_of(user_id, client_address(request), per_user, per_address)
        return None if subject is None else await acquire(request, subject)


def _allow(per_user: int | None, per_address: int | None) -> None:
    allow("STREAM_LIMIT_PER_USER", per_user)
    allow("STREAM_LIMIT_PER_ADDRESS", per_address)


async def _is_authenticated(request: HttpRequest) -> bool:
    if not hasattr(request, "user"):
        raise ImproperlyConfigured(
            "SSEView.login_required needs django.contrib.auth's AuthenticationMiddleware"
        )
    user = await load_user(request)
    return bool(user is not None and user.is_authenticated)


async def load_user(request: HttpRequest) -> Any:
    """The request's user, loaded so that ``request.user`` can be read from async code.

    Django's ``request.user`` loads the session on first use, a database query that
    raises ``SynchronousOnlyOperation`` in async code: a sync ``get_channels()`` reading
    ``request.user.pk`` would fail. None without django.contrib.auth's middleware.
    """
    if not hasattr(request, "user"):
        return None
    auser = getattr(request, "auser", None)
    if auser is None:  # Django 4.2: evaluate the lazy object in place, in a thread.
        await sync_to_async(lambda: request.user.is_authenticated)()
        return request.user
    user = request.user = await auser()
    return user


def finished() -> HttpResponse:
    """The answer to a client reconnecting to a stream that yielded FINISHED."""
    return HttpResponse(status=204)


def last_event_id(request: HttpRequest) -> str | None:
    """The Last-Event-ID header, or the lastEventId query a fallback client sends.

    Read from META where it can be: ``request.headers`` and ``request.GET`` are built
    on first use and then live as long as the stream (bench/idle_breakdown.py).
    """
    value: str | None = request.META.get("HTTP_LAST_EVENT_ID")
    if value is not None:
        value = _from_utf8(value)
    elif request.META.get("QUERY_STRING") != "":
        value = request.GET.get("lastEventId")
    # An id with NUL is one no event can have (Event refuses it) and EventSource never
    # sends (the spec's parser ignores it); only a hand-made query carries one.
    if value is None or "\0" in value or len(value.encode()) > MAX_LAST_EVENT_ID:
        return None
    return value


def _from_utf8(header: str) -> str:
    """A header's text as EventSource meant it: it sends the id in UTF-8, which Django
    reads as Latin-1 (as WSGI and ASGI say). Bytes that are not UTF-8 stay as they came."""
    try:
        return header.encode("latin-1").decode()
    except UnicodeError:
        return header


def sse_response(
    source: AsyncIterable[Any],
    *,
    keep_alive: float | None = None,
    retry: int | None = None,
    max_duration: float | None = None,
    on_close: OnClose | None = None,
    request: HttpRequest | None = None,
    log: bool | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> SSEResponse:
    """Stream ``source`` as Server-Sent Events from a function-based async view.

    Pass the ``request`` to get a StreamLog row for the stream (unless ``log=False``
    or ``LOG_STREAMS`` is off), and so that a client reconnecting after the stream
    yielded FINISHED is answered 204 (``source`` is then never started).
    """
    if request is not None and last_event_id(request) == FINISHED_ID:
        return SSEResponse(source, status=204)
    return SSEResponse(
        source,
        keep_alive=keep_alive,
        retry=retry,
        max_duration=max_duration,
        on_close=on_close,
        observer=None if request is None else tracker_for(request, log, request.path),
        status=status,
        headers=headers,
        name=None if request is None else view_name(request, UNNAMED),
    )
