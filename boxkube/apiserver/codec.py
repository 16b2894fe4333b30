"""Request bodies in, response bodies out: JSON and YAML as kube-apiserver accepts them."""
from __future__ import annotations

import json
from typing import Any

import yaml

from boxkube.apiserver import errors

MAX_BODY = 3 * 1024 * 1024       # upstream's --max-request-body-bytes default (3 MiB)

JSON = "application/json"
YAML = "application/yaml"
_ACCEPTED = (JSON, YAML, "application/json-patch+json", "application/merge-patch+json",
             "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; a missing type counts as JSON."""
    return (content_type or JSON).split(";", 1)[0].strip().lower() or JSON


def check_media_type(content_type: str | None, allowed: tuple[str, ...] = (JSON, YAML)) -> str:
    mt = media_type(content_type)
    if mt not in allowed:
        raise errors.unsupported_media_type(mt)
    return mt


def decode_body(content_type: str, body: bytes) -> Any:
    """Parse a JSON or YAML body; malformed input is a 400 with the parser's words, as upstream."""
    if len(body) > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    if not body.strip():
        raise errors.bad_request("the body of the request was empty")
    try:
        if media_type(content_type).endswith("yaml"):
            obj = yaml.load(body, Loader=_YAMLLoader)
        else:
            obj = json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the body of the request could not be decoded: {_one_line(e)}") from None
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request must be an object")
    return obj


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


class _YAMLLoader(yaml.CSafeLoader):
    """Safe YAML that keeps timestamps as strings: Kubernetes time fields are strings."""


_YAMLLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
