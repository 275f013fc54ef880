"""Exercise: a chat endpoint, with its solution. A question posted from a form, the
answer streamed token by token in the POST's own response.

With no OPENAI_API_KEY or OPENAI_BASE_URL in the environment, the answer comes from
django_sse's local text source, which is not a language model: the page says which
one is answering. The Stop button ends the stream, and the view cancels the upstream
request with it. Example 2 (chat.py) adds resuming a dropped answer.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from django_sse.llm import ChatView, get_provider

app_name = "chat_endpoint"


class AnswerView(ChatView):
    """The whole server side of a streamed chat answer."""

    system_prompt = "You are a helpful assistant on a Django demo site. Answer concisely."
    max_tokens = 800


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/chat_endpoint.html", {"provider": get_provider().label})


urlpatterns = [
    path("", page, name="page"),
    path("answer/", AnswerView.as_view(), name="answer"),
]
