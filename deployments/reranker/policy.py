"""What reranking a search means, decided in one place: when to rerank, which candidates the
model sees, and the deadline (outcomes are named in deployments/names.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, TypeVar

from pardus.deployments.names import RerankOutcome
from pardus.deployments.settings import RerankerSettings

T = TypeVar("T")


@dataclass
class RerankRequest:
    """What the search sends to the Reranker deployment."""

    text: str
    image: bytes | None  # the query picture, encoded; None for a text query
    candidates: list[tuple[str, bytes | None]]  # (item id, encoded picture or None: a grey cell)
    # What is left of the search's rerank deadline when sent (RerankPolicy owns the deadline;
    # the reranker stops its model call when it runs out). None: no deadline.
    budget_s: float | None = None


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
        """The rerank stage's deadline as the search sees it (reading the pictures, queueing
        for a replica and the model call); the one owner of reranker.timeout_s."""
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
