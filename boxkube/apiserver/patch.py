"""PATCH bodies applied to stored objects: JSON patch, merge patch, strategic merge patch.

This copies what kube-apiserver does in k8s.io/apiserver/pkg/endpoints/handlers/patch.go:

- `application/json-patch+json` (RFC 6902) is applied by the `jsonpatch` library;
- `application/merge-patch+json` (RFC 7386) follows evanphx/json-patch's MergePatch,
  which also drops `null`s from the values it adds;
- `application/strategic-merge-patch+json` follows
  k8s.io/apimachinery/pkg/util/strategicpatch: maps merge, lists whose schema says
  `x-kubernetes-patch-strategy: merge` merge by `x-kubernetes-patch-merge-key`, other
  lists are replaced, and the `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
  `$deleteFromPrimitiveList/<field>` directives are honoured. The strategies come from
  the upstream schemas (`schema.py`) instead of Go struct tags; a field the schema does
  not describe gets merge-patch semantics.

Failures are `APIError`s with the code, reason and message kube-apiserver sends for the
same input, including its Go-formatted texts (`map[name:x]`, `invalid character ...`).
Upstream decodes the patched JSON into a typed object, which silently turns `null`s
into absent fields; this store keeps plain dicts, so values copied wholesale from a
strategic patch have their `null` fields dropped here instead.

Nothing here mutates its arguments: the object and the patch are copied once and the
copies are merged in place, like the Go code merges its freshly decoded maps.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from boxkube.api import jsonio
from boxkube.apiserver import schema
from boxkube.apiserver.gofmt import GO_MAP, GO_SLICE, go_format, go_quote, go_quote_char, go_type, go_v, json_kind
from boxkube.apiserver.errors import APIError, bad_request, field_cause, invalid, unsupported_media_type

log = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# What kube-apiserver accepts (and lists in its 415 answer), in its order: built-in
# kinds, and kinds without Go types (custom resources), which cannot take a strategic patch.
TYPED_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
UNTYPED_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

MAX_JSON_PATCH_OPERATIONS = 10000

# Strategic merge patch vocabulary (strategicpatch/patch.go).
_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList"
_REPLACE, _MERGE, _DELETE = "replace", "merge", "delete"

# Errors of k8s.io/apimachinery/pkg/util/mergepatch/errors.go that patch.go maps to a 400.
_ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_SET_ORDER = "invalid patch format of setElementOrder list"


Node = dict[str, Any]


# --------------------------------------------------------------------------- entry points


def apply_patch(content_type: str, original: dict, body: bytes, definition_name: str | None,
                *, field_validation: str = "") -> dict:
    """Apply a PATCH request body to `original` and return the new object.

    `definition_name` (e.g. io.k8s.api.apps.v1.Deployment) gives the strategic patch its
    schema; without one the kind is treated like a custom resource, which upstream
    refuses strategic patches for. `field_validation` is the request's fieldValidation
    parameter: upstream decodes the body strictly unless it is "Ignore", and the error
    texts differ between the two.
    """
    media_type = _media_type(content_type)
    typed = _has_definition(definition_name)
    accepted = TYPED_PATCH_TYPES if typed else UNTYPED_PATCH_TYPES
    if media_type not in accepted:
        raise unsupported_media_type(accepted)
    strict = field_validation != "Ignore"  # unset means Warn upstream, which decodes strictly
    if media_type == JSON_PATCH:
        return json_patch(original, _decode_json_patch(body, strict))
    if media_type == MERGE_PATCH:
        return merge_patch(original, _decode_merge_patch(body, strict))
    if media_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(original, _decode_strategic_patch(body), definition_name)
    # apply-patch+yaml is server-side apply (field managers), a different mechanism.
    raise ValueError(f"{media_type} is server-side apply, not handled by apply_patch")


def json_patch(original: dict, operations: list) -> dict:
    """RFC 6902: apply `operations` in order; any that does not apply fails the whole patch."""
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise APIError(413, "RequestEntityTooLarge",
                       "Request entity too large: The allowed maximum operations in a JSON patch is "
                       f"{MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}")
    try:
        # Copy the operations too: the library inserts their values into the result as is.
        result = jsonpatch.JsonPatch(jsonio.copy(operations)).apply(original, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException,
            TypeError, KeyError, IndexError, ValueError) as exc:
        log.debug("json patch does not apply: %s", exc)
        # patch.go answers every apply failure (a failed `test` included) with a bare 422.
        raise _unprocessable() from exc
    return _as_object(result)


def merge_patch(original: dict, patch: Any) -> dict:
    """RFC 7386 as evanphx/json-patch implements it: `null` deletes, objects merge, the rest replaces."""
    if isinstance(patch, list):
        # Not an object: the patch becomes the document, which cannot be an API object.
        return _as_object(_prune_nulls(jsonio.copy(patch)))
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    result = jsonio.copy(original)
    _merge_docs(result, jsonio.copy(patch))
    return result


def strategic_merge_patch(original: dict, patch: dict, definition_name: str) -> dict:
    """Kubernetes' strategic merge patch, driven by the upstream schema of `definition_name`."""
    if not _has_definition(definition_name):
        raise unsupported_media_type(UNTYPED_PATCH_TYPES)
    result = jsonio.copy(original)
    if patch is None:  # a `null` body decodes to a nil map upstream: nothing to merge
        return result
    return _merge_map(result, jsonio.copy(patch), schema.definition(definition_name))


