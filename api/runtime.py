"""Process-level tuning of an API process: the garbage collector.

A whole-VDN answer builds some 15,000 short-lived objects (a dict per campaign and batch, an
int per counter). With CPython's default gen-0 threshold of 700 that is about twenty young
collections per request, and the older generations fill up quickly enough to trigger full
collections over the whole framework heap (FastAPI, pydantic, redis-py), which are the p99
spikes that docs/benchmarks.md, section "Statistics API", measures. A larger young generation
lets a request's garbage die between collections, and freezing the start-up heap keeps it out
of every collection for good. The answers' objects hold no reference cycles, so memory stays flat.
"""

from __future__ import annotations

import gc

# Objects allocated before a young collection; a whole-VDN request allocates ~15,000.
YOUNG_GENERATION_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Call once, after start-up: the heap built so far is frozen out of every collection."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
