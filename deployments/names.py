"""The names of what a search is and how it went, defined once: the settings, the query plans,
the API's schemas, the command line and the metrics all use these enums (and their values are
what the API and the metrics show)."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """Which routes a search takes."""

    AUTO = "auto"  # hybrid where the query has words, dense otherwise
    DENSE = "dense"  # vectors only
    LEXICAL = "lexical"  # BM25 over the item's words only
    HYBRID = "hybrid"  # both, fused


class QueryKind(StrEnum):
    TEXT = "text"  # words only: against the image + title vectors
    IMAGE = "image"  # a picture only: against the image vectors
    COMPOSED = "composed"  # a picture and words ("a phone case with this")


class Fusion(StrEnum):
    """How the routes of a hybrid search become one ranking."""

    RRF = "rrf"  # reciprocal rank fusion: ranks only, no calibration between scores
    WEIGHTED = "weighted"  # each route's score normalised to [0, 1], then weighted


class RerankOutcome(StrEnum):
    """Whether a search was reranked, and why not when it was not."""

    RERANKED = "reranked"
    OFF = "off"  # the request asked for no reranking
    DISABLED = "disabled"  # this server runs without a reranker
    TOO_FEW = "too_few"  # fewer than two results
    TIMEOUT = "timeout"  # no answer within the rerank deadline
    UNUSABLE = "unusable"  # the model's answer could not be turned into an order
    ERROR = "error"  # the engine failed
    UNAVAILABLE = "unavailable"  # no reranker replica answered (down, restarting)


# What a person is told about each outcome (the command line; the web page has its own words).
RERANK_NOTES: dict[RerankOutcome, str] = {
    RerankOutcome.RERANKED: "reranked by the vision-language model",
    RerankOutcome.OFF: "not reranked: not asked for (rerank=false)",
    RerankOutcome.DISABLED: "not reranked: the reranker is disabled on this server",
    RerankOutcome.TOO_FEW: "not reranked: fewer than two results",
    RerankOutcome.TIMEOUT: "not reranked: the reranker did not answer in time (retrieval order)",
    RerankOutcome.UNUSABLE: "not reranked: the reranker's answer was unusable (retrieval order)",
    RerankOutcome.ERROR: "not reranked: the reranker failed (retrieval order)",
    RerankOutcome.UNAVAILABLE: "not reranked: the reranker is unavailable (retrieval order)",
}


class Sort(StrEnum):
    """How a page orders the relevant candidates."""

    RELEVANCE = "relevance"  # the final score: relevance with the boosts
    PRICE_ASC = "price_asc"  # cheapest first (unknown prices last)
    PRICE_DESC = "price_desc"
    RATING = "rating"  # best rated first (unknown ratings last)
    NEWEST = "newest"  # most recently added to the shop first


class FacetName(StrEnum):
    """What a results page can narrow by, with counts."""

    CATEGORY = "category"
    BRAND = "brand"
    PRICE = "price"  # price ranges (search.price_ranges)
    RATING = "rating"  # rating bands: 4-5, 3-4, 2-3, 1-2, 0-1


class StockRule(StrEnum):
    """What happens to products that are out of stock."""

    KEEP = "keep"
    DEMOTE = "demote"  # their relevance counts for less (boosts.out_of_stock_factor)
    EXCLUDE = "exclude"  # left out of the results and the counts
