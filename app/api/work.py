"""Where request analysis runs: on a few dedicated threads, never on the event loop.

The event loop only parses, routes and sends bytes, so ``/healthz`` and short requests stay
fast while long texts and batches are analysed. Under the GIL one thread analyses as fast as
two (7.3 vs 6.8 texts of 5,000 characters per second) and leaves the loop far more often
(``/healthz`` p50 7.8 vs 27.6 ms with 8 such clients), hence one by default; the job
workers are the processes that use the other cores. At most ``threads`` analyses run at once and
at most ``queue`` more wait; beyond that a request is answered 503 ``busy`` at once (with
``Retry-After``) instead of piling up memory. Each job also serialises its own response, so
a 20 MB JSON body is never encoded on the loop, and a big one gives its memory back after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core import jsonbytes
from app.core.errors import PingjiaError
from app.core.memory import release_memory

TRIM_AFTER_BYTES = 1_000_000  # responses at least this large hand their memory back


class Busy(PingjiaError):
    code = "busy"
    retry_after = 1


def to_json(body: Any) -> bytes:
    """The bytes of ``body`` as a JSON response (compact UTF-8), made wherever this runs."""
    return jsonbytes.dumps(body)


def _serialised(fn: Callable[..., Any], args: tuple) -> bytes:
    data = to_json(fn(*args))
    if len(data) >= TRIM_AFTER_BYTES:
        release_memory()
    return data


class AnalysisPool:
    """A bounded thread pool for CPU-heavy request work; see the module docstring."""

    def __init__(self, threads: int, queue: int):
        self.threads, self.queue = threads, queue
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="pingjia-analysis")
        self._in_flight = 0  # touched on the event loop only

    async def run_json(self, fn: Callable[..., Any], *args: Any) -> bytes:
        """``fn(*args)`` serialised as JSON, computed on the pool."""
        if self._in_flight >= self.threads + self.queue:
            raise Busy(f"{self._in_flight} analyses are running or waiting; retry in a second")
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        future = self._executor.submit(_serialised, fn, args)
        # Released when the work ends, not when the caller stops waiting (a client that
        # hangs up does not stop a thread).
        future.add_done_callback(lambda _: self._release_from_thread(loop))
        return await asyncio.wrap_future(future)

    @property
    def in_flight(self) -> int:
        """Analyses running or waiting (for the metrics)."""
        return self._in_flight

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop has closed (shutdown): nothing left to count for
            pass

    def _release(self) -> None:
        self._in_flight -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
