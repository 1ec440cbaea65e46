"""The failures Pardus raises, by what the caller can do about them.

Fix the request (BadQuery, and TooLarge for a size limit), look for something else (NotFound),
try again later (Unavailable, with a hint of when), have the catalogue changed (Conflict: a
version written before what is asked), or accept the answer (Refused: a backend said no and
would say it again; Forbidden: this service does not do that). Each carries a
stable `code` for machines, a message that says what to fix, and the request `field` at fault.

Services raise these; serve/ turns them into HTTP answers in one table (serve/errors.py), and
the HTTP client turns answers back into them, so the CLI and the evaluation handle the same
kinds whether they search in process or over HTTP.
"""

from __future__ import annotations


class PardusError(Exception):
    """A failure a caller should see: a stable code, a message, the field at fault."""

    code = "error"

    def __init__(self, message: str, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.field = field

    def __reduce__(self):  # keeps every attribute when pickled across processes (Ray)
        return (_rebuild, (type(self), self.message, dict(vars(self))))


def _rebuild(kind: type[PardusError], message: str, state: dict) -> PardusError:
    error = Exception.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class BadQuery(PardusError):
    """The request cannot be served as asked; the message says what to change."""

    code = "bad_query"


class TooLarge(BadQuery):
    """The request or one of its pictures is over a size limit."""

    code = "too_large"


class Unauthorized(PardusError):
    """The caller did not prove who it is (a missing or wrong API key)."""

    code = "unauthorized"


class Forbidden(PardusError):
    """This service does not do that, whoever asks (e.g. item writes are off)."""

    code = "forbidden"


class NotFound(PardusError):
    code = "not_found"


class Unavailable(PardusError):
    """A backend cannot answer now (down, restarting, too slow); the same request may succeed
    later. retry_after_s: when to try again, None for the service's default."""

    code = "unavailable"

    def __init__(self, message: str, code: str | None = None, field: str | None = None,
                 retry_after_s: int | None = None):
        super().__init__(message, code, field)
        self.retry_after_s = retry_after_s


class Refused(PardusError):
    """A backend answered no, and would answer the same to a retry (a permanent refusal is
    never reported as 'retry later')."""

    code = "refused"


class Conflict(PardusError):
    """The catalogue is not in a state that allows this (a version written by an older
    schema); the message says what to do."""

    code = "conflict"
