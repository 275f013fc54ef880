from django.urls import path

from tests.broadcast import views

urlpatterns = [
    path("rooms/", views.RoomView.as_view()),
    path("rooms/<str:channel>/", views.RoomView.as_view()),
    path("kept/<str:channel>/", views.KeptAliveRoomView.as_view()),
    path("async-chosen/", views.AsyncChannelsView.as_view()),
    path("user-rooms/<slug:room>/", views.UserRoomView.as_view()),
    path("publish/<str:channel>/", views.publish_events),
    path("store-only/<str:channel>/", views.store_only),
    path("revoke/<str:channel>/", views.revoke_user),
]
