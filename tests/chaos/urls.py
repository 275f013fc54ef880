from django.urls import path

from tests.chaos import views

urlpatterns = [
    path("publish/<str:channel>/", views.publish_batch),
]
