"""Domain errors as HTTP answers: the one table of statuses, the one error format, the handlers.

The services raise deployments/errors.py's kinds; only this module knows HTTP statuses. The
HTTP client (serve/client.py) reads the table the other way, so a caller gets the same kind
of error over HTTP as in process.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pardus.deployments.errors import (
    BadQuery,
    Conflict,
    Forbidden,
    NotFound,
    PardusError,
    Refused,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from pardus.serve.schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)


class UnsupportedMediaType(BadQuery):
    code = "unsupported_media_type"


class InvalidRequest(BadQuery):
    """A field failed validation (pydantic's errors, named field by field)."""

    code = "invalid_request"


# The one table: each kind of failure and its status (the most specific kind wins).
STATUS: dict[type[PardusError], int] = {
    BadQuery: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidRequest: 422,
    Refused: 500,
    Unavailable: 503,
}
INTERNAL = 500


def status_of(error: PardusError) -> int:
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), INTERNAL)


def kind_of(status: int) -> type[PardusError]:
    """The kind of error an HTTP status stands for (the client's side of the table)."""
    exact = {code: kind for kind, code in STATUS.items()
             if kind not in (UnsupportedMediaType, InvalidRequest)}
    if status in exact:
        return exact[status]
    if 400 <= status < 500:
        return BadQuery
    return Unavailable if status in (502, 504) else Refused


def error_response(error: PardusError, retry_after_s: int | None = None) -> JSONResponse:
    """The answer to a failure: its status, the one error format, Retry-After when a retry
    may succeed (the error's own hint, else the service's default)."""
    body = ErrorResponse(error=ErrorBody(code=error.code, message=error.message,
                                         field=error.field))
    headers = None
    if isinstance(error, Unavailable):
        headers = {"Retry-After": str(error.retry_after_s or retry_after_s or 1)}
    return JSONResponse(body.model_dump(), status_code=status_of(error), headers=headers)


def _location(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or None


def validation_error(errors: list[dict]) -> InvalidRequest:
    """Pydantic's errors as one error that names every field and what it wants."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    messages = []
    for error in errors[:5]:
        where = _location(tuple(error.get("loc", ())))
        messages.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return InvalidRequest("; ".join(messages), field=_location(tuple(first.get("loc", ()))))


# FastAPI's and Starlette's own refusals (a body it cannot parse, an unknown route, a wrong
# method) in the same format.
_HTTP_CODES = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}


def install_handlers(app: FastAPI, retry_after_s: int) -> None:
    """Every exception through the table, so clients see one format, never an HTML page."""

    @app.exception_handler(PardusError)
    async def _domain(request: Request, exc: PardusError) -> JSONResponse:
        if status_of(exc) >= 500:
            log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.message,
                        exc.code)
        return error_response(exc, retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = ErrorResponse(error=ErrorBody(
            code=_HTTP_CODES.get(exc.status_code, "http_error"), message=str(exc.detail)))
        return JSONResponse(body.model_dump(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = ErrorResponse(error=ErrorBody(
            code="internal_error", message="internal error; the server log has the details"))
        return JSONResponse(body.model_dump(), status_code=INTERNAL)
