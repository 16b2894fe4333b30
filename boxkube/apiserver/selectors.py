"""Label and field selectors, parsed and matched as kube-apiserver does.

Label selectors follow k8s.io/apimachinery/pkg/labels/selector.go (the lexer,
the recursive-descent parser, the requirement validation and the exact error
wording), plus metav1.LabelSelectorAsSelector for the object form that
workload specs carry. Field selectors follow k8s.io/apimachinery/pkg/fields,
and which fields each resource accepts follows the per-kind "field label
conversion" functions registered in the upstream scheme (that is what turns an
unknown field into a 400 before any object is looked at), while the values
compared come from each resource strategy's ToSelectableFields.

Everything here is immutable; a parsed selector can be shared between requests
and watchers.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from boxkube.apiserver import errors
from boxkube.apiserver.resources import RESOURCES
from boxkube.apiserver.gofmt import go_quote
from boxkube.apiserver.validation import is_label_value, is_qualified_name


# --------------------------------------------------------------------------
# Go-style rendering of field errors (k8s.io/apimachinery/.../field/errors.go)
# --------------------------------------------------------------------------

def _go_value(value: str | list[str] | None) -> str:
    """How field.Invalid prints a bad value: %q for strings, %#v for string slices."""
    if isinstance(value, str):
        return go_quote(value)
    if not value:
        # metav1.LabelSelectorAsSelector copies values with append([]string(nil), ...)
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"


