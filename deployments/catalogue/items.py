"""A catalogue item and its rules: the one model the API, ingest and the store all use.

The rules are Milvus's own: VARCHAR `max_length` counts UTF-8 bytes, so text limits are byte
limits here too. An id is ASCII from a small set, so it is safe in URLs, filters and logs. A
price or rating that is not a finite number >= 0 is UNKNOWN, which every price/rating filter
excludes.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from pardus.deployments.errors import BadQuery

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
MAX_ID_BYTES = 128  # the pattern's length, in ASCII
MAX_TITLE_BYTES = 1024
MAX_CATEGORY_BYTES = 256
MAX_IMAGE_REF_BYTES = 2048
MAX_IMAGES = 8  # pictures one item may have in the store (the schema's array capacity)
UNKNOWN = -1.0

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def clip_utf8(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits `limit` UTF-8 bytes (never half a character)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def parse_number(value: Any) -> float:
    """A price or rating as catalogues give it (12.5, "$12.99", "1,299.00", None, "None") ->
    a finite number >= 0, else UNKNOWN."""
    if isinstance(value, bool):
        return UNKNOWN
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _NUMBER.search(value.replace(",", ""))
        number = float(match.group(0)) if match else UNKNOWN
    else:
        return UNKNOWN
    return number if math.isfinite(number) and number >= 0 else UNKNOWN


def _fits_bytes(limit: int):
    def check(value: str) -> str:
        size = utf8_len(value)
        if size > limit:
            raise PydanticCustomError(
                "string_too_long_bytes",
                "must be at most {limit} bytes in UTF-8 (Milvus counts bytes), got {size}",
                {"limit": limit, "size": size})
        if "\x00" in value:
            raise PydanticCustomError("string_nul", "must not contain NUL characters")
        return value
    return AfterValidator(check)


ItemId = Annotated[str, StringConstraints(pattern=ID_PATTERN), Field(
    description="1 to 128 characters: letters, digits and . _ : - (not first).")]
Title = Annotated[str, Field(max_length=MAX_TITLE_BYTES,
                             description=f"At most {MAX_TITLE_BYTES} bytes in UTF-8."),
                  _fits_bytes(MAX_TITLE_BYTES)]
Category = Annotated[str, Field(max_length=MAX_CATEGORY_BYTES,
                                description=f"At most {MAX_CATEGORY_BYTES} bytes in UTF-8."),
                     _fits_bytes(MAX_CATEGORY_BYTES)]
ImageRef = Annotated[str, Field(min_length=1), _fits_bytes(MAX_IMAGE_REF_BYTES)]
Number = Annotated[float, BeforeValidator(parse_number)]


class ItemInvalid(BadQuery):
    """An item breaks a rule; `code` names which (bad_id, bad_title, ...), for skip reports."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code)


class CatalogueItem(BaseModel):
    """One product as the store holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ItemId
    title: Title = ""
    category: Category = ""
    brand: Category = ""  # the maker or store (Amazon's `store`): searchable words
    price: Number = UNKNOWN
    rating: Number = UNKNOWN
    # Where the pictures live (paths under the image root, or URIs), the main one first.
    images: tuple[ImageRef, ...] = Field(min_length=1, max_length=MAX_IMAGES)
    ingested_at: int = 0  # unix seconds
    # Business signals: they change without embedding again (PATCH, ingest --attributes-only).
    in_stock: bool = True
    popularity: float = Field(0.0, ge=0, allow_inf_nan=False)  # e.g. how many rated it
    added_at: int = Field(0, ge=0)  # unix seconds the shop added it (0: unknown)

    @property
    def words(self) -> str:
        """What lexical search matches: title, category and brand."""
        return "\n".join(part for part in (self.title, self.category, self.brand) if part)

    @classmethod
    def from_source(cls, **fields: Any) -> "CatalogueItem":
        """An item from a catalogue row: over-long titles and categories are cut (on a
        character boundary); a bad id or image reference is an ItemInvalid naming the rule."""
        for name, limit in (("title", MAX_TITLE_BYTES), ("category", MAX_CATEGORY_BYTES),
                            ("brand", MAX_CATEGORY_BYTES)):
            fields[name] = clip_utf8(str(fields.get(name) or ""), limit).replace("\x00", "")
        try:
            return cls(**fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "item"
            code = "bad_image" if field == "images" else f"bad_{field}"
            raise ItemInvalid(code, f"{field}: {error['msg']}") from None

    @classmethod
    def stored(cls, row: dict[str, Any]) -> "CatalogueItem":
        """An item read back from the store, as written (rows written by older releases may
        predate today's rules: they are shown, not refused)."""
        values = {name: row[name] for name in cls.model_fields if name in row}
        # a search window's items come without their pictures (store.with_pictures adds them)
        return cls.model_construct(**{**values, "images": tuple(values.get("images", ()))})

    @staticmethod
    def known(value: float) -> float | None:
        """A price or rating for display: None when unknown."""
        return None if value == UNKNOWN else float(value)


def check_id(item_id: str) -> str:
    """The id if it follows the rules, else ItemInvalid('bad_id')."""
    if not isinstance(item_id, str) or re.fullmatch(ID_PATTERN, item_id) is None:
        raise ItemInvalid("bad_id", f"item id {str(item_id)[:80]!r} must be 1 to 128 "
                                    "characters: letters, digits and . _ : - (not first)")
    return item_id


FIELDS = list(CatalogueItem.model_fields)
