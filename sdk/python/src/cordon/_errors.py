# SPDX-License-Identifier: Apache-2.0
"""The API's errors, one class per error code (docs/api.md, "Errors"): every
error body is {"error": {"code", "message"}}."""

from __future__ import annotations

import json
from typing import Final


class CordonError(Exception):
    """An error the API answered, or a failure to reach it.

    ``status`` is the HTTP status (0 when no answer came), ``code`` the API's
    error code (``not_found``, ...) or ``connection``, ``operation`` the
    operationId of openapi.yaml that failed."""

    def __init__(self, message: str, *, status: int = 0, code: str = "connection",
                 operation: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.operation = operation


class BadRequest(CordonError):
    """400 ``bad_request``: malformed JSON, a wrong type, a bad name."""


class Unauthorized(CordonError):
    """401 ``unauthorized``: no key, an unknown or revoked key."""


class Forbidden(CordonError):
    """403 ``forbidden``: the key's role may not do this."""


class NotFound(CordonError):
    """404 ``not_found``: no such thing in this workspace."""


class MethodNotAllowed(CordonError):
    """405 ``method_not_allowed``."""


class Conflict(CordonError):
    """409 ``conflict``: the run already finished, a name taken."""


class TooLarge(CordonError):
    """413 ``too_large``: the body is over the limit."""


class UnsupportedMediaType(CordonError):
    """415 ``unsupported_media_type``."""


class TooManyRequests(CordonError):
    """429 ``too_many_requests``: a per-key or per-client limit."""


class Internal(CordonError):
    """500 ``internal``: the store failed."""


class Unavailable(CordonError):
    """503 ``unavailable``: a queue is full, or the server is draining."""


class Timeout(CordonError):
    """504 ``timeout``: a decision the run did not confirm in time (it still applies)."""


ERROR_CLASSES: Final[dict[str, type[CordonError]]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "conflict": Conflict,
    "too_large": TooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "too_many_requests": TooManyRequests,
    "internal": Internal,
    "unavailable": Unavailable,
    "timeout": Timeout,
}

_BY_STATUS: Final[dict[int, str]] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 429: "too_many_requests", 500: "internal",
    503: "unavailable", 504: "timeout",
}


def error_for(status: int, body: bytes, operation: str) -> CordonError:
    """The typed error for an answer with an error status."""
    code = _BY_STATUS.get(status, f"http_{status}")
    message = body[:1024].decode("utf-8", "replace")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None  # not JSON: a proxy's page; the status decides the class
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        if isinstance(err.get("code"), str):
            code = err["code"]
        if isinstance(err.get("message"), str):
            message = err["message"]
    cls = ERROR_CLASSES.get(code) or ERROR_CLASSES.get(_BY_STATUS.get(status, ""), CordonError)
    return cls(f"{operation}: {status} {code}: {message}", status=status, code=code,
               operation=operation)
