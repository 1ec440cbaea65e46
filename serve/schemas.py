"""Every HTTP schema of the Pardus API, with its limits in the types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from pardus.deployments.catalogue.filters import Refinements, SearchFilters
from pardus.deployments.catalogue.items import Category, ItemId, Title
from pardus.deployments.names import FacetName, Fusion, Mode, QueryKind, RerankOutcome, Sort
from pardus.deployments.settings import Boosts, Weights

MAX_K = 100
MAX_TEXT_CHARS = 2000
MAX_ITEMS_PER_REQUEST = 64
# An image inline: base64, or a data URL ("data:image/jpeg;base64,...").
InlineImage = Annotated[str, StringConstraints(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _JsonBody(_Strict):
    """A body FastAPI parses from JSON and validates as Python objects: typed strictly, so
    true is no 1 and "5" no 5 (a whole number is still a float). /v1/search reads its own
    body and validates JSON strictly there (serve/bodies.py), its form fields as text."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- search -----------------------------------------------------------------------------------
class SearchRequest(_Strict):
    """A query by text, by image, or both (the text then says what to do with "this")."""

    text: str = Field("", max_length=MAX_TEXT_CHARS, description="What the shopper asks for.")
    image: InlineImage | None = Field(
        None, description="The query image: base64 or a data URL (JSON requests), or a file "
                          "part named `image` (multipart requests).")
    image_url: str | None = Field(
        None, max_length=2048,
        description="An http(s) URL the server fetches; only hosts on the server's allow-list.")
    k: int = Field(10, ge=1, le=MAX_K, description="How many results.")
    filters: SearchFilters | None = None
    rerank: bool = Field(True, description="Rerank the results with the vision-language model.")
    mode: Mode | None = Field(
        None, description="auto: words and vectors where the query has words, vectors for a "
                          "picture alone; dense: vectors only; lexical: BM25 over titles, "
                          "categories and brands only; hybrid: both, fused. Default: the "
                          "server's (PARDUS_SEARCH__MODE).")
    weights: Weights | None = Field(
        None, description="Weighted fusion of the two routes instead of the server's default "
                          "(RRF for text, weighted for a picture with words); at least one "
                          "above 0.")
    sort: Sort = Field(Sort.RELEVANCE, description="The order of the relevant products: "
                                                   "relevance (with the boosts), price up or "
                                                   "down, rating, newest.")
    facets: list[FacetName] = Field(
        [], max_length=len(FacetName), description="Facets to count over the relevant "
                                                   "products (the server's search window).")
    refine: Refinements | None = Field(
        None, description="Facet values picked: values of one facet are OR'd, facets AND'd.")
    boosts: Boosts | None = Field(
        None, description="Merchandising instead of the server's (PARDUS_SEARCH__BOOSTS).")
    min_relevance: float | None = Field(
        None, ge=0, le=1, description="The relevance cut-off: a product counts when its score "
                                      "is at least this share of the best one's (default: the "
                                      "server's, per kind of score).")
    cursor: str | None = Field(None, max_length=1024, description="The `next` of the previous "
                                                                  "page, sent with the same "
                                                                  "search.")
    debug: bool = Field(False, description="Show each result's relevance, boost and score.")

    @field_validator("weights")
    @classmethod
    def _weighs_something(cls, weights: Weights | None) -> Weights | None:
        if weights is not None and weights.dense == 0 and weights.lexical == 0:
            raise ValueError("at least one weight must be above 0 (all 0 scores every product "
                             '0): e.g. {"dense": 1, "lexical": 0.3}, or mode "dense" or '
                             '"lexical" for one route alone')
        return weights


class ScoreDebug(BaseModel):
    score: float = Field(description="The retrieval score (see `score`).")
    relevance: float = Field(description="Its share of the best product's score (0-1).")
    boost: float = Field(description="What the boosts added (negative: took away).")
    final: float = Field(description="relevance + boost: what relevance sorts by.")


class FacetCount(BaseModel):
    value: str
    count: int = Field(description="Products with this value under the other facets' picks.")
    selected: bool


class Facet(BaseModel):
    name: FacetName
    values: list[FacetCount]


class SearchResult(BaseModel):
    id: str
    score: float = Field(description="The retrieval score in the response's mode: cosine "
                                     "similarity (dense), BM25 (lexical) or the fused score "
                                     "(hybrid); higher is better.")
    retrieval_rank: int = Field(description="1-based place in the ranking (relevance with "
                                            "the boosts, or the sort), before reranking.")
    rank: int = Field(description="1-based final rank (after reranking when reranked).")
    title: str
    category: str
    brand: str
    price: float | None = Field(description="None when the catalogue does not know it.")
    rating: float | None
    image_index: int = Field(description="Which of the item's pictures matched (0: the main "
                                         "one).")
    image_count: int = Field(description="How many pictures the item has.")
    image_url: str = Field(description="The thumbnail of the picture that matched.")
    in_stock: bool
    popularity: float
    added_at: int = Field(description="Unix seconds the shop added it (0: unknown).")
    debug: ScoreDebug | None = Field(None, description="With debug: how the order came about.")


class RerankInfo(BaseModel):
    outcome: RerankOutcome = Field(
        description="Whether the order comes from the reranker: reranked, or why not: off (not "
                    "asked), disabled, too_few (under two results), timeout, unusable (the "
                    "model's answer), error (the engine), unavailable (no replica); then the "
                    "results are in retrieval order.")
    model_calls: int = Field(0, description="Calls made to the vision-language model.")
    caption_cached: bool = Field(False, description="The query image's caption came from cache.")
    repairs: list[str] = Field([], description="What was fixed in the model's answer.")


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(description="One per item (its best picture).")
    kind: QueryKind = Field(description="text, image or composed (a picture and words).")
    mode: Mode = Field(description="The mode the search ran in: dense, lexical or hybrid.")
    fusion: Fusion | None = Field(None, description="How two routes were fused (None: one "
                                                    "route ran).")
    reason: str = Field("", description="The reranker's reason why the first result fits.")
    caption: str | None = Field(None, description="The reranker's caption of the query image.")
    truncated: bool = Field(False, description="The text was cut to the model's token budget.")
    rerank: RerankInfo = Field(description="Whether and why the results were reranked, and how "
                                            "the rerank stage went.")
    sort: Sort
    next: str | None = Field(None, description="The cursor of the next page (send it with the "
                                               "same search); None on the last page.")
    total: int = Field(description="Relevant products under the picks: what the pages show.")
    relevant: int = Field(description="Products above the relevance cut-off, before picks.")
    window: int = Field(description="Products the search ranked (the top matches): facet "
                                    "counts, sorts and pages cover these.")
    facets: list[Facet] = Field([], description="The facets asked for, with counts.")
    currency: str = Field(description="ISO 4217 code of every price.")
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per stage: embed, search, load_images, rerank (the call, "
                    "queueing included), rerank_model (inside the reranker), total.")


# -- items ------------------------------------------------------------------------------------
class ItemIn(_JsonBody):
    """A catalogue item to add or replace (by id)."""

    id: ItemId
    title: Title = ""
    category: Category = ""
    brand: Category = ""
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    in_stock: bool = True
    popularity: float = Field(0.0, ge=0, allow_inf_nan=False)
    added_at: int | None = Field(None, ge=0, description="Unix seconds; default: now.")
    image: InlineImage = Field(description="The product image: base64 or a data URL.")


class ItemPatch(_JsonBody):
    """Attributes to change without embedding again (none of them is searched by words)."""

    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    rating: float | None = Field(None, ge=0, le=5, allow_inf_nan=False)
    in_stock: bool | None = None
    popularity: float | None = Field(None, ge=0, allow_inf_nan=False)
    added_at: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _sends_values(self) -> "ItemPatch":
        sent = self.model_dump(exclude_unset=True)
        if not sent:
            raise ValueError("send at least one of price, rating, in_stock, popularity, "
                             "added_at")
        nulls = sorted(name for name, value in sent.items() if value is None)
        if nulls:
            raise ValueError(f"{nulls}: null is no value to set; leave a field out to keep it")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent, and only those."""
        return self.model_dump(exclude_unset=True)


class ItemsRequest(_JsonBody):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class ItemFailure(BaseModel):
    id: str
    code: str
    message: str


class ItemsResponse(BaseModel):
    upserted: list[str] = Field(description="Ids now searchable, in request order.")
    failed: list[ItemFailure] = Field(description="Items not stored, each with what to fix.")


class Item(BaseModel):
    id: str
    title: str
    category: str
    brand: str
    price: float | None
    rating: float | None
    image_url: str = Field(description="The main picture's thumbnail.")
    image_urls: list[str] = Field(description="Every picture's thumbnail, the main one first.")
    ingested_at: int
    in_stock: bool
    popularity: float
    added_at: int
    currency: str = Field(description="ISO 4217 code of the price.")


# -- health and errors --------------------------------------------------------------------------
class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(description="Each dependency: 'ok' or what is wrong.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_image.")
    message: str = Field(description="What went wrong and what to fix.")
    field: str | None = Field(None, description="The request field at fault, if one is.")


class ErrorResponse(BaseModel):
    """The one error format of every endpoint."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Bad input: the message says what to fix.",
        401: "A valid API key is required (Authorization: Bearer KEY or X-API-Key).",
        413: "The request or an image is too large.",
        415: "Unsupported content type.",
        422: "A field failed validation.",
        503: "Milvus or the embedder is unavailable; retry after Retry-After seconds.",
    }.items()
}
