"""Go's formatting of values, so error messages read exactly as kube-apiserver's.

Kubernetes clients and tests match on these strings: `%q` quoting, `%v` of
decoded JSON, encoding/json's compact output and its words for JSON kinds,
and reflect's type names. One copy here serves validation, patch, server-side
apply and selectors.
"""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

_PLAIN_ASCII = re.compile(r'^[ !#-\[\]-~]*$')  # printable ASCII without '"' and '\'
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}

GO_MAP = "map[string]interface {}"
GO_SLICE = "[]interface {}"


def go_quote(text: str) -> str:
    """strconv.Quote (`%q`): printable Unicode stays, the rest is escaped."""
    if _PLAIN_ASCII.match(text):
        return f'"{text}"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x7F or ch.isprintable():
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_quote_char(char: str) -> str:
    """encoding/json's quoteChar: the offending byte of a syntax error, quoted."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    first = char.encode("utf-8")[0]
    if first >= 0x80:  # Go reports the first byte of a multi-byte character
        return f"'\\x{first:02x}'"
    return "'" + go_quote(chr(first))[1:-1] + "'"


class Ordered(dict):
    """A dict printed as JSON in insertion order: a Go struct keeps its field order, a Go map is sorted."""


def _json_scalar(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # encoding/json prints 3.0 as 3
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_json(value: Any) -> str:
    """json.Marshal: compact, map keys sorted (Ordered keeps struct order), <, > and & escaped."""
    if isinstance(value, dict):
        items = value.items() if isinstance(value, Ordered) else sorted(value.items())
        return "{" + ",".join(f"{_json_scalar(str(k))}:{go_json(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _json_scalar(value)


def go_float(value: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), which `%v` uses: shortest digits, %e below 1e-4 or from 1e+06."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    point = len(digits) + int(parts.exponent)  # digits before the decimal point
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def json_kind(value: Any) -> str:
    """The word encoding/json uses for a JSON value in an UnmarshalTypeError."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def go_type(value: Any) -> str:
    """reflect.TypeOf(value).String() of decoded JSON, as `%s` prints it."""
    if value is None:
        return "%!s(<nil>)"
    names = {dict: GO_MAP, list: GO_SLICE, str: "string", bool: "bool", int: "int64", float: "float64"}
    return names.get(type(value), type(value).__name__)


def go_v(value: Any) -> str:
    """fmt's `%v` of decoded JSON: `map[a:1 b:[x y]]`, keys sorted."""
    return go_format(value, "v")


def go_format(value: Any, verb: str) -> str:
    """fmt's `%v` or `%s` of decoded JSON (`%s` of a non-string reads `%!s(int64=1)`)."""
    if isinstance(value, dict):
        members = (f"{go_format(k, verb)}:{go_format(value[k], verb)}" for k in sorted(value))
        return "map[" + " ".join(members) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(item, verb) for item in value) + "]"
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>" if verb == "v" else "%!s(<nil>)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = go_float(value)
    else:
        text = str(value)
    return text if verb == "v" else f"%!s({go_type(value)}={text})"
