"""Label and field selectors against the behaviour and messages of upstream apimachinery."""
from __future__ import annotations

import pytest

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.selectors import (
    EVERYTHING,
    NOTHING,
    check_supported,
    format_label_selector,
    format_labels,
    label_selector_from_object,
    object_fields,
    parse_field_selector,
    parse_label_selector,
)

WEB = {"app": "web", "tier": "frontend", "env": "prod"}
DB = {"app": "db", "tier": "backend"}
NO_LABELS: dict[str, str] = {}

# upstream regexes, as they appear in its messages
LABEL_KEY_RE = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_RE = f"({LABEL_KEY_RE})?"
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                 "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                 f"regex used for validation is '{LABEL_KEY_RE}')")


def bad_request_message(fn, *args) -> str:
    with pytest.raises(APIError) as info:
        fn(*args)
    assert info.value.code == 400 and info.value.reason == "BadRequest"
    return info.value.message


# ---- label selectors: parsing and matching ---------------------------------

@pytest.mark.parametrize("selector, matching", [
    ("", ["web", "db", "none"]),
    ("app=web", ["web"]),
    ("app==web", ["web"]),
    ("app!=web", ["db", "none"]),           # a missing key is "not equal"
    ("app in (web,db)", ["web", "db"]),
    ("app notin (web)", ["db", "none"]),    # ... and "not in"
    ("env", ["web"]),
    ("!env", ["db", "none"]),
    ("app=web,tier=frontend", ["web"]),
    ("app in (web, db), !env", ["db"]),
    ("  tier  =  backend ", ["db"]),
    ("app in (web,,db)", ["web", "db"]),
])
def test_label_selector_matches(selector, matching):
    labels = {"web": WEB, "db": DB, "none": NO_LABELS}
    sel = parse_label_selector(selector)
    assert [name for name, ls in labels.items() if sel.matches(ls)] == matching


def test_empty_value_forms():
    assert parse_label_selector("app=").matches({"app": ""})
    assert parse_label_selector("app in ()").matches({"app": ""})
    assert not parse_label_selector("app in ()").matches({"app": "x"})


def test_in_and_notin_are_values_after_an_operator():
    assert parse_label_selector("in in (in, notin)").matches({"in": "notin"})


def test_greater_and_less_than():
    sel = parse_label_selector("replicas>2,replicas<10")
    assert sel.matches({"replicas": "5"})
    assert not sel.matches({"replicas": "2"})
    assert not sel.matches({"replicas": "many"})
    assert not sel.matches({})


def test_string_form_is_sorted_like_upstream():
    sel = parse_label_selector("tier notin (b,a),app=web,!env,x")
    assert str(sel) == "app=web,!env,tier notin (a,b),x"


def test_empty_selector_is_everything():
    assert parse_label_selector("").empty()
    assert parse_label_selector("").matches(None)


def test_requires_exact_match():
    sel = parse_label_selector("app in (web),tier!=x")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") is None


# ---- label selectors: errors worded as upstream ------------------------------

@pytest.mark.parametrize("selector, message", [
    ("app:monolith", f'unable to parse requirement: <nil>: Invalid value: "app:monolith": {NAME_PART_MSG}'),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a notin", "unable to parse requirement: found '' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a>b", "unable to parse requirement: values[0]: Invalid value: \"b\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("a=-b", "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty "
             "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
             "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
             f"regex used for validation is '{LABEL_VALUE_RE}')"),
    ("app.kubernetes_io/name=x",
     'unable to parse requirement: <nil>: Invalid value: "app.kubernetes_io/name": prefix part a lowercase '
     "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and "
     "end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
])
def test_label_selector_errors(selector, message):
    assert bad_request_message(parse_label_selector, selector) == message


def test_too_long_name_reports_both_problems():
    key = "a" * 64 + "-"
    assert bad_request_message(parse_label_selector, key) == (
        f'unable to parse requirement: <nil>: Invalid value: "{key}": '
        f"name part must be no more than 63 bytes; {NAME_PART_MSG}")


# ---- LabelSelector objects (workload specs) ---------------------------------

def test_none_object_matches_nothing_and_empty_matches_everything():
    assert label_selector_from_object(None) == NOTHING
    assert not NOTHING.matches(WEB) and not NOTHING.empty()
    assert label_selector_from_object({}) == EVERYTHING
    assert label_selector_from_object({"matchLabels": {}, "matchExpressions": []}).matches(NO_LABELS)


def test_object_form_combines_labels_and_expressions():
    sel = label_selector_from_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
            {"key": "env", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
        ],
    })
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "canary": "true"})
    assert not sel.matches(DB)
    assert str(sel) == "app=web,!canary,env,tier in (edge,frontend),zone notin (b)"  # sorted by key


