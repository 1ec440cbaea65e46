"""The two failures of the catalogue store that callers act on: Milvus unavailable (retry
later) or refusing (a retry would be refused again). Which failure is which: engines/."""

from __future__ import annotations

from pardus.deployments.errors import Refused, Unavailable


class StoreUnavailable(Unavailable):
    """Milvus cannot be reached or did not answer in time (a retry may succeed)."""

    code = "store_unavailable"


class StoreError(Refused):
    """Milvus refused a request, or the collection does not fit this model."""

    code = "store_refused"
