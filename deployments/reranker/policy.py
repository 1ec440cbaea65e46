"""What reranking a search means, decided in one place: when to rerank, which candidates the
model sees, the deadline, and one name for each outcome (response, metrics and logs alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence, TypeVar

from pardus.deployments.settings import RerankerSettings

T = TypeVar("T")


class RerankOutcome(str, Enum):
    RERANKED = "reranked"
    OFF = "off"  # the request asked for no reranking
    DISABLED = "disabled"  # this server runs without a reranker
    TOO_FEW = "too_few"  # fewer than two results
    TIMEOUT = "timeout"  # no answer within reranker.timeout_s
    UNUSABLE = "unusable"  # the model's answer could not be turned into an order
    ERROR = "error"  # the engine failed
    UNAVAILABLE = "unavailable"  # no reranker replica answered (down, restarting)


# What the shopper's client is told; stable texts (details go to the server log only).
NOTES: dict[RerankOutcome, str | None] = {
    RerankOutcome.RERANKED: None,
    RerankOutcome.OFF: "not asked for (rerank=false)",
    RerankOutcome.DISABLED: "the reranker is disabled on this server",
    RerankOutcome.TOO_FEW: "fewer than two results: nothing to rerank",
    RerankOutcome.TIMEOUT: "the reranker did not answer in time: retrieval order",
    RerankOutcome.UNUSABLE: "the reranker's answer was unusable: retrieval order",
    RerankOutcome.ERROR: "the reranker failed: retrieval order",
    RerankOutcome.UNAVAILABLE: "the reranker is unavailable: retrieval order",
}


@dataclass
class RerankRequest:
    """What the search sends to the Reranker deployment."""

    text: str
    image: bytes | None  # the query picture, encoded; None for a text query
    candidates: list[tuple[str, bytes | None]]  # (item id, encoded picture or None: a grey cell)


@dataclass
class RerankResult:
    order: list[str]  # item ids, best first: always every candidate exactly once
    outcome: RerankOutcome
    reason: str = ""  # why the first one fits (from the model)
    caption: str | None = None
    caption_cached: bool = False
    model_calls: int = 0
    repairs: list[str] = field(default_factory=list)  # what was fixed in the model's answer
    seconds: float = 0.0  # spent inside the reranker

    @property
    def reranked(self) -> bool:
        return self.outcome is RerankOutcome.RERANKED

    @property
    def note(self) -> str | None:
        return NOTES[self.outcome]

    @classmethod
    def kept(cls, ids: Sequence[str], outcome: RerankOutcome) -> "RerankResult":
        """The retrieval order, with the reason it was kept."""
        return cls(order=list(ids), outcome=outcome)


class RerankPolicy:
    """The rules of the rerank stage, from settings."""

    def __init__(self, settings: RerankerSettings):
        self.settings = settings

    @property
    def deadline_s(self) -> float:
        return self.settings.timeout_s

    def skip(self, asked: bool, available: bool, count: int) -> RerankOutcome | None:
        """Why this search is not reranked, or None when it is."""
        if not asked:
            return RerankOutcome.OFF
        if not available:
            return RerankOutcome.DISABLED
        if count < 2:
            return RerankOutcome.TOO_FEW
        return None

    def split(self, ranked: Sequence[T]) -> tuple[list[T], list[T]]:
        """(head, tail): the model ranks the head (a grid past max_candidates is unreadable);
        the tail keeps its retrieval order after it."""
        size = self.settings.max_candidates
        return list(ranked[:size]), list(ranked[size:])

    def check_head(self, count: int) -> None:
        """The contract of a rerank call: 2 to max_candidates candidates."""
        if not 2 <= count <= self.settings.max_candidates:
            raise ValueError(f"rerank takes 2 to {self.settings.max_candidates} candidates, "
                             f"got {count}")

    @staticmethod
    def finish(result: RerankResult, head: Sequence[str], tail: Sequence[str]) -> RerankResult:
        """The head's result, never trusted blindly (an order that is not a permutation of the
        head is UNUSABLE), followed by the tail."""
        if sorted(result.order) != sorted(head):
            result = RerankResult.kept(head, RerankOutcome.UNUSABLE)
        result.order = [*result.order, *tail]
        return result
