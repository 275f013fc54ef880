"""The metrics' page for Prometheus: ``path("metrics", include("django_sse.metrics.urls"))``.

Needs prometheus-client (``pip install 'django-sse-kit[metrics]'``); see
docs/operations.md for what is counted and who may read it.
"""
