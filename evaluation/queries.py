"""A labelled query set: its JSONL line format, the parser, and errors that name file and line.

One JSON object a line:
    {"id": "q1", "text": "red striped mug", "relevant": {"B0001": 2, "B0002": 1}, "tag": "..."}
    {"image": "queries/q2.jpg", "relevant": ["B0003"]}
    {"text": "the same in blue", "image": "queries/q3.jpg", "relevant": ["B0004"]}
`text` and/or `image` (a path relative to the file's folder, or absolute); `relevant`: item ids
(each gain 1) or ids with graded gains >= 0 (at least one > 0); `id` and `tag` are optional.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pardus.deployments.catalogue.items import ItemId
from pardus.deployments.catalogue.plans import query_kind
from pardus.deployments.embedder.images import ImageError, ImageLimits, decode_image, read_file
from pardus.deployments.names import QueryKind
from pardus.deployments.settings import EmbedderSettings
from pardus.serve.schemas import MAX_TEXT_CHARS

Gain = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MAX_SHOWN = 20  # problems listed in one error


class QueryLine(BaseModel):
    """One line of a query set, as written."""

    model_config = ConfigDict(extra="forbid", strict=False)
    id: str | None = Field(None, min_length=1, max_length=128)
    text: str = Field("", max_length=MAX_TEXT_CHARS)
    image: str | None = Field(None, min_length=1)
    relevant: dict[ItemId, Gain] = Field(min_length=1)
    tag: str = Field("", max_length=64)

    @field_validator("relevant", mode="before")
    @classmethod
    def _list_means_gain_one(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise ValueError("a list of relevant items holds item ids (strings)")
            return {item: 1.0 for item in value}
        return value

    @field_validator("relevant")
    @classmethod
    def _one_relevant(cls, value: dict[str, float]) -> dict[str, float]:
        if not any(gain > 0 for gain in value.values()):
            raise ValueError("at least one item needs a gain above 0")
        return value


@dataclass(frozen=True)
class EvalQuery:
    """A query ready to run: its picture resolved, its kind known."""

    id: str
    line: int
    text: str
    image: Path | None
    grades: dict[str, float]  # item id -> gain (> 0: relevant)
    tag: str = ""

    @property
    def kind(self) -> QueryKind:
        return query_kind(bool(self.text.strip()), self.image is not None)


@dataclass(frozen=True)
class Problem:
    line: int
    field: str | None
    message: str


class QuerySetError(ValueError):
    """A query set that cannot be run; the message lists each problem as FILE:LINE: field: ..."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path, self.problems = path, problems
        shown = [(f"{path}:{p.line}: " if p.line else f"{path}: ")
                 + (f"{p.field}: " if p.field else "") + p.message for p in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            shown.append(f"... and {len(problems) - MAX_SHOWN} more")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class QuerySet:
    path: Path
    queries: tuple[EvalQuery, ...]

    def item_ids(self) -> list[str]:
        return sorted({item for query in self.queries for item in query.grades})

    def kinds(self) -> list[QueryKind]:
        return [kind for kind in QueryKind if any(q.kind is kind for q in self.queries)]

    def select(self, kinds: Iterable[QueryKind] | None = None,
               tags: Iterable[str] | None = None) -> QuerySet:
        kinds, tags = set(kinds or []), set(tags or [])
        kept = tuple(q for q in self.queries
                     if (not kinds or q.kind in kinds) and (not tags or q.tag in tags))
        return replace(self, queries=kept)

    def unknown_ids(self, missing: set[str], catalogue: str) -> QuerySetError:
        """The error for relevant ids the catalogue does not hold, one problem per line."""
        problems = []
        for query in self.queries:
            absent = sorted(missing.intersection(query.grades))
            if absent:
                names = ", ".join(repr(item) for item in absent)
                plural = "s" if len(absent) > 1 else ""
                problems.append(Problem(query.line, "relevant",
                                        f"unknown item id{plural} {names} (not in {catalogue})"))
        return QuerySetError(self.path, problems)


def _field(loc: tuple) -> str | None:
    return ".".join(str(part) for part in loc) or None


def _check_image(reference: str, folder: Path, limits: ImageLimits) -> Path:
    """The picture's path; an ImageError when it is missing or not a usable image."""
    if "://" in reference:
        raise ImageError("unsupported", f"{reference}: give a local path (relative to the "
                                        "query file's folder, or absolute), not a URI")
    path = (folder / reference).resolve()
    decode_image(read_file(path, limits.max_bytes), limits)
    return path


def _parse_line(raw: str, number: int, folder: Path,
                limits: ImageLimits) -> tuple[EvalQuery | None, list[Problem]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [Problem(number, None, f"not JSON ({exc.msg} at column {exc.colno})")]
    if not isinstance(data, dict):
        return None, [Problem(number, None, "each line must be a JSON object")]
    try:
        line = QueryLine.model_validate(data)
    except ValidationError as exc:
        return None, [Problem(number, _field(e["loc"]), e["msg"]) for e in exc.errors()]
    if not line.text.strip() and line.image is None:
        return None, [Problem(number, None, "a query needs a text, an image or both")]
    image = None
    if line.image is not None:
        try:
            image = _check_image(line.image, folder, limits)
        except ImageError as exc:
            return None, [Problem(number, "image", exc.message)]
    return EvalQuery(id=line.id or f"line-{number}", line=number, text=line.text, image=image,
                     grades=dict(line.relevant), tag=line.tag), []


def parse_queries(path: str | Path, limits: ImageLimits | None = None) -> QuerySet:
    """Every query of a JSONL file (blank lines skipped); QuerySetError lists every problem."""
    path = Path(path)
    limits = limits or ImageLimits.of(EmbedderSettings())
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuerySetError(path, [Problem(0, None, f"cannot be read: {exc}")]) from None
    queries, problems, first_line = [], [], {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        query, found = _parse_line(raw, number, path.parent, limits)
        problems += found
        if query is None:
            continue
        if query.id in first_line:
            problems.append(Problem(number, "id", f"{query.id!r} is also the id of line "
                                                  f"{first_line[query.id]}"))
            continue
        first_line[query.id] = number
        queries.append(query)
    if not queries and not problems:
        problems.append(Problem(0, None, "holds no queries"))
    if problems:
        raise QuerySetError(path, problems)
    return QuerySet(path, tuple(queries))
