"""How far an ingest is: the write tasks count the items they finish on a small Ray actor,
and the driver reads the count while Ray Data runs (its own progress bars stay off)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import ray

from pardus.ingest.sources import Source

Report = Callable[[int, int | None], None]  # (items done, items in the source or None)


def count_items(source: Source) -> int | None:
    """Items in a manifest where that is cheap to know (None: unknown, the bar just runs)."""
    if source.remote:
        return None
    if source.kind == "parquet":
        return pq.ParquetFile(source.location).metadata.num_rows
    with open(Path(source.location), "rb") as manifest:
        return sum(1 for line in manifest if line.strip())


def counter():
    """A counter actor (CPU-less: it never holds a core)."""
    @ray.remote(num_cpus=0)
    class Counter:
        def __init__(self):
            self.done = 0

        def add(self, items: int) -> None:
            self.done += items

        def value(self) -> int:
            return self.done

    return Counter.remote()


def items_finished(batch: dict) -> int:
    """Items a written block finishes: each good item's first picture, each item-level row."""
    return int(sum(1 for index, scope in zip(batch["image_index"], batch["scope"])
                   if index == 0 or scope == "item"))


class Watch:
    """Calls `report(done, total)` every `every` seconds from a thread, until stopped."""

    def __init__(self, actor, total: int | None, report: Report, every: float = 0.5):
        self.actor, self.total, self.report, self.every = actor, total, report, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ingest-progress")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.report(ray.get(self.actor.value.remote(), timeout=5), self.total)
            except Exception:  # progress is best effort: never fail the ingest for it
                continue

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

