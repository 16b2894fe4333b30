"""The one exception every failed API request raises, carrying the Kubernetes `Status`.

The `is_*` properties follow k8s.io/apimachinery/pkg/api/errors: a known
`reason` decides; a body without a known reason (a proxy's plain-text 404, say)
is judged by its HTTP code.
"""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

# Status reasons upstream knows, and the HTTP code each one comes with.
_REASON_CODES = {
    "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "MethodNotAllowed": 405,
    "NotAcceptable": 406, "AlreadyExists": 409, "Conflict": 409, "Gone": 410, "Expired": 410,
    "RequestEntityTooLarge": 413, "UnsupportedMediaType": 415, "Invalid": 422, "TooManyRequests": 429,
    "InternalError": 500, "ServerTimeout": 500, "ServiceUnavailable": 503, "Timeout": 504,
}
# The reason a bare HTTP code stands for when the body is not a Status (upstream's
# newUnstructuredResponseError does the same).
_CODE_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                 405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Gone",
                 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
                 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


class ApiError(Exception):
    """A request the API server refused or failed; `status` is its `Status` object."""

    def __init__(self, status: dict[str, Any]):
        self.status = status
        self.code = int(status.get("code") or 0)
        self.reason: str = status.get("reason") or ""
        self.message: str = status.get("message") or ""
        self.details: dict[str, Any] = status.get("details") or {}
        super().__init__(f"{self.code} {self.reason}: {self.message}" if self.reason else f"{self.code}: {self.message}")

    @classmethod
    def from_response(cls, code: int, body: bytes) -> "ApiError":
        """The error of an HTTP response: its Status body, or a Status made up from the code and text."""
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("kind") == "Status":
            status.setdefault("code", code)
            return cls(status)
        text = body.decode("utf-8", "replace").strip()
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "unknown error"
        return cls({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "code": code, "reason": _CODE_REASONS.get(code, ""), "message": text[:1024] or phrase})

    def _is(self, *reasons: str) -> bool:
        if self.reason in reasons:
            return True
        return self.reason not in _REASON_CODES and self.code in {_REASON_CODES[r] for r in reasons}

    @property
    def is_not_found(self) -> bool:
        return self._is("NotFound")

    @property
    def is_already_exists(self) -> bool:
        return self._is("AlreadyExists")

    @property
    def is_conflict(self) -> bool:
        """409 Conflict: a stale resourceVersion or a failed precondition (not AlreadyExists)."""
        return self._is("Conflict")

    @property
    def is_gone(self) -> bool:
        """410, Gone or Expired: a resourceVersion or continue token older than etcd's compaction."""
        return self._is("Gone", "Expired")

    @property
    def is_invalid(self) -> bool:
        return self._is("Invalid")

    @property
    def is_bad_request(self) -> bool:
        return self._is("BadRequest")

    @property
    def is_forbidden(self) -> bool:
        return self._is("Forbidden")

    @property
    def is_unauthorized(self) -> bool:
        return self._is("Unauthorized")

    @property
    def is_too_many_requests(self) -> bool:
        return self._is("TooManyRequests")

    @property
    def is_timeout(self) -> bool:
        return self._is("Timeout", "ServerTimeout")


class TransportError(ConnectionError):
    """No answer from the API server: it could not be reached, or the connection broke or timed out.

    `sent` is False when the request never left this machine (the connection
    could not be opened, or no connection came free in time), so it is safe to
    send again whatever its verb. An OSError, so code that already handles
    network failures handles this too.
    """

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent
