from django.urls import path

from django_sse.metrics.views import metrics

app_name = "django_sse_metrics"

urlpatterns = [path("", metrics, name="metrics")]
