"""What a training run shows on the console: progress lines with elapsed time (and when each
stage started, recorded in metrics.json), and errors as one line and exit status 2."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from training import TrainingError


class Stages:
    """``stage(name)`` prints ``[  12.3s] name`` and remembers when the stage began, so a
    long headless run shows where it is and the artifact records where the time went."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.started: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        self.started[name] = time.perf_counter()
        print(f"[{self.elapsed():6.1f}s] {name}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def offsets(self) -> dict[str, float]:
        """Seconds from the start at which each stage began, rounded for metrics.json."""
        return {k: round(v - self.t0, 1) for k, v in self.started.items()}


@contextmanager
def stop_on_error():
    """In a driver: a TrainingError prints ``error: <message>`` on stderr and exits 2, as
    ``pingjia train`` does, instead of a traceback (the message already names file and line)."""
    try:
        yield
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
