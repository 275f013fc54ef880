from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path

from tests import views

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
    # The browser tests' pages load the helper (and django-htmx's htmx) from the apps'
    # static folders, as runserver would with DEBUG on.
    path("static/<path:path>", serve, {"insecure": True}),
    path("htmx/", include("tests.htmx_views")),
]
