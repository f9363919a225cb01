"""Memory habits of a long-lived process holding large models.

* Giving freed memory back to the operating system: CPython frees a big request's objects,
  but glibc keeps the pages in its arenas, so the process RSS stays at its peak: after one
  maximum batch the service kept ~0.7 GB. glibc's ``malloc_trim`` returns free pages at the
  top of every arena (:func:`release_memory`).
* Keeping the loaded models out of the cyclic garbage collector's walks (:func:`freeze_loaded`),
  and running it less often (:func:`collect_less_often`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_libc = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _libc.malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
    _libc = None


def release_memory() -> bool:
    """Ask the C allocator to return free memory; False where that is not possible."""
    if _libc is None:
        return False
    return bool(_libc.malloc_trim(0))


def freeze_loaded() -> None:
    """Collect garbage, then move every object alive now (lexicons, models, their tables: they
    live as long as the process) to the collector's permanent generation. Called when models
    are loaded or replaced and before job workers fork.

    Why: a batch allocates ~100,000 small objects, so the collector runs often, and each full
    collection walked every model object again; frozen, they are skipped, and forked job workers
    no longer write to the models' pages by walking them, so those pages stay shared. Frozen
    objects are still freed by reference counting; a cycle among them (a replaced model, say)
    waits for the next call, which unfreezes everything before it collects."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


YOUNG_GENERATION = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def collect_less_often() -> None:
    """Let the collector run once per ``YOUNG_GENERATION`` allocations instead of 700 (the
    older generations' thresholds unchanged).

    Why: analysing one review allocates a few thousand objects that reference counting frees at
    once, but at 700 the collector still ran every few hundred microseconds to look for cycles
    there are almost none of: 1,953 collections, 0.30 s of a 20,000-row scoring run (4 % of it).
    At 50,000 it ran once (0.03 s) and the run took 6 % less time; the few cycles wait a little
    longer. The setting is per process: set wherever a pipeline is built (the service, the CLI,
    spawned job workers and Spark executors build one), and forked job workers inherit it."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, older, oldest)
