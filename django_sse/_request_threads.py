"""The request's sync thread: taken from a pool of idle ones rather than started anew.

Django runs each ASGI request in a thread-sensitive context of its own (asgiref's
``ThreadSensitiveContext``). The request's sync calls (the ``request_started``
receivers, sync middleware, ``sync_to_async`` queries) run one at a time on a thread
started for it at the first such call. When the request ends, asgiref shuts that
thread down and waits for it to exit: blocking the event loop before asgiref 3.12, from
yet another new thread since. That work lands on the event loop while it serves
whatever comes next, so back-to-back requests each paid for the one before. With the
pool, the LLM relay benchmark's added time to the first token fell by 0.26-0.64 ms (of
about 3), and a disconnecting stream's CPU by a quarter.

A request still has its own context, and one thread at a time for its sync calls; that
thread comes from the pool and goes back when the request ends, as a WSGI server's
threads go from request to request. Django's thread-local state is made for that:
``request_finished`` closes the thread's database connections as ``CONN_MAX_AGE``
says, as under WSGI. A thread goes back only once it runs nothing: a request that
another one's leftover sync call kept waiting would stall for no reason of its own.

Only django_sse's ``get_asgi_application()`` uses the pool, through
``RequestContext``. ``ThreadSensitiveContext(executor=...)`` (asgiref 3.13+) is not
used: a stream lets its thread go while it streams (``release()``), and a sync call
after that starts an executor the context would never shut down.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.db import connections

from django_sse import conf

__all__ = ["RequestContext", "release"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _RequestThread(ThreadPoolExecutor):
    """One request's sync thread, which knows whether it is running anything.

    A thread still running a call must not go to another request, which would wait
    for it: a stream's source blocked in a sync call still holds its thread when the
    stream's keep-alive lets the thread go.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django_sse request")
        self._lock = threading.Lock()
        self._calls = 0
        self._on_idle: Callable[[], None] | None = None

    def submit(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
        with self._lock:
            self._calls += 1
        try:
            future = super().submit(self._call, fn, *args, **kwargs)
        except BaseException:
            self._call_done()
            raise
        future.add_done_callback(self._cancelled)
        return future

    def _cancelled(self, future: Future[Any]) -> None:
        # A call cancelled before it started never runs _call().
        if future.cancelled():
            self._call_done()

    def _call(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        # Counted done before its result is set: whoever waits for the result finds
        # the thread idle.
        try:
            return fn(*args, **kwargs)
        finally:
            self._call_done()

    def when_idle(self, callback: Callable[[], None], first: Callable[[], object] | None) -> None:
        """Queue ``first``, then ``callback()``: now if no other call was waiting or
        running, else once those and ``first`` are done."""
        with self._lock:
            busy = self._calls > 0
        if first is not None:
            self.submit(first)
        if busy:
            with self._lock:
                if self._calls:
                    self._on_idle = callback
                    return
        callback()

    def _call_done(self) -> None:
        with self._lock:
            self._calls -= 1
            if self._calls or self._on_idle is None:
                return
            callback, self._on_idle = self._on_idle, None
        callback()


class _Pool:
    """Idle request threads, the last one back the first one out (its thread is the
    likeliest to be warm). Threads come back from the event loop or, once a call they
    were still running has finished, from their own thread."""

    def __init__(self) -> None:
        self.idle: list[Executor] = []
        self._lock = threading.Lock()

    def take(self) -> Executor:
        with self._lock:
            if self.idle:
                return self.idle.pop()
        return _RequestThread()

    def give_back(self, executor: Executor, first: Callable[[], object] | None = None) -> None:
        """Run ``first`` on ``executor``'s thread, and keep the executor for another
        request once it is idle, or let its thread end.

        One that asgiref started (a sync call after ``release()``) cannot tell when it
        is idle: its thread ends after what it is running.
        """
        if isinstance(executor, _RequestThread):
            executor.when_idle(lambda: self._keep(executor), first)
            return
        if first is not None:
            executor.submit(first)
        executor.shutdown(wait=False)

    def _keep(self, executor: Executor) -> None:
        with self._lock:
            if len(self.idle) < conf.get("IDLE_REQUEST_THREADS"):
                self.idle.append(executor)
                return
        executor.shutdown(wait=False)

    def forget(self) -> None:
        """In a forked child: the idle executors' threads stayed in the parent."""
        self.idle.clear()


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


class RequestContext(ThreadSensitiveContext):
    """A request's thread-sensitive context, whose thread comes from the pool.

    Like asgiref's, it only takes effect outermost: inside a context that is already
    set, that context and its thread are used, as Django would use them. With
    ``IDLE_REQUEST_THREADS`` 0, the thread is started on demand, as in Django's.
    A class, not an ``@asynccontextmanager``: an open stream keeps its request's context
    alive, and a generator's frame cost 0.75 KiB more per idle stream.
    """

    async def __aenter__(self) -> RequestContext:
        # asgiref's context manager methods are untyped.
        await super().__aenter__()  # type: ignore[no-untyped-call]
        if self.token is not None and conf.get("IDLE_REQUEST_THREADS"):
            SyncToAsync.context_to_thread_executor[self] = _pool.take()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.token is not None:
            # Taken before asgiref's exit, which would shut it down.
            executor = SyncToAsync.context_to_thread_executor.pop(self, None)
            if executor is not None:
                _pool.give_back(executor)
        await super().__aexit__(*exc_info)  # type: ignore[no-untyped-call]


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
    if isinstance(context, RequestContext):
        _pool.give_back(executor, first=connections.close_all)
    else:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)
