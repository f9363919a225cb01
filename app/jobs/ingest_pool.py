"""IngestPool: submit-time ingest in its own process, never on the API's event loop or threads.

Reading, validating and rewriting an upload is per-row Python work. In the API process it
holds the GIL (one pathological value once froze ``/healthz`` for 32 s) and grows the
service's memory. Here each submission gets a fresh *spawned* process (not forked: the API
process has threads and loaded models), at most ``processes`` at once; later submissions
wait their turn. Fresh each time, so a large or hostile upload's memory goes back to the OS
when it is done, and a process that dies (killed, out of memory) fails only its own
submission, with 503 ``ingest_interrupted``; the next one starts a new process. Start-up
costs about 0.2 s per job. Exceptions come back as raised (``PingjiaError`` pickles with its
code and status).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from app.core.errors import IngestInterrupted

T = TypeVar("T")


class IngestPool:
    def __init__(self, processes: int = 1):
        self._slots = asyncio.Semaphore(processes)
        self._context = mp.get_context("spawn")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a new process (``fn`` must be a module-level function)."""
        async with self._slots:
            executor = ProcessPoolExecutor(1, mp_context=self._context)
            try:
                return await asyncio.wrap_future(executor.submit(fn, *args))
            except BrokenProcessPool:
                raise IngestInterrupted(
                    "the process reading this upload exited unexpectedly (killed, or out of "
                    "memory); the job was not created: retry, or split the input"
                ) from None
            finally:
                executor.shutdown(wait=False, cancel_futures=True)  # the process exits once idle
