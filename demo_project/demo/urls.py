"""The index at /, the admin (with django_sse's StreamLog) at /admin/, examples under
/examples/, the route Pushpin recovers missed events from at /sse/, and Prometheus
metrics at /metrics (for staff: log in as the demo user)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="demo/index.html"), name="index"),
    path("admin/", admin.site.urls),
    # Pushpin fetches the events its connections missed here (make demo-pushpin).
    path("sse/", include("django_sse.broadcast.urls")),
    path("metrics", include("django_sse.metrics.urls")),
    path("examples/basic/", include("demo.examples.basic")),
    path("examples/chat/", include("demo.examples.chat")),
    path("examples/chat-endpoint/", include("demo.examples.chat_endpoint")),
    path("examples/production/", include("demo.examples.production")),
    path("examples/room/", include("demo.examples.room")),
    path("examples/progress/", include("demo.examples.progress")),
    path("examples/multisource/", include("demo.examples.multisource")),
    path("examples/htmx/", include("demo.examples.htmx")),
]
