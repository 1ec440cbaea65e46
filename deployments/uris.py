"""The one test of whether a location is a URI (s3://, gs://, http://, file://) or a local path."""

from __future__ import annotations

import re

# Two or more scheme characters: "C:/x" is a Windows path, not a URI.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def is_uri(location: str) -> bool:
    """Whether `location` names a URI rather than a path on this machine."""
    return _SCHEME.match(location) is not None
