"""Request bodies in, response bodies out, as kube-apiserver takes them: JSON, YAML and (requests only) protobuf."""
from __future__ import annotations

from typing import Any

import yaml

from boxkube.api import jsonio
from boxkube.apiserver import errors, protobuf

MAX_BODY = 3 * 1024 * 1024       # upstream's --max-request-body-bytes default (3 MiB)

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# A whole object in a request body (create, update, subresources, delete options). Responses
# stay JSON: clients that send protobuf list JSON in Accept as well.
OBJECT_TYPES = (JSON, YAML, PROTOBUF)


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; a missing type counts as JSON."""
    return (content_type or JSON).split(";", 1)[0].strip().lower() or JSON


def check_media_type(content_type: str | None, allowed: tuple[str, ...] = (JSON, YAML)) -> str:
    mt = media_type(content_type)
    if mt not in allowed:
        raise errors.unsupported_media_type(allowed)
    return mt


def decode_body(content_type: str, body: bytes) -> Any:
    """Parse a JSON, YAML or protobuf body; malformed input is a 400 with the parser's words, as upstream."""
    if len(body) > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    if not body.strip():
        raise errors.bad_request("the body of the request was empty")
    if media_type(content_type) == PROTOBUF:
        try:
            return protobuf.decode(body)
        except protobuf.DecodeError as e:
            raise errors.bad_request(_protobuf_failure(e, body)) from None
    try:
        if media_type(content_type).endswith("yaml"):
            obj = yaml.load(body, Loader=_YAMLLoader)
        else:
            obj = jsonio.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the body of the request could not be decoded: {_one_line(e)}") from None
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request must be an object")
    return obj


def _protobuf_failure(e: protobuf.DecodeError, body: bytes) -> str:
    """Upstream's words (transformDecodeError); it also names the kind the URL expects, which is not known here."""
    if e.kind:
        version = e.api_version.rpartition("/")[2]
        return f'{e.kind} in version "{version}" cannot be handled as a {e.kind}: {e}'
    summary = body[:30].decode(errors="replace") if body.startswith(b"{") else body[:30].hex()
    return f"the object provided is unrecognized: {e} ({summary}{' ...' if len(body) > 30 else ''})"


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


class _YAMLLoader(yaml.CSafeLoader):
    """Safe YAML that keeps timestamps as strings: Kubernetes time fields are strings."""


_YAMLLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def dumps(obj: Any) -> bytes:
    return jsonio.dumps(obj)
