"""Steady search load on a service over loopback, every answer recorded: what a fault under load
costs (tests/serve/test_faults_under_load.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Self

import httpx

QUERIES = ("a yellow bag", "a red mug", "a blue lamp", "a green shoe")


@dataclass(frozen=True)
class Answer:
    sent: float  # seconds since the load began
    seconds: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    rerank: bool  # asked to rerank
    outcome: str = ""  # rerank.outcome of a 200
    code: str = ""  # error.code of an error answer, or the exception's name
    retry_after: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Load:
    """`clients` threads, each sending searches one after another to url, at most one per
    `pace_s`, until `stop()` or `max_requests` in all; one in `rerank_every` asks to rerank."""

    url: str
    clients: int = 4
    pace_s: float = 0.2
    rerank_every: int = 4
    max_requests: int = 3000
    timeout_s: float = 60.0
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self.start = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(self.clients)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def now(self) -> float:
        return time.monotonic() - self.start

    def _next(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or self._sent >= self.max_requests:
                return None
            self._sent += 1
            return self._sent

    def _client(self, number: int) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while (n := self._next()) is not None:
                started = time.monotonic()
                rerank = n % self.rerank_every == 0
                # a text no cache has seen: every search needs the embedder
                self.answers.append(self._search(client, f"{QUERIES[n % len(QUERIES)]} {n}",
                                                 rerank))
                self._stop.wait(max(0.0, self.pace_s - (time.monotonic() - started)))

    def _search(self, client: httpx.Client, text: str, rerank: bool) -> Answer:
        sent = self.now()
        try:
            response = client.post(f"{self.url}/v1/search",
                                   json={"text": text, "k": 4, "rerank": rerank})
        except httpx.HTTPError as exc:
            return Answer(sent, self.now() - sent, 0, rerank, code=type(exc).__name__)
        seconds = self.now() - sent
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200:
            return Answer(sent, seconds, 200, rerank, outcome=body["rerank"]["outcome"])
        code = (body.get("error") or {}).get("code", "") if isinstance(body, dict) else ""
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.isdigit():  # as a well-behaved client does
            self._stop.wait(min(int(retry_after), 5))
        return Answer(sent, seconds, response.status_code, rerank, code=code,
                      retry_after=retry_after is not None)

    def since(self, t: float) -> list[Answer]:
        return [a for a in self.answers if a.sent >= t]

    def healthy_for(self, seconds: float, good) -> bool:
        """Whether every answer sent in the last `seconds` was good (and there were some)."""
        recent = self.since(self.now() - seconds)
        return len(recent) >= self.clients and all(good(a) for a in recent)


def recovery(answers: list[Answer], fault_at: float, good) -> float | None:
    """Seconds from the fault to the first request after which every answer was good; None
    when the answers never recovered."""
    after = sorted((a for a in answers if a.sent >= fault_at), key=lambda a: a.sent)
    bad = [a for a in after if not good(a)]
    if not bad:
        return 0.0
    last_bad = bad[-1].sent
    if not any(a.sent > last_bad for a in after):
        return None
    return last_bad - fault_at


def top_ids(url: str, texts=QUERIES) -> dict[str, list[str]]:
    with httpx.Client(timeout=60) as client:
        return {text: [r["id"] for r in client.post(f"{url}/v1/search", json={
            "text": text, "k": 4, "rerank": False}).json()["results"]] for text in texts}