# --------------------------------------------------------------------------- request bodies


def _media_type(content_type: str) -> str:
    # Exactly patch.go: cut at the first ';' (if not leading); no trimming, no case folding.
    cut = content_type.find(";")
    return content_type[:cut] if cut > 0 else content_type


def _has_definition(name: str | None) -> bool:
    return bool(name) and name in schema.definitions()


def _decode_json_patch(body: bytes, strict: bool) -> list:
    prefix = "error decoding patch: " if strict else ""
    value = _load_json(body, prefix)
    if value is None:
        return []  # `null` decodes to an empty patch upstream
    # Strict decoding targets []handlers.jsonPatchOp, the lenient one jsonpatch.Patch.
    list_type, op_type = ("[]handlers.jsonPatchOp", "handlers.jsonPatchOp") if strict \
        else ("jsonpatch.Patch", "jsonpatch.Operation")
    if not isinstance(value, list):
        raise bad_request(f"{prefix}{_unmarshal_error(value, list_type)}")
    for op in value:
        if op is not None and not isinstance(op, dict):
            raise bad_request(f"{prefix}{_unmarshal_error(op, op_type)}")
        if strict and op:
            _check_op_fields(op, prefix)
    return value


def _check_op_fields(op: dict, prefix: str) -> None:
    # jsonPatchOp declares op, path and from as strings; a JSON null leaves them empty.
    for name, field_value in op.items():
        if name in ("op", "path", "from") and field_value is not None and not isinstance(field_value, str):
            raise bad_request(f"{prefix}json: cannot unmarshal {json_kind(field_value)} "
                              f"into Go struct field jsonPatchOp.{name} of type string")


def _decode_merge_patch(body: bytes, strict: bool) -> Any:
    if not strict:
        try:
            return _load_json(body, "")
        except APIError:
            raise bad_request("Invalid JSON Patch") from None
    value = _load_json(body, "error decoding patch: ")
    if value is not None and not isinstance(value, dict):
        raise bad_request(f"error decoding patch: {_unmarshal_error(value, GO_MAP)}")
    return value


def _decode_strategic_patch(body: bytes) -> dict | None:
    value = _load_json(body, "")
    if value is not None and not isinstance(value, dict):
        raise bad_request(_unmarshal_error(value, GO_MAP))
    return value


def _load_json(body: bytes, prefix: str) -> Any:
    """Parse a body as Go's encoding/json would, failing with its message as a 400."""
    text = body.decode("utf-8", errors="replace")  # Go replaces invalid UTF-8 as well
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise bad_request(prefix + _go_syntax_error(text, exc)) from None
    except _NonJSONConstant as exc:
        raise bad_request(prefix + str(exc)) from None


class _NonJSONConstant(ValueError):
    """Python accepts NaN and Infinity; Go's decoder does not."""


def _reject_constant(name: str) -> Any:
    if name.startswith("-"):
        raise _NonJSONConstant(f"invalid character {go_quote_char(name[1])} in numeric literal")
    raise _NonJSONConstant(f"invalid character {go_quote_char(name[0])} looking for beginning of value")


