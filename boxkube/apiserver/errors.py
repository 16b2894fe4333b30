"""API errors as Kubernetes `Status` objects.

Every failure the API server reports is one of these, so clients (kubectl, the
official client) see the same `reason`, `code` and message shapes as from a real
kube-apiserver (k8s.io/apimachinery/pkg/api/errors).
"""
from __future__ import annotations

from typing import Any


class APIError(Exception):
    """A failed request; `status()` is the body the client receives."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.metadata = metadata or {}     # the Status's ListMeta (a fresh continue token on a 410)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.metadata),
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        }
        if self.reason:       # upstream omits an empty reason
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(resource: str, group: str) -> str:
    """`pods` for the core group, `deployments.apps` for others, as upstream messages say."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def not_found(resource: str, name: str, group: str = "") -> APIError:
    return APIError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, resource, group))


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    return APIError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, resource, group))


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> APIError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                    _details(name, resource, group))


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> APIError:
    """422 with one cause per field, each `{"reason","message","field"}` as upstream."""
    # field.ErrorList.ToAggregate: the message lists each distinct error once; causes keep them all.
    lines = list(dict.fromkeys(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes))
    listed = lines[0] if len(lines) == 1 else f"[{', '.join(lines)}]"
    qkind = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": causes}
    if group:
        details["group"] = group
    return APIError(422, "Invalid", f'{qkind} "{name}" is invalid: {listed}', details)


def field_cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def forbidden(resource: str, name: str, why: str, group: str = "") -> APIError:
    target = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return APIError(403, "Forbidden", f"{target} is forbidden: {why}", _details(name, resource, group))


def expired(message: str, continue_token: str = "") -> APIError:
    return APIError(410, "Expired", message, metadata={"continue": continue_token} if continue_token else None)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def unsupported_media_type(accepted: tuple[str, ...]) -> APIError:
    """negotiation.NewUnsupportedMediaTypeError: the 415 names what the endpoint takes."""
    return APIError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(accepted))


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def too_large(limit: int) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)
