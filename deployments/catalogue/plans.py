"""How each kind of query searches the catalogue: which vectors, whether BM25 joins, how the
routes are fused. The defaults live in settings (`search`); a request may pick the mode and the
weights. A plan says what to search; the engine adapter (engines/) runs it."""

from __future__ import annotations

from dataclasses import dataclass

from pardus.deployments.catalogue.schema import IMAGE_VECTOR, PAIR_VECTOR
from pardus.deployments.errors import BadQuery
from pardus.deployments.names import Fusion, Mode, QueryKind
from pardus.deployments.settings import SearchSettings, Weights


class PlanError(BadQuery):
    """The request asks for a search its query cannot make."""

    code = "invalid_mode"


@dataclass(frozen=True)
class SearchPlan:
    kind: QueryKind
    mode: Mode  # as resolved: never AUTO
    dense_field: str | None  # the vector field the query vector searches; None: no dense route
    lexical: bool  # BM25 over the item's words
    fusion: Fusion  # how the routes are fused (when both run)
    weights: Weights
    rrf_k: int
    candidates: int  # hits each route hands to the fusion (and to grouping by item)


def query_kind(has_text: bool, has_image: bool) -> QueryKind:
    if has_image:
        return QueryKind.COMPOSED if has_text else QueryKind.IMAGE
    return QueryKind.TEXT


def make_plan(kind: QueryKind, settings: SearchSettings, mode: Mode | None = None,
              weights: Weights | None = None) -> SearchPlan:
    """The plan for a query of this kind; PlanError when the mode needs what it lacks or
    cannot use all it has."""
    mode = Mode(mode or settings.mode)
    if mode is Mode.AUTO:
        mode = Mode.DENSE if kind is QueryKind.IMAGE else Mode.HYBRID
    if kind is QueryKind.IMAGE and mode in (Mode.LEXICAL, Mode.HYBRID):
        raise PlanError(f"mode {mode.value!r} searches words: give a text with the image, or "
                        "use mode 'dense' or 'auto'", field="mode")
    if kind is QueryKind.COMPOSED and mode is Mode.LEXICAL:
        raise PlanError("mode 'lexical' searches words alone and would drop the image: use mode "
                        "'auto' or 'hybrid' (words and picture, fused) or 'dense' (one vector "
                        "of both), or send the text alone", field="mode")
    dense = PAIR_VECTOR if kind is QueryKind.TEXT else IMAGE_VECTOR
    composed = kind is QueryKind.COMPOSED
    fusion = Fusion.WEIGHTED if weights is not None else (
        settings.composed_fusion if composed else settings.text_fusion)
    weights = weights or (settings.composed_weights if composed else settings.text_weights)
    return SearchPlan(kind=kind, mode=mode,
                      dense_field=None if mode is Mode.LEXICAL else dense,
                      lexical=mode in (Mode.LEXICAL, Mode.HYBRID), fusion=fusion,
                      weights=weights, rrf_k=settings.rrf_k,
                      candidates=max(settings.candidates, settings.window))