def _go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Translate Python's JSON syntax error into the text of Go's json.SyntaxError."""
    pos, msg = exc.pos, exc.msg
    if pos >= len(text) or msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    char = text[pos]
    if msg == "Extra data":
        where = "after top-level value"
    elif msg.startswith("Expecting property name"):
        where = "looking for beginning of object key string"
    elif msg == "Expecting ':' delimiter":
        where = "after object key"
    elif msg == "Expecting ',' delimiter":
        where = "after object key:value pair" if _innermost_container(text, pos) == "{" else "after array element"
    elif msg.startswith("Invalid control character"):
        where = "in string literal"
    elif msg.startswith("Invalid \\"):  # Python points at the backslash, Go at the bad escape
        char, where = (text[pos + 1] if pos + 1 < len(text) else char), "in string escape code"
    else:
        where = "looking for beginning of value"
    return f"invalid character {go_quote_char(char)} {where}"


def _innermost_container(text: str, pos: int) -> str | None:
    """The bracket ('{' or '[') enclosing `pos`, to word an error like Go's scanner."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _unmarshal_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}"


def _as_object(result: Any) -> dict:
    """The patched document must decode into an API object, as upstream's codec requires."""
    if isinstance(result, dict):
        return result
    if result is None:
        return {}  # `null` decodes into an empty object upstream; validation rejects it later
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)  # Go's json.Marshal escapes HTML characters
    detail = ("couldn't get version/kind; json parse error: json: cannot unmarshal "
              f"{json_kind(result)} into Go value of type struct {{ APIVersion string "
              '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    raise invalid("", "", [field_cause("patch", f"Invalid value: {go_quote(text)}: {detail}")])


# --------------------------------------------------------------------------- merge patch


def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        else:
            doc[key] = _merge_value(doc[key], value)


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch  # evanphx returns a non-object patch value as is (no pruning)
    _merge_docs(current, patch)
    return current


def _prune_nulls(value: Any) -> Any:
    """evanphx's pruneNulls: drop null members and null array elements, recursively."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for member in value.values():
            _prune_nulls(member)
    elif isinstance(value, list):
        value[:] = [_prune_nulls(item) for item in value if item is not None]
    return value


# --------------------------------------------------------------------------- strategic merge patch


@dataclass(frozen=True)
class _PatchMeta:
    """What the schema says about one field: its value schema and how to patch it."""

    node: Node | None = None  # resolved schema of the value; None = unknown (merge-patch semantics)
    strategy: str = ""  # "merge", "replace" or "" once "retainKeys" is set aside
    merge_key: str = ""


_UNKNOWN_FIELD = _PatchMeta()


def _field_meta(parent: Node | None, key: str) -> _PatchMeta:
    """Look up a field's schema and patch metadata, lazily, like LookupPatchMetadataForStruct."""
    parent = schema.resolve(parent)
    if parent is None:
        return _UNKNOWN_FIELD
    raw = (parent.get("properties") or {}).get(key)
    if raw is None and isinstance(parent.get("additionalProperties"), dict):
        raw = parent["additionalProperties"]  # a map: every key has the value schema
    if raw is None:
        return _UNKNOWN_FIELD
    # The extensions sit beside a `$ref` (e.g. DeploymentSpec.strategy), so read them
    # from the property itself before resolving it.
    node = schema.resolve(raw)
    strategies = raw.get("x-kubernetes-patch-strategy", (node or {}).get("x-kubernetes-patch-strategy", ""))
    merge_key = raw.get("x-kubernetes-patch-merge-key", (node or {}).get("x-kubernetes-patch-merge-key", ""))
    return _PatchMeta(node, _strategy(strategies.split(",") if strategies else []), merge_key)


def _strategy(strategies: list[str]) -> str:
    """extractRetainKeysPatchStrategy: retainKeys only matters to clients computing diffs."""
    others = [s for s in strategies if s != "retainKeys"]
    if len(strategies) > 2 or (len(strategies) == 2 and len(others) != 1):
        raise _server_error(f"unexpected patch strategy: {go_v(strategies)}")
    return others[0] if others else ""


def _merge_map(original: dict | None, patch: dict, node: Node | None) -> dict:
    """mergeMap: merge `patch` into `original` (modified in place and returned)."""
    if _DIRECTIVE in patch:
        return _map_directive(patch[_DIRECTIVE], patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, node)
    for key, value in list(patch.items()):
        is_delete_list = key.startswith(_DELETE_PRIMITIVES)
        if is_delete_list:
            key = _directive_target(key, _DELETE_PRIMITIVES, _ERR_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or type(original[key]) is not type(value):
            # Nothing to merge with: take the patch value, minus nulls and `$patch` maps.
            # A deletion list for a missing field deletes nothing (it must stay idempotent).
            if not is_delete_list:
                _set_or_drop(original, key, _remove_directives(_discard_nulls(value)))
            continue
        if isinstance(value, dict):
            meta = _field_meta(node, key)
            original[key] = _discard_nulls(value) if meta.strategy == _REPLACE \
                else _merge_map(original[key], value, meta.node)
        elif isinstance(value, list):
            original[key] = _merge_list_field(original[key], value, _field_meta(node, key), is_delete_list)
        else:
            original[key] = value
    return original


def _map_directive(directive: Any, patch: dict) -> dict:
    """`$patch` inside a map: `replace` keeps only the patch, `delete` empties the map."""
    if directive == _REPLACE:
        del patch[_DIRECTIVE]
        return _discard_nulls(patch)
    if directive == _DELETE:
        return {}
    # `merge` is only a list-element directive upstream; in a map it is unknown too.
    raise _server_error(_bad_patch_type(directive, patch))


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """`$retainKeys`: drop fields of `original` not listed (used for volume sources, strategies)."""
    if _RETAIN_KEYS not in patch:
        return
    listed = patch.pop(_RETAIN_KEYS)
    if not isinstance(listed, list):
        raise bad_request(_ERR_RETAIN_KEYS)
    retained = {name for name in listed if isinstance(name, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_PRIMITIVES, _SET_ORDER)):
            continue
        if key not in retained:  # the patch may not set a field it says to drop
            raise bad_request(_ERR_RETAIN_KEYS)
    for key in [k for k in original if k not in retained]:
        del original[key]


def _merge_ordered_lists(original: dict, patch: dict, node: Node | None) -> None:
    """mergePatchIntoOriginal: merge each list that has a `$setElementOrder/<field>`, then order it."""
    for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _server_error(_bad_arg_type(GO_SLICE, order))
        key = _directive_target(directive, _SET_ORDER, _ERR_SET_ORDER)
        in_original, in_patch = key in original, key in patch
        current, patch_list = original.get(key), patch.get(key)
        for found, value in ((in_original, current), (in_patch, patch_list)):
            if found and not isinstance(value, list):
                raise _server_error(_bad_arg_type(GO_SLICE, value))
        meta = _field_meta(node, key)
        _check_order(patch_list or [], order, meta.merge_key)
        if in_original and in_patch:
            merged = _merge_list_field(current, patch_list, meta, is_delete_list=False)
        elif in_original:
            merged = current
        elif in_patch:
            merged = _remove_directives(_discard_nulls(patch_list))[0]
        else:
            continue
        original[key] = _reorder(merged, order, current or [], patch_list or [], meta.merge_key)
        patch.pop(key, None)


def _reorder(merged: list, order: list, current: list, patch_list: list, merge_key: str) -> list:
    """Put the items named in `$setElementOrder` in that order, server-only items around them."""
    kind = _element_type(current, patch_list, required=False)
    if kind is None:
        # Both lists are empty: nothing to order. Upstream fails here with "no elements in
        # any of the given slices", an accident of its Go types rather than a rule.
        return merged
    in_order, server_only = _partition(merged, order, merge_key)
    return _normalize_order(in_order, server_only, order, current, merge_key, kind)


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: patch items must appear in `$setElementOrder`, in its order."""
    if not order or not patch_list:
        return
    kept = [item for item in patch_list if not _is_delete_element(item)] if merge_key else patch_list
    i = j = 0
    while i < len(kept) and j < len(order):
        if isinstance(kept[i], dict) and _DIRECTIVE in kept[i]:
            i += 1
            continue
        if _merge_key_equal(kept[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(kept) and j >= len(order):
        raise _server_error(f"The order in patch list:\n{go_v(patch_list)}\n doesn't match "
                            f"{_SET_ORDER} list:\n{go_v(order)}\n")


def _is_delete_element(item: Any) -> bool:
    if not isinstance(item, dict):
        raise _server_error(_bad_arg_type(GO_MAP, item))
    return item.get(_DIRECTIVE) == _DELETE


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _key(left) == _key(right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _server_error(_bad_arg_type(GO_MAP, item))
        if merge_key not in item:
            raise _server_error(_no_merge_key(item, merge_key))
    return _key(left[merge_key]) == _key(right[merge_key])


def _merge_list_field(current: list, patch: list, meta: _PatchMeta, is_delete_list: bool) -> list:
    """mergeSliceHandler: merge lists with strategy merge (and deletion lists); replace the rest."""
    if meta.strategy == _MERGE or is_delete_list:
        return _merge_list(current, patch, schema.items(meta.node), meta.merge_key, is_delete_list)
    return _discard_nulls(patch)


def _merge_list(original: list, patch: list, element: Node | None, merge_key: str, is_delete_list: bool) -> list:
    """mergeSlice: primitives form a set; maps merge element-wise by their merge key."""
    if not original and not patch:
        return original
    kind = _element_type(original, patch, required=True)
    if kind is not dict:
        if is_delete_list:
            doomed = {_key(item) for item in patch}
            return [item for item in original if _key(item) not in doomed]
        merged = _dedupe(original + patch)
    else:
        if not merge_key:
            raise _server_error("cannot merge lists without merge key for struct")
        original, patch = _apply_element_directives(original, patch, merge_key)
        merged = _merge_elements(original, patch, merge_key, element)
    in_patch, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(in_patch, server_only, patch, original, merge_key, kind)


def _apply_element_directives(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """mergeSliceWithSpecialElements: handle `$patch` elements, return the list and the plain patch."""
    plain: list = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in item:
                raise _server_error(_no_merge_key(item, merge_key))
            doomed = _key(item[merge_key])
            original = [e for e in original if not (merge_key in e and _key(e[merge_key]) == doomed)]
        elif directive == _REPLACE:
            replace = True  # keep scanning: the other `$patch` elements are still pruned
        elif directive == _MERGE:
            raise _server_error("merging lists cannot yet be specified in the patch")
        else:
            raise _server_error(_bad_patch_type(directive, item))
    if replace:
        return [_discard_nulls(item) for item in plain], []
    return original, plain


def _merge_elements(original: list, patch: list, merge_key: str, element: Node | None) -> list:
    """mergeSliceWithoutSpecialElements: merge into the element with the same key, else append."""
    merged = list(original)  # `original` stays the server order used to sort afterwards
    index: dict[Any, int] = {}  # merge key -> first element with it, as upstream's linear search finds
    for position, existing in enumerate(merged):
        if merge_key in existing:
            index.setdefault(_key(existing[merge_key]), position)
    for item in patch:
        if merge_key not in item:
            raise _server_error(_no_merge_key(item, merge_key))
        wanted = _key(item[merge_key])
        if wanted in index:
            merged[index[wanted]] = _merge_map(merged[index[wanted]], item, element)
        else:
            index[wanted] = len(merged)
            merged.append(_discard_nulls(item))
    return merged


def _partition(items: list, present_in: list, merge_key: str) -> tuple[list, list]:
    """Split items into those present in `present_in` (by merge key or value) and the others."""
    if not merge_key:
        wanted = {_key(item) for item in present_in}
        return [i for i in items if _key(i) in wanted], [i for i in items if _key(i) not in wanted]
    # Upstream scans `present_in` from the start and fails on a non-map it reaches first.
    wanted = set()
    not_a_map: int | None = None
    for index, item in enumerate(present_in):
        if not isinstance(item, dict):
            not_a_map = index
            break
        if merge_key in item:
            wanted.add(_key(item[merge_key]))
    found: list = []
    others: list = []
    for item in items:
        if not isinstance(item, dict):
            raise _server_error(_bad_arg_type(GO_MAP, item))
        if merge_key not in item:
            raise _server_error(_no_merge_key(item, merge_key))
        if _key(item[merge_key]) in wanted:
            found.append(item)
        elif not_a_map is not None:
            raise _server_error(f"value for key {not_a_map} is not a map.")
        else:
            others.append(item)
    return found, others


def _normalize_order(in_patch: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str, kind: type) -> list:
    """normalizeElementOrder: sort both parts, then interleave them by the server's order.

    A server-only item goes before a patch item only when the server list had it first;
    otherwise patch items win, so items new to the server come before the ones after them.
    """
    in_patch = _sort_by(in_patch, patch_order, merge_key, kind)
    server_only = _sort_by(server_only, server_order, merge_key, kind)
    positions = _positions(server_order, merge_key, kind)
    result: list = []
    i = j = 0
    while i < len(server_only) and j < len(in_patch):
        left = positions.get(_order_key(server_only[i], merge_key, kind))
        right = positions.get(_order_key(in_patch[j], merge_key, kind))
        if left is not None and right is not None and left < right:
            result.append(server_only[i])
            i += 1
        else:
            result.append(in_patch[j])
            j += 1
    return result + server_only[i:] + in_patch[j:]


def _sort_by(items: list, order: list, merge_key: str, kind: type) -> list:
    """normalizeSliceOrder: stable sort by position in `order`; `$patch: delete` elements last."""
    deleted: list = []
    if kind is dict:
        for item in items + order:  # validateMergeKeyInLists
            if not isinstance(item, dict):
                raise _server_error(_bad_arg_type(GO_MAP, item))
            if merge_key not in item:
                raise _server_error(_no_merge_key(item, merge_key))
        deleted = [item for item in items if item.get(_DIRECTIVE) == _DELETE]
        items = [item for item in items if item.get(_DIRECTIVE) != _DELETE]
    positions = _positions(order, merge_key, kind)
    unplaced = len(order)  # upstream's comparator is undefined for these; keep them after
    return sorted(items, key=lambda item: positions.get(_order_key(item, merge_key, kind), unplaced)) + deleted


def _positions(order: list, merge_key: str, kind: type) -> dict[Any, int]:
    positions: dict[Any, int] = {}
    for index, item in enumerate(order):
        positions.setdefault(_order_key(item, merge_key, kind), index)
    return positions


def _order_key(item: Any, merge_key: str, kind: type) -> Any:
    """What `index()` compares: the merge key's value for maps, the item itself otherwise."""
    if kind is dict:
        return _key(item.get(merge_key) if isinstance(item, dict) else None)
    return _key(item)


def _element_type(original: list, patch: list, *, required: bool) -> type | None:
    """sliceElementType: all elements must share one type, and lists of lists are refused."""
    found: type | None = None
    for item in [*original, *patch]:
        if found is None:
            found = type(item)
            if found is list:
                raise _unprocessable()  # mergepatch.ErrNoListOfLists
        elif type(item) is not found:
            raise _server_error(f"list element types are not identical: {go_v([original, patch])}")
    if found is None and required:
        raise _server_error("no elements in any of the given slices")
    return found


def _dedupe(items: list) -> list:
    seen: set = set()
    unique = []
    for item in items:
        if _key(item) not in seen:
            seen.add(_key(item))
            unique.append(item)
    return unique


def _directive_target(key: str, prefix: str, error: str) -> str:
    """The field a `$prefix/<field>` directive is about (extractKey)."""
    head, slash, field = key.partition("/")
    if not slash or head != prefix:
        raise bad_request(error)
    return field


def _set_or_drop(target: dict, key: str, kept: tuple[Any, bool]) -> None:
    value, keep = kept
    if keep:
        target[key] = value
    else:
        target.pop(key, None)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """removeDirectives: drop maps carrying `$patch` from a value with nothing to merge into."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            _set_or_drop(value, key, _remove_directives(value[key]))
        return value, True
    if isinstance(value, list):
        return [v for v, keep in map(_remove_directives, value) if keep], True
    return value, True


def _discard_nulls(value: Any) -> Any:
    """discardNullValuesFromPatch: drop null map members (null list elements stay)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for member in value.values():
            _discard_nulls(member)
    elif isinstance(value, list):
        for item in value:
            _discard_nulls(item)
    return value


def _key(value: Any) -> Any:
    """A hashable stand-in with Go's interface equality: same type and value (1 != 1.0 != true)."""
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


# --------------------------------------------------------------------------- upstream errors


def _unprocessable() -> APIError:
    """errors.NewGenericServerResponse(422, ...): its message ignores the underlying error."""
    return APIError(422, "Invalid", "the server rejected our request due to an error in our request")


def _server_error(message: str) -> APIError:
    """A plain Go error reaching the handler: 500 with StatusReasonUnknown (the empty reason)."""
    return APIError(500, "", message)


def _no_merge_key(item: dict, merge_key: str) -> str:
    return f"map: {go_v(item)} does not contain declared merge key: {merge_key}"


def _bad_patch_type(directive: Any, item: dict) -> str:
    return f"unknown patch type: {go_format(directive, 's')} in map: {go_v(item)}"


def _bad_arg_type(expected: str, actual: Any) -> str:
    return f"expected a {expected}, but received a {go_type(actual)}"
