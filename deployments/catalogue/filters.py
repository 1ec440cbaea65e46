"""Structured search filters and their translation into Milvus filter expressions.

User strings reach the expression only as escaped string literals inside a fixed template, so
an injection attempt is a literal match (finding nothing) or, for characters that have no
business in a category, a FilterError that says what to fix.
"""

from __future__ import annotations

import math
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pardus.deployments.errors import BadQuery
from pardus.deployments.names import FacetName

MAX_CATEGORIES = 50
MAX_CATEGORY_LENGTH = 256


class FilterError(BadQuery):
    """A filter the caller must fix."""

    code = "invalid_filters"


class SearchFilters(BaseModel):
    """What shoppers filter on; every field is optional and they combine with AND."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] | None = Field(
        None, max_length=MAX_CATEGORIES, description="Match any of these categories exactly."
    )
    price_min: float | None = Field(None, ge=0, description="Lowest price, inclusive.")
    price_max: float | None = Field(None, ge=0, description="Highest price, inclusive.")
    rating_min: float | None = Field(None, ge=0, le=5, description="Lowest average rating.")

    @field_validator("categories")
    @classmethod
    def _clean_categories(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        for value in values:
            if not value or len(value) > MAX_CATEGORY_LENGTH:
                raise ValueError(f"a category must have 1 to {MAX_CATEGORY_LENGTH} characters")
            if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
                raise ValueError(f"category {value!r} contains control or unassigned characters")
        return values

    @field_validator("price_min", "price_max", "rating_min")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "SearchFilters":
        if self.price_min is not None and self.price_max is not None:
            if self.price_min > self.price_max:
                raise ValueError("price_min must not be greater than price_max")
        return self

    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())



class Refinements(BaseModel):
    """Facet values a shopper picked: values within one facet are OR'd, facets are AND'd.
    Price ranges and rating bands are named as the facets name them ("25-50", "500+",
    "4-5")."""

    model_config = ConfigDict(extra="forbid")
    category: list[str] = Field([], max_length=50)
    brand: list[str] = Field([], max_length=50)
    price: list[str] = Field([], max_length=20)
    rating: list[str] = Field([], max_length=5)

    def of(self, facet: FacetName) -> list[str]:
        return getattr(self, facet.value)

def string_literal(value: str) -> str:
    """A Milvus expression string literal: double quotes, backslash-escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_expression(filters: SearchFilters | None) -> str:
    """SearchFilters -> a Milvus boolean expression over the typed scalar fields ("" = all)."""
    if filters is None:
        return ""
    parts: list[str] = []
    if filters.categories:
        literals = ", ".join(string_literal(c) for c in filters.categories)
        parts.append(f"category in [{literals}]")
    if filters.price_min is not None:
        parts.append(f"price >= {float(filters.price_min)!r}")
    if filters.price_max is not None:
        parts.append(f"(price >= 0 and price <= {float(filters.price_max)!r})")
    if filters.rating_min is not None:
        parts.append(f"rating >= {float(filters.rating_min)!r}")
    return " and ".join(parts)


def parse_filters(data: dict | None) -> SearchFilters | None:
    """Validate a filters mapping, turning pydantic's error into a FilterError message."""
    if data is None:
        return None

    try:
        return SearchFilters.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'filters'}: {err['msg']}"
            for err in exc.errors()
        )
        raise FilterError(f"invalid filters: {problems}", field="filters") from None
