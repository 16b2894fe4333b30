"""A workload's selector: used when valid and non-empty, refused with upstream's Warning event otherwise."""
from boxkube.controllers.podcontrol import usable_selector


class Events:
    def __init__(self):
        self.seen = []

    def event(self, obj, type_, reason, message, field_path=""):
        self.seen.append((type_, reason, message))


def owner(selector):
    return {"kind": "StatefulSet", "metadata": {"name": "web"}, "spec": {"selector": selector}}


def test_a_valid_selector_is_returned_without_events():
    events = Events()
    selector = usable_selector(events, owner({"matchLabels": {"app": "web"}}), "statefulset")
    assert selector is not None and selector.matches({"app": "web"}) and not selector.matches({"app": "db"})
    assert events.seen == []


def test_empty_and_invalid_selectors_are_refused_with_a_warning():
    events = Events()
    assert usable_selector(events, owner({}), "daemon set") is None
    assert events.seen == [("Warning", "SelectingAll",
                            "This daemon set is selecting all pods. A non-empty selector is required.")]
    events.seen.clear()
    bad = {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}
    assert usable_selector(events, owner(bad), "statefulset") is None
    assert [(t, r) for t, r, _ in events.seen] == [("Warning", "InvalidSelector")]
    assert events.seen[0][2].startswith("Invalid selector: ")
