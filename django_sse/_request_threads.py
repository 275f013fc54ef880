"""The request's sync thread: taken from a pool of idle ones rather than started anew.

Django runs each ASGI request in a thread-sensitive context of its own (asgiref's
``ThreadSensitiveContext``). The request's sync calls (the ``request_started``
receivers, sync middleware, ``sync_to_async`` queries) run one at a time on a thread
started for it at the first such call. When the request ends, asgiref shuts that
thread down and waits for it to exit: blocking the event loop before asgiref 3.12, from
yet another new thread since. That work lands on the event loop while it serves
whatever comes next, so back-to-back requests each paid for the one before. In the LLM
relay benchmark, requests through the pool reached their first token 0.5-0.9 ms sooner.

A request still has its own context, and one thread at a time for its sync calls; that
thread comes from the pool and goes back when the request ends, as a WSGI server's
threads go from request to request. Django's thread-local state is made for that:
``request_finished`` closes the thread's database connections as ``CONN_MAX_AGE``
says, as under WSGI.

Only django_sse's ``get_asgi_application()`` uses the pool, through
``request_thread()``. ``ThreadSensitiveContext(executor=...)`` (asgiref 3.13+) is not
used: a stream lets its thread go while it streams (``release()``), and a sync call
after that starts an executor the context would never shut down.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.db import connections

from django_sse import conf

__all__ = ["release", "request_thread"]


class _PooledContext(ThreadSensitiveContext):
    """A request context whose thread goes back to the pool."""


class _Pool:
    """Idle single-thread executors, the last one back the first one out (its thread is
    the likeliest to be warm)."""

    def __init__(self) -> None:
        self.idle: list[Executor] = []

    def take(self) -> Executor:
        if self.idle:
            return self.idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="django_sse request")

    def give_back(self, executor: Executor) -> None:
        if len(self.idle) < conf.get("IDLE_REQUEST_THREADS"):
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)

    def forget(self) -> None:
        """In a forked child: the idle executors' threads stayed in the parent."""
        self.idle.clear()


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


@asynccontextmanager
async def request_thread() -> AsyncIterator[None]:
    """Run the block as a request: its sync calls on one thread, from the pool.

    Does nothing inside a thread-sensitive context that is already set (its thread is
    used, as Django would use it) or when ``IDLE_REQUEST_THREADS`` is 0.
    """
    if SyncToAsync.thread_sensitive_context.get(None) is not None or not conf.get(
        "IDLE_REQUEST_THREADS"
    ):
        yield
        return
    executors = SyncToAsync.context_to_thread_executor
    async with _PooledContext() as context:
        executors[context] = _pool.take()
        try:
            yield
        finally:
            # Taken before the context exits, which would otherwise shut it down.
            executor = executors.pop(context, None)
            if executor is not None:
                _pool.give_back(executor)


def release() -> None:
    """Let the current request's sync thread go while its stream runs.

    An open stream would otherwise hold its thread, idle, until it ends: one OS thread
    per open stream. The thread first closes its database connections. A pooled
    thread goes back to the pool, any other one exits. A later sync call in the same
    request gets a thread again, as its first one did.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is None:
        return
    executor.submit(connections.close_all)
    if isinstance(context, _PooledContext):
        _pool.give_back(executor)
    else:
        executor.shutdown(wait=False)