@pytest.mark.parametrize("sel, message", [
    ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, '"Foo" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist'),
    ({"matchLabels": {"bad key": "v"}}, f'key: Invalid value: "bad key": {NAME_PART_MSG}'),
])
def test_object_form_errors(sel, message):
    assert bad_request_message(label_selector_from_object, sel) == message


def test_formatting_helpers():
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Nope"}]}) == "<error>"


# ---- field selectors ----------------------------------------------------------

def test_field_selector_matching_and_names():
    sel = parse_field_selector("status.phase=Running,spec.nodeName!=node-1")
    assert sel.field_names == {"status.phase", "spec.nodeName"}
    assert sel.matches({"status.phase": "Running", "spec.nodeName": "node-2"})
    assert not sel.matches({"status.phase": "Running", "spec.nodeName": "node-1"})
    assert not sel.matches({})  # missing reads as ""
    assert parse_field_selector("spec.nodeName==").matches({})
    assert parse_field_selector("").empty() and parse_field_selector(None).matches({})


def test_field_selector_escapes():
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.matches({"metadata.name": "a,b=c\\d"})
    assert str(sel) == r"metadata.name=a\,b\=c\\d"
    assert sel.requires_exact_match("metadata.name") == "a,b=c\\d"


@pytest.mark.parametrize("selector, message", [
    ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(selector, message):
    assert bad_request_message(parse_field_selector, selector) == message


def test_check_supported_per_resource():
    pods = check_supported("pods", parse_field_selector("spec.nodeName=n1,status.phase!=Failed"))
    assert pods.field_names == {"spec.nodeName", "status.phase"}
    # old v1 clients send spec.host: upstream rewrites it
    assert check_supported("pods", parse_field_selector("spec.host=n1")).field_names == {"spec.nodeName"}
    assert check_supported("events", parse_field_selector("involvedObject.name=web,type=Warning"))
    assert check_supported("nodes", parse_field_selector("spec.unschedulable=false"))
    assert check_supported("configmaps", parse_field_selector("metadata.name=x"))


@pytest.mark.parametrize("plural, selector, message", [
    ("pods", "spec.containers=x", "field label not supported: spec.containers"),
    ("nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    ("secrets", "data=x", "field label not supported: data"),
    ("deployments", "spec.replicas=1",
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    # apps/v1 registers no conversion, so status.replicas is refused even though the strategy has it
    ("replicasets", "status.replicas=1",
     '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
])
def test_check_supported_refuses_unknown_fields(plural, selector, message):
    assert bad_request_message(check_supported, plural, parse_field_selector(selector)) == message


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "worker-1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}], "nominatedNodeName": ""},
}


def test_pod_fields():
    assert object_fields("pods", POD) == {
        "metadata.name": "web-1", "metadata.namespace": "default",
        "spec.nodeName": "worker-1", "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default", "spec.hostNetwork": "false", "status.phase": "Running",
        "status.podIP": "10.244.1.5", "status.nominatedNodeName": "",
    }
    sel = check_supported("pods", parse_field_selector("spec.nodeName=worker-1,status.phase=Running"))
    assert sel.matches(object_fields("pods", POD))


def test_cluster_scoped_and_other_fields():
    node = {"metadata": {"name": "worker-1"}, "spec": {"unschedulable": True}}
    assert object_fields("nodes", node) == {"metadata.name": "worker-1", "spec.unschedulable": "true"}
    ns = {"metadata": {"name": "dev"}, "status": {"phase": "Terminating"}}
    assert object_fields("namespaces", ns) == {"metadata.name": "dev", "status.phase": "Terminating"}
    secret = {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"}
    assert object_fields("secrets", secret)["type"] == "Opaque"
    rc = {"metadata": {"name": "r", "namespace": "d"}, "status": {"replicas": 3}}
    assert object_fields("replicationcontrollers", rc)["status.replicas"] == "3"
    svc = {"metadata": {"name": "web", "namespace": "d"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}}
    assert object_fields("services", svc)["spec.type"] == "NodePort"
    assert object_fields("configmaps", {"metadata": {"name": "c", "namespace": "d"}}) == {
        "metadata.name": "c", "metadata.namespace": "d"}


def test_event_fields_fall_back_to_reporting_controller():
    event = {
        "metadata": {"name": "web-1.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1",
                           "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal", "reportingComponent": "kubelet", "source": {},
    }
    fields = object_fields("events", event)
    assert fields["source"] == "kubelet"
    assert fields["involvedObject.fieldPath"] == "spec.containers{web}"
    sel = check_supported("events", parse_field_selector("involvedObject.kind=Pod,involvedObject.name=web-1"))
    assert sel.matches(fields)
