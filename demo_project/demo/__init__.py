"""The django_sse demo project: one page per example, served over ASGI."""