def _invalid(path: str, value: str | list[str] | None, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message bare, several deduplicated in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------

class Operator(str, Enum):
    """selection.Operator, with the upstream spelling as the value."""
    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = "gt"
    LESS_THAN = "lt"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


def _parse_int64(s: str) -> int | None:
    """strconv.ParseInt(s, 10, 64): optional sign, decimal digits, in range."""
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One `key op values` term; all requirements of a selector must match."""
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            # a missing key is "not equal" to anything, as upstream
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        return self._matches_inequality(labels)

    def _matches_inequality(self, labels: Mapping[str, str]) -> bool:
        if self.key not in labels or len(self.values) != 1:
            return False
        have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if self.operator is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{values}"


def new_requirement(key: str, op: Operator, values: Iterable[str], path: str = "") -> Requirement:
    """labels.NewRequirement: validate and build, raising 400 with the aggregated upstream message.

    `path` is the field path the caller's errors are reported under ("" for none).
    """
    vals = list(values)
    prefix = f"{path}." if path else ""
    problems: list[str] = []
    key_errs = is_qualified_name(key)
    if key_errs:
        problems.append(_invalid(prefix + "key", key, "; ".join(key_errs)))
    values_path = prefix + "values"
    if op in (Operator.IN, Operator.NOT_IN) and not vals:
        problems.append(_invalid(values_path, vals, "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS) and len(vals) != 1:
        problems.append(_invalid(values_path, vals, "exact-match compatibility requires one single value"))
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and vals:
        problems.append(_invalid(values_path, vals, "values set must be empty for exists and does not exist"))
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        if len(vals) != 1:
            problems.append(_invalid(values_path, vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if _parse_int64(v) is None:
                problems.append(_invalid(f"{values_path}[{i}]", v,
                                         "for 'Gt', 'Lt' operators, the value must be an integer"))
    for i, v in enumerate(vals):
        value_errs = is_label_value(v)
        if value_errs:
            problems.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(value_errs)))
    if problems:
        raise _SelectorError(_aggregate(problems))
    return Requirement(key, op, tuple(vals))


class _SelectorError(Exception):
    """A parse/validation failure carrying the exact upstream message (becomes a 400)."""


def requirement_or_none(key: str, op: Operator, values: Iterable[str]) -> Requirement | None:
    """new_requirement for callers that drop an invalid term instead of answering 400.

    The scheduler's node affinity does this: upstream nodeaffinity ignores a
    NodeSelectorTerm that labels.NewRequirement rejects.
    """
    try:
        return new_requirement(key, op, values)
    except _SelectorError:
        return None


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector: the AND of its requirements.

    `nothing` marks labels.Nothing() (a nil LabelSelector object), which matches
    no object at all; an empty requirement list matches every object.
    """
    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector restricts nothing (labels.Selector.Empty)."""
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """The single value `key` must have, if the selector pins one (for index lookups)."""
        for r in self.requirements:
            if r.key == key:
                pinned = r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                return r.values[0] if pinned and len(r.values) == 1 else None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


def _sorted_by_key(reqs: Iterable[Requirement]) -> tuple[Requirement, ...]:
    # upstream sorts requirements by key so String() is deterministic
    return tuple(sorted(reqs, key=lambda r: r.key))


# ---- lexer ----------------------------------------------------------------

class _Tok(Enum):
    ERROR = "error"
    END = "end"
    CLOSE_PAR = ")"
    COMMA = ","
    NOT = "!"
    DOUBLE_EQUALS = "=="
    EQUALS = "="
    GT = ">"
    IDENT = "ident"
    IN = "in"
    LT = "<"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    OPEN_PAR = "("


_LITERAL_TOKENS = {t.value: t for t in _Tok if t not in (_Tok.ERROR, _Tok.END, _Tok.IDENT)}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[_Tok, str]]:
    """Split a selector into (token, literal) pairs ending with END, as labels.Lexer."""
    items: list[tuple[_Tok, str]] = []
    pos = 0
    while True:
        while pos < len(s) and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(s):
            items.append((_Tok.END, ""))
            return items
        if s[pos] in _SPECIAL:
            tok, lit, pos = _scan_special(s, pos)
        else:
            start = pos
            while pos < len(s) and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            lit = s[start:pos]
            tok = _LITERAL_TOKENS.get(lit, _Tok.IDENT)
        items.append((tok, lit))


def _scan_special(s: str, pos: int) -> tuple[_Tok, str, int]:
    """Longest run of operator characters that still names a token ('!=' before '!')."""
    best: tuple[_Tok, str, int] | None = None
    end = pos
    while end < len(s) and s[end] in _SPECIAL:
        end += 1
        tok = _LITERAL_TOKENS.get(s[pos:end])
        if tok is not None:
            best = (tok, s[pos:end], end)
        elif best is not None:
            break
    if best is None:
        return _Tok.ERROR, f"error expected: keyword found '{s[pos:end]}'", end
    return best


# ---- parser ---------------------------------------------------------------

# The order upstream lists binary operators in its "expected:" message.
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"
_OPERATOR_TOKENS = {
    _Tok.IN: Operator.IN, _Tok.NOT_IN: Operator.NOT_IN, _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS, _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
    _Tok.GT: Operator.GREATER_THAN, _Tok.LT: Operator.LESS_THAN,
}


class _Parser:
    """labels.Parser: 'in'/'notin' are keywords only where an operator is expected."""

    def __init__(self, selector: str):
        self.items = _lex(selector)
        self.pos = 0

    def _peek(self, values_context: bool = True) -> tuple[_Tok, str]:
        return self._as_context(self.items[self.pos], values_context)

    def _next(self, values_context: bool = True) -> tuple[_Tok, str]:
        item = self.items[self.pos]
        self.pos += 1
        return self._as_context(item, values_context)

    @staticmethod
    def _as_context(item: tuple[_Tok, str], values_context: bool) -> tuple[_Tok, str]:
        tok, lit = item
        if values_context and tok in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENT, lit
        return tok, lit

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok is _Tok.END:
                return requirements
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except _SelectorError as e:
                raise _SelectorError(f"unable to parse requirement: {e}") from None
            tok, lit = self._next()
            if tok is _Tok.END:
                return requirements
            if tok is not _Tok.COMMA:
                raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok2, lit2 = self._peek()
            if tok2 not in (_Tok.IDENT, _Tok.NOT):
                raise _SelectorError(f"found '{lit2}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, unary = self._key_and_inferred_operator()
        if unary is not None:
            return new_requirement(key, unary, [])
        op = self._operator()
        values = self._set_values() if op in (Operator.IN, Operator.NOT_IN) else self._exact_value()
        return new_requirement(key, op, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, Operator | None]:
        tok, lit = self._next()
        negated = tok is _Tok.NOT
        if negated:
            tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise _SelectorError(f"found '{lit}', expected: identifier")
        key_errs = is_qualified_name(lit)
        if key_errs:
            # the parser validates with a nil field path, which Go prints as "<nil>"
            raise _SelectorError(_invalid("<nil>", lit, "; ".join(key_errs)))
        if negated:
            return lit, Operator.DOES_NOT_EXIST
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return lit, Operator.EXISTS
        return lit, None

    def _operator(self) -> Operator:
        tok, lit = self._next(values_context=False)
        if tok not in _OPERATOR_TOKENS:
            raise _SelectorError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        return _OPERATOR_TOKENS[tok]

    def _set_values(self) -> set[str]:
        tok, lit = self._next()
        if tok is not _Tok.OPEN_PAR:
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in (_Tok.IDENT, _Tok.COMMA):
            values = self._identifiers()
            if self._next()[0] is not _Tok.CLOSE_PAR:
                # upstream reports the first literal inside the parentheses here
                raise _SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok is _Tok.CLOSE_PAR:  # "()" means the one empty value
            self._next()
            return {""}
        raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        """A comma list where empty items are the empty value: "(a,,b)", "(,)"."""
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok is _Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 is _Tok.COMMA:
                    continue
                if tok2 is _Tok.CLOSE_PAR:
                    return values
                raise _SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok is _Tok.COMMA:
                if not values:
                    values.add("")
                if self._peek()[0] in (_Tok.CLOSE_PAR, _Tok.COMMA):
                    values.add("")
                if self._peek()[0] is _Tok.CLOSE_PAR:
                    return values
                continue
            raise _SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self._next()
        if tok is _Tok.IDENT:
            return {lit}
        raise _SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(selector: str | None) -> LabelSelector:
    """Parse the `labelSelector` query form; raises 400 BadRequest with upstream's message."""
    try:
        return LabelSelector(_sorted_by_key(_Parser(selector or "").parse()))
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None


_OBJECT_OPERATORS = {"In": Operator.IN, "NotIn": Operator.NOT_IN,
                     "Exists": Operator.EXISTS, "DoesNotExist": Operator.DOES_NOT_EXIST}


def label_selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, {} matches everything.

    Raises 400 BadRequest (upstream wording) for invalid keys, values or operators.
    """
    if sel is None:
        return NOTHING
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    try:
        reqs = [new_requirement(k, Operator.EQUALS, [v]) for k, v in match_labels.items()]
        for expr in expressions:
            op = _OBJECT_OPERATORS.get(expr.get("operator", ""))
            if op is None:
                raise _SelectorError(f"{go_quote(expr.get('operator', ''))} is not a valid label selector operator")
            reqs.append(new_requirement(expr.get("key", ""), op, expr.get("values") or []))
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None
    return LabelSelector(_sorted_by_key(reqs))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: sorted k=v pairs, or <none>."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def format_label_selector(sel: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: the selector's string form, <none> when empty, <error> when invalid."""
    try:
        return str(label_selector_from_object(sel)) or "<none>"
    except errors.APIError:
        return "<error>"


# --------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (from "=" or "==") or "!="
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # a field the object does not have reads as "" (fields.Set.Get)
        have = fields.get(self.field, "")
        return have == self.value if self.operator == "=" else have != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """The AND of `field=value` / `field!=value` terms; empty matches everything."""
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    @property
    def field_names(self) -> frozenset[str]:
        """The fields this selector names (to check them against what a resource supports)."""
        return frozenset(r.field for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.operator == "=":
                return r.value
        return None

    def transform(self, fn: Callable[[str, str], tuple[str, str]]) -> FieldSelector:
        """fields.Selector.Transform: rewrite each term; a term turned into ("", "") is dropped."""
        out = []
        for r in self.requirements:
            field, value = fn(r.field, r.value)
            if field or value:
                out.append(FieldRequirement(field, r.operator, value))
        return FieldSelector(tuple(out))

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    """fields.EscapeValue: backslash-escape \\, ',' and '='."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the backslash stays in the term)."""
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(selector):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator occurrence splits the term; "!=" and "==" win over "="."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def _unescape_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise _SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Go prints the rune with %v, i.e. as its number
            raise _SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise _SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(selector: str | None) -> FieldSelector:
    """Parse the `fieldSelector` query form; raises 400 BadRequest with upstream's message."""
    selector = selector or ""
    reqs = []
    try:
        for part in sorted(_split_terms(selector)) if selector else []:
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise _SelectorError(f"invalid selector: '{selector}'; can't understand '{part}'")
            lhs, op, rhs = split
            reqs.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", _unescape_value(rhs)))
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None
    return FieldSelector(tuple(reqs))


# ---- which fields each resource accepts and what they hold -----------------

_META_FIELDS = ("metadata.name", "metadata.namespace")

# Field labels accepted per resource (the upstream scheme's field label conversion
# functions); resources without an entry accept only metadata.name/namespace.
_SUPPORTED_FIELDS: Mapping[str, frozenset[str]] = {
    "pods": frozenset({*_META_FIELDS, "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                       "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                       "status.podIPs", "status.nominatedNodeName"}),
    "nodes": frozenset({"metadata.name", "spec.unschedulable"}),
    "replicationcontrollers": frozenset({*_META_FIELDS, "status.replicas"}),
    "events": frozenset({*_META_FIELDS, "involvedObject.kind", "involvedObject.namespace",
                         "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
                         "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                         "reportingComponent", "source", "type"}),
    "namespaces": frozenset({"metadata.name", "status.phase"}),
    "secrets": frozenset({*_META_FIELDS, "type"}),
    "services": frozenset({*_META_FIELDS, "spec.clusterIP", "spec.type"}),
}

# Old names still accepted and rewritten, as upstream does for old v1 clients.
_FIELD_ALIASES: Mapping[str, Mapping[str, str]] = {"pods": {"spec.host": "spec.nodeName"}}


def _convert_field_label(resource_plural: str, field: str, value: str) -> tuple[str, str]:
    supported = _SUPPORTED_FIELDS.get(resource_plural)
    if supported is None:
        if field in _META_FIELDS:
            return field, value
        raise _SelectorError(f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"')
    alias = _FIELD_ALIASES.get(resource_plural, {}).get(field)
    if alias:
        return alias, value
    if field in supported:
        return field, value
    raise _SelectorError(f"field label not supported: {field}")


def check_supported(resource_plural: str, selector: FieldSelector) -> FieldSelector:
    """Refuse fields the resource cannot select on (400, upstream wording); returns the
    selector with legacy field names rewritten (pods: spec.host -> spec.nodeName)."""
    try:
        return selector.transform(lambda f, v: _convert_field_label(resource_plural, f, v))
    except _SelectorError as e:
        raise errors.bad_request(str(e)) from None


def _get(obj: Mapping[str, Any], path: str, default: Any = "") -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def _pod_ip(pod: Mapping[str, Any]) -> str:
    # v1 podIP wins; podIPs[0] when only the list is set (the internal type keeps the list)
    ips = _get(pod, "status.podIPs", []) or []
    return _get(pod, "status.podIP") or (ips[0].get("ip", "") if ips else "")


def _event_source(ev: Mapping[str, Any]) -> str:
    return _get(ev, "source.component") or _get(ev, "reportingComponent")


# Per-resource selectable fields beyond metadata (each strategy's ToSelectableFields).
_FIELD_GETTERS: Mapping[str, Mapping[str, Callable[[Mapping[str, Any]], str]]] = {
    "pods": {
        "spec.nodeName": lambda o: _get(o, "spec.nodeName"),
        "spec.restartPolicy": lambda o: _get(o, "spec.restartPolicy"),
        "spec.schedulerName": lambda o: _get(o, "spec.schedulerName"),
        "spec.serviceAccountName": lambda o: _get(o, "spec.serviceAccountName"),
        "spec.hostNetwork": lambda o: _go_bool(_get(o, "spec.hostNetwork", False)),
        "status.phase": lambda o: _get(o, "status.phase"),
        "status.podIP": _pod_ip,
        "status.nominatedNodeName": lambda o: _get(o, "status.nominatedNodeName"),
    },
    "nodes": {"spec.unschedulable": lambda o: _go_bool(_get(o, "spec.unschedulable", False))},
    "namespaces": {"status.phase": lambda o: _get(o, "status.phase")},
    "secrets": {"type": lambda o: _get(o, "type")},
    "services": {"spec.clusterIP": lambda o: _get(o, "spec.clusterIP"),
                 "spec.type": lambda o: _get(o, "spec.type")},
    "replicationcontrollers": {"status.replicas": lambda o: str(_get(o, "status.replicas", 0))},
    "replicasets": {"status.replicas": lambda o: str(_get(o, "status.replicas", 0))},
    "events": {
        **{f"involvedObject.{k}": (lambda o, k=k: _get(o, f"involvedObject.{k}"))
           for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        "reason": lambda o: _get(o, "reason"),
        "reportingComponent": lambda o: _get(o, "reportingComponent"),
        "source": _event_source,
        "type": lambda o: _get(o, "type"),
    },
}

_NAMESPACED = {r.plural: r.namespaced for r in RESOURCES}


def object_fields(resource_plural: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The field set a field selector is matched against, as upstream's GetAttrs.

    Note: upstream accepts `status.podIPs` for pods but never puts it in the set,
    so it only ever matches the empty value; we keep that.
    """
    fields = {"metadata.name": _get(obj, "metadata.name")}
    if _NAMESPACED.get(resource_plural, bool(_get(obj, "metadata.namespace"))):
        fields["metadata.namespace"] = _get(obj, "metadata.namespace")
    for name, getter in _FIELD_GETTERS.get(resource_plural, {}).items():
        fields[name] = getter(obj)
    return fields
