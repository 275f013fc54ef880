from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from django_sse.llm import ChatView, OpenAICompatibleView, ResumableChatView
from tests.llm.views import API_KEY, ScenarioChatView, ScenarioOpenAIView, ScenarioResumableView

urlpatterns = [
    path("chat/", ChatView.as_view()),
    path("chat/brief/", ChatView.as_view(system_prompt="Answer briefly.")),
    path("vercel/", ChatView.as_view(output_format="vercel")),
    path("v1/chat/completions", OpenAICompatibleView.as_view(api_keys=[API_KEY])),
    path("resumable/", include(ResumableChatView.urls())),
    path(
        "resumable-generous/",
        include(ResumableChatView.urls(generations_per_address=10, max_tokens=8000)),
    ),
    path("<str:scenario>/chat/", ScenarioChatView.as_view()),
    # For JavaScript clients in Node, which have no session to take a CSRF token from.
    path("<str:scenario>/vercel/", csrf_exempt(ScenarioChatView.as_view(output_format="vercel"))),
    path("<str:scenario>/resumable/", include(ScenarioResumableView.urls())),
    path("<str:scenario>/v1/chat/completions", ScenarioOpenAIView.as_view()),
]
