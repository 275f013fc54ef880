"""Example 2: LLM chat whose answers survive a dropped connection.

Posting the question starts a generation on the server (``ResumableChatView``), which
answers with the URL to follow it at. The page follows it with EventSource: when the
connection drops, the browser reconnects with the last event id it saw and the
answer goes on from there, with no second call to the model. Stop asks the server to
end the generation, which closes the request to the model.

With no OPENAI_API_KEY or OPENAI_BASE_URL in the environment, the answer comes from
django_sse's local text source, which is not a language model: the page says so.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import include, path

from django_sse.llm import ResumableChatView, get_provider

app_name = "chat"


class AnswerView(ResumableChatView):
    """POST a question; GET <id>/ follows the answer; POST <id>/stop/ stops it."""

    system_prompt = "You are a helpful assistant on a Django demo site. Answer concisely."
    max_tokens = 800


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/chat.html", {"provider": get_provider().label})


urlpatterns = [
    path("", page, name="page"),
    # Named, so that the stream logs and the metrics list its streams as "chat:answer-stream".
    path("answer/", include(AnswerView.urls(name="answer"))),
]
