"""The garbage collector's full collections, timed. A collection of the oldest generation
walks every object the process holds and holds its event loop meanwhile: in the worker,
every workflow task and activity that arrives waits; in the API, every request. Each is
logged with its length (a warning from 100 ms, an info line below: the worker's own,
every `WORKER_GC_INTERVAL`, are short) and recorded in the process's metrics
(`partners_gc_pause_milliseconds`, a histogram; `partners_gc_long_pauses_total`, those
over 100 ms), whoever started it: the worker's own timer (`WORKER_GC_INTERVAL`) or the
interpreter."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("partners.collector")

Report = Callable[[float, int], None]  # (seconds the collection took, objects it freed)
# A collection this long is a pause someone waited on: logged as a warning and counted.
LONG_PAUSE = 0.1
# Where each pause is recorded: the process's metrics, once they exist.
_recorders: list[Callable[[float], None]] = []
# The histogram's buckets, in ms: the goal (100 ms) among them.
PAUSE_BUCKETS_MS = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]


def record_pauses(observe: Callable[[float], None], count_long: Callable[[], None]) -> Callable[[], None]:
    """Each full collection's length in ms to `observe` (a histogram); a long one (alert
    PartnersLoopHeldByCollections) counted by `count_long` too. Returns what stops it."""

    def record(took: float) -> None:
        observe(took * 1000)
        if took > LONG_PAUSE:
            count_long()

    _recorders.append(record)
    return lambda: _recorders.remove(record)


def logged(took: float, freed: int) -> None:
    (log.warning if took > LONG_PAUSE else log.info)(
        "full collection held the loop %.0f ms: %d objects freed", took * 1000, freed
    )
    for record in _recorders:
        record(took)


class FullCollections:
    """A `gc.callbacks` entry: each collection of the oldest generation reported."""

    def __init__(self, report: Report = logged) -> None:
        self.report = report
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.report(time.perf_counter() - self.started, info["collected"])


@contextlib.contextmanager
def timed(report: Report = logged) -> Iterator[None]:
    """Full collections reported while inside."""
    callback = FullCollections(report)
    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)
