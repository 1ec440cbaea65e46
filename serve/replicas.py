"""Which model deployments have a replica that can answer, as the Serve controller sees it, so
that a call to a deployment with none fails at once instead of queueing until a replacement
has loaded (Serve's router holds such a call for as long as its caller waits: 37 s for a
replaced vLLM replica, measured)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pardus.serve.rerank_stage import abandon

log = logging.getLogger(__name__)
T = TypeVar("T")
# Replicas that take requests: RUNNING, and those draining to another node meanwhile.
SERVING = ("RUNNING", "PENDING_MIGRATION")


class NoReplica(RuntimeError):
    """No replica of the deployment is running: it is being replaced (or never started)."""

    def __init__(self, deployment: str):
        super().__init__(f"no {deployment} replica is running: it is being replaced")
        self.deployment = deployment


Counts = dict[str, int]  # deployment name -> replicas that serve


class ReplicaWatch:
    """The controller's serving-replica counts of one application's deployments, read every
    `every_s` seconds in the background (a status call per Ingress replica and period)."""

    def __init__(self, read: Callable[[], Counts], every_s: float = 1.0):
        """read: the counts now (a blocking call; run in a thread)."""
        self._read, self.every_s = read, every_s
        self._counts: Counts | None = None  # None: not read yet, or the controller is away
        self._down: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task | None = None

    def serving(self, deployment: str) -> int | None:
        """Its serving replicas at the last read; None where not known (then calls go on)."""
        return None if self._counts is None else self._counts.get(deployment)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            try:
                self._update(await asyncio.to_thread(self._read))
            except Exception as exc:  # the controller restarting: calls go on meanwhile
                if self._counts is not None:  # once per outage, not once a period
                    log.warning("cannot read the deployments' replicas: %r", exc)
                self._update(None)
            await asyncio.sleep(self.every_s)

    def _update(self, counts: Counts | None) -> None:
        self._counts = counts
        for name, event in self._down.items():
            if self.serving(name) == 0:
                event.set()  # the calls waiting on it give up now
            elif event.is_set():
                self._down[name] = asyncio.Event()

    async def call(self, deployment: str, call: Callable[[], Awaitable[T]]) -> T:
        """call()'s result; NoReplica at once (call not made) where the deployment has no
        serving replica, or as soon as it has none left while the call waits."""
        self._start()
        if self.serving(deployment) == 0:
            raise NoReplica(deployment)
        down = self._down.setdefault(deployment, asyncio.Event())
        task, gone = asyncio.ensure_future(call()), asyncio.ensure_future(down.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not task.done():
                abandon(task)  # a handle call that waits for a replica
        if task.done() and not task.cancelled():
            return task.result()
        raise NoReplica(deployment)

