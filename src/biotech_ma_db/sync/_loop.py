"""``LoopThread``: one event loop on a daemon thread, and blocking calls into it.

The synchronous facade runs every coroutine of the async API here, never on the caller's
loop: a caller inside a running loop (Jupyter, an ``async def`` test) or on any plain
thread blocks on a :class:`concurrent.futures.Future` while this thread does the I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Final, ParamSpec, TypeVar

__all__ = ["LoopThread"]

ParamsT = ParamSpec("ParamsT")
ResultT = TypeVar("ResultT")

_START_TIMEOUT: Final = 10.0


class LoopThread:
    """A private event loop running on a daemon thread until :meth:`close`.

    A daemon thread, so a script or notebook that never closes its database still exits
    (a non-daemon worker, such as anyio's blocking portal uses, would keep the
    interpreter waiting at exit for a loop that nobody stops).

    Args:
        name: Name of the thread (shows in tracebacks and debuggers).
    """

    def __init__(self, name: str = "biotech-ma-db-loop") -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._loop is None:
            raise RuntimeError("the event-loop thread did not start")

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return f"<LoopThread {self._thread.name} {state}>"

    @property
    def running(self) -> bool:
        """Whether the loop still accepts work."""
        return self._thread.is_alive() and self._stop is not None and not self._stop.is_set()

    def run(self, awaitable: Awaitable[ResultT]) -> ResultT:
        """Run ``awaitable`` on the loop thread and block until it is done.

        Exceptions raised there are raised here.  An interrupt of the waiting thread
        (Ctrl-C, ``KeyboardInterrupt`` in a notebook) cancels the work on the loop.

        Raises:
            RuntimeError: Called from the loop thread itself (it would wait for itself),
                or after :meth:`close`.
        """
        try:
            loop = self._checked_loop()
        except RuntimeError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # refused: it never runs, so no "never awaited" warning
            raise
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def call(
        self,
        fn: Callable[ParamsT, Awaitable[ResultT]],
        /,
        *args: ParamsT.args,
        **kwargs: ParamsT.kwargs,
    ) -> ResultT:
        """``fn(*args, **kwargs)`` on the loop thread, awaited there; its result here."""

        async def called() -> ResultT:
            return await fn(*args, **kwargs)

        return self.run(called())

    def close(self) -> None:
        """Stop the loop (pending tasks are cancelled) and wait for the thread to end."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or not self._thread.is_alive():
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("the loop thread cannot close itself")
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop is closed already
            return
        self._thread.join()

    def _checked_loop(self) -> asyncio.AbstractEventLoop:
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "the synchronous API was called from its own event-loop thread, where it "
                "would wait for itself: await the async API there instead"
            )
        if self._loop is None or not self.running:
            raise RuntimeError("the synchronous database is closed")
        return self._loop

    def _main(self) -> None:
        # asyncio.run: on the way out it cancels leftover tasks, finalizes async
        # generators and shuts the default executor down, as any asyncio program's loop.
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()


async def _awaited(awaitable: Awaitable[ResultT]) -> ResultT:
    """A coroutine for ``run_coroutine_threadsafe``, which accepts nothing else."""
    return await awaitable
