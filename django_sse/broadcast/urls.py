"""Routes broadcast needs in Pushpin mode: ``path("sse/", include("django_sse.broadcast.urls"))``.

Pushpin fetches the recovery link of a stream it holds here (see _held.py).
"""

from django.urls import path

from django_sse.broadcast._held import GripRecoveryView

app_name = "django_sse_broadcast"

urlpatterns = [
    path("pushpin/<str:state>/", GripRecoveryView.as_view(), name="pushpin-recover"),
]
