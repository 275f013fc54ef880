from django.urls import path

from tests.broadcast import views

urlpatterns = [
    path("rooms/", views.RoomView.as_view()),
    path("rooms/<str:channel>/", views.RoomView.as_view()),
    path("async-chosen/", views.AsyncChannelsView.as_view()),
    path("user-rooms/<slug:room>/", views.UserRoomView.as_view()),
    path("publish/<str:channel>/", views.publish_events),
]
