from pathlib import Path

from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

import django_sse
from tests import views

# The browser tests' pages load the helper from the package itself.
STATIC_DIR = Path(django_sse.__file__).parent / "static"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("broadcast/", include("tests.broadcast.urls")),
    path("chaos/", include("tests.chaos.urls")),
    path("sse/", include("django_sse.broadcast.urls")),
    path("metrics", include("django_sse.metrics.urls")),
    path("llm/", include("tests.llm.urls")),
    path("races/", include("tests.lifecycle.urls")),
    path("counter/", views.CounterView.as_view(), name="counter"),
    path("gate/", views.GateView.as_view()),
    path("finishing/", views.FinishingView.as_view()),
    path("rendered/", views.RenderedView.as_view()),
    path("finishing-function/", views.finishing_function),
    path("limited-gate/", views.LimitedGateView.as_view()),
    path("resumable/", views.ResumableView.as_view()),
    path("idle/", views.IdleView.as_view()),
    path("flood/", views.FloodView.as_view()),
    path("error/", views.ErrorView.as_view()),
    path("timeout/", views.TimeoutView.as_view()),
    path("url-in-error/<path:rest>", views.UrlInErrorView.as_view()),
    path("forbidden/", views.ForbiddenView.as_view()),
    path("login-required/", views.LoginRequiredView.as_view()),
    path("last-event-id/", views.LastEventIdView.as_view()),
    path("post-echo/", views.PostEchoView.as_view()),
    path("retry/", views.RetryView.as_view()),
    path("function/", views.function_stream),
    path("release/<str:token>/", views.release, name="release"),
    path("status/<str:token>/", views.status),
    path("browser/", include("tests.browser.views")),
    path("static/<path:path>", serve, {"document_root": STATIC_DIR}),
]
