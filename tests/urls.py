from django.contrib import admin
from django.urls import path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("counter/", views.CounterView.as_view(), name="counter"),
    path("gate/", views.GateView.as_view()),
    path("resumable/", views.ResumableView.as_view()),
    path("idle/", views.IdleView.as_view()),
    path("flood/", views.FloodView.as_view()),
    path("error/", views.ErrorView.as_view()),
    path("timeout/", views.TimeoutView.as_view()),
    path("forbidden/", views.ForbiddenView.as_view()),
    path("login-required/", views.LoginRequiredView.as_view()),
    path("last-event-id/", views.LastEventIdView.as_view()),
    path("post-echo/", views.PostEchoView.as_view()),
    path("retry/", views.RetryView.as_view()),
    path("function/", views.function_stream),
    path("release/<str:token>/", views.release),
    path("status/<str:token>/", views.status),
]
