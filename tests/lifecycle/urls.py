from django.urls import path

from tests.lifecycle import views

urlpatterns = [
    path("stream/", views.RaceView.as_view()),
    path("open/", views.open_gates),
    path("wait/", views.wait_for),
    path("plain/", views.plain),
]
