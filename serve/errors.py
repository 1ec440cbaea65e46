"""The one error type of the API and the handlers that turn every failure into ErrorResponse."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pardus.serve.schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A failure with its HTTP status, a stable code and a message that says what to fix."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.retry_after = field, retry_after

    def response(self) -> JSONResponse:
        body = ErrorResponse(error=ErrorBody(code=self.code, message=self.message,
                                             field=self.field))
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return JSONResponse(body.model_dump(), status_code=self.status, headers=headers)


def bad_request(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(400, code, message, field)


def _location(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or None


def validation_error(errors: list[dict]) -> ApiError:
    """Pydantic's errors as one 422 that names every field and what it wants."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    messages = []
    for error in errors[:5]:
        where = _location(tuple(error.get("loc", ())))
        messages.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return ApiError(422, "invalid_request", "; ".join(messages),
                    _location(tuple(first.get("loc", ()))))


_STATUS_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 413: "payload_too_large", 415: "unsupported_media_type"}


def install_handlers(app: FastAPI) -> None:
    """Route every exception through ApiError so clients see one format, never an HTML page."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(list(exc.errors())).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail)).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiError(500, "internal_error", "internal error; the server log has the "
                        "details").response()
