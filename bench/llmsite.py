"""The Django project the LLM relay benchmark serves: ``uvicorn bench.llmsite:application``.

``POST /chat/<scenario>/`` is a ``ChatView`` (native format: ``token`` events with JSON
``{"text": ...}``, then ``done``) whose provider is an ``OpenAIProvider`` pointed at
``{BENCH_UPSTREAM}/<scenario>/v1``: ``BENCH_UPSTREAM`` is the root URL of the local
OpenAI-format server (``tests/llm/upstream.py``) the benchmark runs on a thread, and the
scenario picks what it answers (``fast-2000``, ``slow-20-200``, ``answer``...). There is
one provider per scenario, kept for the life of the process, so its connection pool to
the upstream stays warm between requests, as a project's configured provider does.

``POST /bare/<scenario>/`` is the same answer from a view written by hand without
django_sse, as a tutorial would have it: the openai SDK's ``chat.completions.create()``
with its default client (one per scenario, likewise kept), awaited in the view, its
chunks relayed as the same ``token`` events by a ``StreamingHttpResponse``.

Configured as a project would run it, not stripped down: ``LOG_STREAMS`` on (django_sse's
default), each stream writing its StreamLog row to the migrated sqlite file
``BENCH_DB`` (``python -m bench.llmsite`` migrates it; without it, ``:memory:`` and no
logging), and ``CsrfViewMiddleware`` on, since ChatView is a POST that browsers send: the
benchmark's client sends a ``csrftoken`` cookie with the matching ``X-CSRFToken`` header
(32 hex characters). DEBUG is off and there is no other middleware.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator

from django.conf import settings

from django_sse.asgi import get_asgi_application

DATABASE = os.environ.get("BENCH_DB", "")

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_sse"],
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    ROOT_URLCONF=__name__,
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATABASE or ":memory:",
            "OPTIONS": {"timeout": 30},
        }
    },
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    DJANGO_SSE={"LOG_STREAMS": bool(DATABASE)},
)

application = get_asgi_application()

import openai  # noqa: E402
from django.http import HttpRequest, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402  (after settings)

from django_sse.llm import ChatView, OpenAIProvider, Provider  # noqa: E402

MODEL = "bench-model"


@functools.cache
def scenario_provider(scenario: str) -> OpenAIProvider:
    """One provider, and so one connection pool, per scenario for the process's life."""
    root = os.environ["BENCH_UPSTREAM"]
    return OpenAIProvider(model=MODEL, base_url=f"{root}/{scenario}/v1", max_retries=0)


class ScenarioChat(ChatView):
    def get_provider(self) -> Provider:
        return scenario_provider(self.kwargs["scenario"])


@functools.cache
def bare_client(scenario: str) -> openai.AsyncOpenAI:
    root = os.environ["BENCH_UPSTREAM"]
    return openai.AsyncOpenAI(api_key="unused", base_url=f"{root}/{scenario}/v1", max_retries=0)


async def bare_chat(request: HttpRequest, scenario: str) -> StreamingHttpResponse:
    messages = json.loads(request.body)["messages"]
    answer = await bare_client(scenario).chat.completions.create(
        model=MODEL, messages=messages, stream=True
    )

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in answer:
                if chunk.choices and chunk.choices[0].delta.content:
                    text = json.dumps({"text": chunk.choices[0].delta.content})
                    yield f"event: token\ndata: {text}\n\n"
            yield "event: done\ndata: {}\n\n"
        finally:
            await answer.close()

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [
    path("chat/<str:scenario>/", ScenarioChat.as_view(), name="chat"),
    path("bare/<str:scenario>/", bare_chat, name="bare"),
]


def migrate() -> None:
    """Create the tables in ``BENCH_DB``; run in its own process, not a server."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


if __name__ == "__main__":
    migrate()
