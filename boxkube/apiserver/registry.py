"""The generic store: create, get, list, update, patch, delete and watch for every resource.

One implementation serves every resource type, as kube-apiserver's
`genericregistry.Store` does; what differs per resource is in its strategy.
Objects are kept in etcd as JSON without a resourceVersion; the etcd mod
revision becomes the resourceVersion when an object is read.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from boxkube.api import jsonio
from boxkube.api.times import now_rfc3339
from boxkube.apiserver import errors, managedfields, patch, roundtrip, schema, selectors, validation
from boxkube.apiserver.allocators import ClusterIPs, NodePorts
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.resources import RESOURCES, ResourceType, by_kind
from boxkube.apiserver.strategies import strategy_for
from boxkube.apiserver.strategies.base import Admission, Strategy
from boxkube.apiserver.watchcache import Subscription, WatchCache, decode
from boxkube.storage.errors import Compacted, KeyExists, KeyNotFound, RevisionConflict
from boxkube.storage.etcd import EtcdStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# Fields of ObjectMeta that only the server sets; a client's values are ignored.
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # upstream's: no vowels, no look-alikes
# The finalizer through which the garbage collector carries out each non-background propagation policy.
_GC_FINALIZERS = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}
_LIST_BATCH = 500
_UPDATE_RETRIES = 16


@dataclass
class WriteOptions:
    """What a write request says beyond its body (query parameters and headers)."""
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"          # Strict | Warn | Ignore, as ?fieldValidation=
    force: bool = False                     # server-side apply takes over conflicting fields
    user_agent: str = ""
    warnings: list[str] = field(default_factory=list)

    def manager(self) -> str:
        """The field manager: ?fieldManager=, else the User-Agent's program name, as upstream."""
        return managedfields.manager_for_request(self.field_manager, self.user_agent)


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


def _restore(new: Obj, old: Obj, path: tuple[str, ...]) -> None:
    """Set `path` of `new` to what it is in `old` (absent there: absent here too)."""
    source: Any = old
    for key in path:
        source = source.get(key, _MISSING) if isinstance(source, dict) else _MISSING
    target = new
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            if source is _MISSING:
                return
            target[key] = {}
        target = target[key]
    if source is _MISSING:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = jsonio.copy(source)


_MISSING = object()


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _spec_of(obj: Obj) -> Obj:
    """Everything but metadata and status: what bumps generation when it changes."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, start key); revision -1 (from a 410's fresh token) continues at the newest revision."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        revision, start = int(raw["rv"]), str(raw["start"])
        if raw.get("v") != "meta.k8s.io/v1" or revision == 0 or revision < -1:
            raise ValueError
        return revision, start
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")


def check_unknown_fields(definition: str, obj: Obj, opts: WriteOptions, kind_version: tuple[str, str] | None) -> None:
    """fieldValidation: Strict refuses undeclared fields, Warn names them; both Warn and
    Ignore drop them, since upstream's decoder never stores what the type lacks. `kind_version`
    names the decoded kind in Strict's error, as create and update do (None: a patch's words)."""
    unknown = validation.drop_unknown_fields(definition, obj)
    if not unknown or opts.field_validation == "Ignore":
        return
    if opts.field_validation == "Strict":
        raise validation.strict_error(unknown) if kind_version is None else \
            validation.strict_error(unknown, kind=kind_version[0], version=kind_version[1])
    opts.warnings.extend(validation.warnings_for(unknown))


class Registry:
    def __init__(self, store: EtcdStore, cache: WatchCache, cluster_ips: ClusterIPs, node_ports: NodePorts,
                 admission: Admission = Admission()):
        self.store = store
        self.cache = cache
        self.cluster_ips = cluster_ips
        self.node_ports = node_ports
        self._strategies: dict[str, Strategy] = {rt.plural + "." + rt.group: strategy_for(rt, admission)
                                                 for rt in RESOURCES}
        # Namespaces by name, kept current from the watch cache: the namespace
        # check on every create must not cost an etcd read (upstream's
        # NamespaceLifecycle admission uses an informer the same way).
        self._namespaces: dict[str, Obj] = {}
        self._ns_task: asyncio.Task | None = None

    def strategy(self, rt: ResourceType) -> Strategy:
        return self._strategies[rt.plural + "." + rt.group]

    async def start(self) -> None:
        ns = by_kind("", "v1", "Namespace")
        listed = await self.list(ns, None)
        self._namespaces = {o["metadata"]["name"]: o for o in listed.items}
        sub = self.cache.subscribe(ns.key(None), int(listed.resource_version))
        self._ns_task = asyncio.create_task(self._follow_namespaces(sub), name="namespace-index")

    async def stop(self) -> None:
        if self._ns_task:
            self._ns_task.cancel()
            await asyncio.gather(self._ns_task, return_exceptions=True)

    async def _follow_namespaces(self, sub: Subscription) -> None:
        try:
            while True:
                change = await sub.next(None)
                name = change.obj.get("metadata", {}).get("name")
                if change.type == "DELETE":
                    self._namespaces.pop(name, None)
                else:
                    self._index_namespace(change.obj)
        finally:
            sub.close()

    def _index_namespace(self, ns: Obj) -> None:
        """Keep the newer of what the index has and `ns` (a delete puts its mark here before the watch does)."""
        name = ns["metadata"]["name"]
        known = self._namespaces.get(name)
        if known is None or int(known["metadata"]["resourceVersion"]) <= int(ns["metadata"]["resourceVersion"]):
            self._namespaces[name] = ns

    # -- reads ----------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(rt.key(namespace, name))
        if kv is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return decode(kv.value, kv.mod_revision)

    async def list(self, rt: ResourceType, namespace: str | None, *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "",
                   resource_version: str = "", resource_version_match: str = "") -> ListResult:
        prefix = rt.key(namespace)
        match = self._matcher(rt, label_selector, field_selector)
        revision, start = 0, prefix
        if continue_token:
            revision, rest = decode_continue(continue_token)
            start = prefix + rest
            revision = max(revision, 0)
        elif resource_version and resource_version_match == "Exact":
            revision = self._parse_rv(resource_version)
        items: list[Obj] = []
        next_start = ""
        try:
            while True:
                batch = max(limit - len(items), _LIST_BATCH) if limit else _LIST_BATCH
                page = await self.store.list(prefix, start=start, limit=batch, revision=revision)
                revision = page.revision
                for i, kv in enumerate(page.items):
                    obj = decode(kv.value, kv.mod_revision)
                    if match is None or match(obj):
                        items.append(obj)
                        if limit and len(items) == limit and (i + 1 < len(page.items) or page.more):
                            next_start = kv.key + "\0"
                            break
                if next_start or not page.more:
                    break
                start = page.items[-1].key + "\0"
        except Compacted:
            # Upstream's etcd3 store: a continue past compaction gets a token that goes on at the
            # newest revision (-1), and a message saying the result would be inconsistent.
            if continue_token:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the first "
                    "chunk was returned and now may show up in the list.", encode_continue(-1, start[len(prefix):]))
            raise errors.expired("The resourceVersion for the provided list is too old.")
        for obj in items:   # list items carry no kind/apiVersion (the list has them)
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        token = encode_continue(revision, next_start[len(prefix):]) if next_start else ""
        return ListResult(items, str(revision), token)

    def _matcher(self, rt: ResourceType, label_selector: str, field_selector: str) -> Callable[[Obj], bool] | None:
        labels = selectors.parse_label_selector(label_selector) if label_selector else None
        fields = selectors.parse_field_selector(field_selector) if field_selector else None
        if fields is not None:
            fields = selectors.check_supported(rt.plural, fields)
        if labels is None and fields is None:
            return None

        def match(obj: Obj) -> bool:
            if labels is not None and not labels.matches(obj.get("metadata", {}).get("labels") or {}):
                return False
            return fields is None or fields.matches(selectors.object_fields(rt.plural, obj))
        return match

    @staticmethod
    def _parse_rv(rv: str) -> int:
        try:
            value = int(rv)
            if value < 0:
                raise ValueError
            return value
        except ValueError:
            raise errors.invalid("", "", [errors.field_cause("resourceVersion", f'Invalid value: "{rv}": must be a non-negative integer')]) from None

    def watch_matcher(self, rt: ResourceType, label_selector: str, field_selector: str) -> Callable[[Obj], bool] | None:
        return self._matcher(rt, label_selector, field_selector)

    # -- create ---------------------------------------------------------------

    async def create(self, rt: ResourceType, namespace: str | None, obj: Obj, opts: WriteOptions,
                     tracked: bool = False) -> Obj:
        """Store a new object; `tracked` when its managedFields are already set (server-side apply)."""
        st = self.strategy(rt)
        self._check_type(rt, obj)
        meta = _meta(obj)
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
            await self._check_namespace(rt, namespace, meta.get("name") or meta.get("generateName", ""))
        else:
            meta.pop("namespace", None)
        self._check_unknown_fields(rt, obj, opts)
        self._as_go_decodes(rt, obj)
        for key in _SERVER_META:
            meta.pop(key, None)
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if st.tracks_generation:
            meta["generation"] = 1
        if st.reset_status_on_create and st.has_status:
            status = st.initial_status(obj)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
        st.prepare_for_create(obj)
        st.default(obj)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for attempt in range(8 if generated else 1):
            if generated:
                meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            self._validate(rt, obj, None)
            if attempt == 0 and not tracked:
                obj = self._track(rt, None, obj, opts)     # a new dict: re-read its metadata below
                meta = obj["metadata"]
            if opts.dry_run:
                return obj
            await st.before_create(self, obj, opts.dry_run)
            try:
                revision = await self.store.create(rt.key(namespace, meta["name"]), self._encode(obj))
            except KeyExists:
                await st.after_delete(self, obj)
                if generated:
                    continue
                raise errors.already_exists(rt.plural, meta["name"], rt.group)
            except BaseException:
                await st.after_delete(self, obj)
                raise
            meta["resourceVersion"] = str(revision)
            return obj
        # Every generated name was taken: upstream (RetryGenerateName) answers the last AlreadyExists.
        raise errors.already_exists(rt.plural, meta["name"], rt.group)

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if api_version and api_version != rt.group_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API version ({rt.group_version})")
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind

    async def _check_namespace(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        ns = self._namespaces.get(namespace or "")
        if ns is None and namespace:
            kv = await self.store.get(f"/registry/namespaces/{namespace}")   # not in the index yet
            ns = decode(kv.value, kv.mod_revision) if kv else None
        if ns is None:
            raise errors.not_found("namespaces", namespace or "")
        if ns.get("metadata", {}).get("deletionTimestamp") or ns.get("status", {}).get("phase") == "Terminating":
            err = errors.forbidden(rt.plural, name, f"unable to create new content in namespace {namespace} because it is being terminated", rt.group)
            err.details["causes"] = [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated", "field": "metadata.namespace"}]
            raise err

    def _check_unknown_fields(self, rt: ResourceType, obj: Obj, opts: WriteOptions, patching: bool = False) -> None:
        check_unknown_fields(self.definition(rt), obj, opts, None if patching else (rt.kind, rt.version))

    def _as_go_decodes(self, rt: ResourceType, obj: Obj) -> None:
        """Every written object, before defaulting: what decoding it into its Go struct keeps (zero values
        of omitempty fields go, JSON nulls become nil or zero), as upstream stores and prints it."""
        roundtrip.normalize(self.definition(rt), obj)

    @staticmethod
    def definition(rt: ResourceType) -> str:
        name = schema.definition_for(rt.group, rt.version, rt.kind)
        assert name, rt
        return name

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None, subresource: str = "") -> None:
        """Schema, metadata and per-kind rules (validation), then what only the strategy knows."""
        st, definition = self.strategy(rt), self.definition(rt)
        findings = validation.inspect(definition, obj)     # one schema walk serves both checks
        decode = findings.decode_error(rt.kind, rt.version)
        if decode is not None:
            raise decode
        if old is None:
            causes = validation.validate(definition, obj, meta=True, namespaced=rt.namespaced, findings=findings) \
                + st.validate(obj)
        else:
            causes = validation.validate_update(definition, obj, old, namespaced=rt.namespaced, subresource=subresource,
                                                findings=findings) + st.validate_update(obj, old)
        if causes:
            meta = obj["metadata"]
            raise errors.invalid(rt.kind, meta.get("name") or meta.get("generateName", ""), causes, rt.group)

    def _track(self, rt: ResourceType, old: Obj | None, new: Obj, opts: WriteOptions, subresource: str = "") -> Obj:
        return managedfields.track_update(old, new, manager=opts.manager(), definition_name=self.definition(rt),
                                          api_version=rt.group_version, now=now_rfc3339(), subresource=subresource)

    @staticmethod
    def _encode(obj: Obj) -> bytes:
        meta = obj["metadata"]
        rv = meta.pop("resourceVersion", None)
        try:
            return jsonio.dumps(obj)
        finally:
            if rv is not None:
                meta["resourceVersion"] = rv

    # -- update ---------------------------------------------------------------

    async def update(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj, opts: WriteOptions,
                     subresource: str = "") -> tuple[Obj, bool]:
        """PUT: replace the object (or its status). Returns (object, created)."""
        self._check_type(rt, obj)
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["name"] = name
        self._check_unknown_fields(rt, obj, opts)
        expected = meta.get("resourceVersion") or ""
        if expected:
            self._parse_rv(expected)
        kv = await self.store.get(rt.key(namespace, name))
        if kv is None:
            if self.strategy(rt).allow_create_on_update and not subresource:
                meta.pop("resourceVersion", None)
                return await self.create(rt, namespace, obj, opts), True
            raise errors.not_found(rt.plural, name, rt.group)
        old = decode(kv.value, kv.mod_revision)
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)
        new = self._merge_subresource(rt, old, obj, subresource)
        return await self._write(rt, old, new, kv.mod_revision, opts, subresource), False

    def _merge_subresource(self, rt: ResourceType, old: Obj, new: Obj, subresource: str) -> Obj:
        """What a write may not set comes back from the stored object: the strategy's reset fields
        (upstream GetResetFields/PrepareForUpdate) — status for a main write, spec (and, per kind,
        labels or ownerReferences) for a status write; the rest of a status write's metadata counts."""
        if subresource == "binding":
            return new        # a binding sets spec.nodeName and the PodScheduled condition together
        for path in managedfields.reset_fields_for(self.definition(rt), subresource):
            _restore(new, old, path)
        return new

    async def _write(self, rt: ResourceType, old: Obj, new: Obj, revision: int, opts: WriteOptions,
                     subresource: str = "", tracked: bool = False) -> Obj:
        """Store `new` over `old` (read at `revision`) after the update rules; the common tail of PUT and PATCH."""
        st = self.strategy(rt)
        self._as_go_decodes(rt, new)
        meta, old_meta = _meta(new), old["metadata"]
        for key in _SERVER_META + ("name", "namespace"):
            if key == "uid" and meta.get("uid"):
                continue     # a uid the client sends must be the object's: validation refuses another (422)
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        st.prepare_for_update(new, old, subresource)
        st.default(new)
        if st.tracks_generation and _spec_of(new) != _spec_of(old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        self._validate(rt, new, old, subresource)
        if not tracked:
            new = self._track(rt, old, new, opts, subresource)
        meta = new["metadata"]
        if new == old:
            return old            # a no-op update does not write (and keeps its resourceVersion)
        if opts.dry_run:
            return new
        key = rt.key(old_meta.get("namespace"), old_meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds") \
                and not st.holds_deletion(new):
            await self.store.delete(key, revision)     # the last finalizer is gone: finish the delete
            await st.after_delete(self, new)
            return new
        await st.before_update(self, new, old, opts.dry_run)
        written = False
        try:
            meta["resourceVersion"] = str(await self.store.update(key, self._encode(new), revision))
            written = True
        except RevisionConflict:
            raise errors.conflict(rt.plural, old_meta["name"], rt.group)
        except KeyNotFound:
            raise errors.not_found(rt.plural, old_meta["name"], rt.group)
        finally:
            await st.after_update(self, new, old, written)
        return new

    async def guaranteed_update(self, rt: ResourceType, namespace: str | None, name: str,
                                mutate: Callable[[Obj], Obj], opts: WriteOptions, subresource: str = "",
                                tracked: bool = False) -> Obj:
        """Read, mutate, write; retried on a concurrent change (upstream GuaranteedUpdate)."""
        for _ in range(_UPDATE_RETRIES):
            kv = await self.store.get(rt.key(namespace, name))
            if kv is None:
                raise errors.not_found(rt.plural, name, rt.group)
            old = decode(kv.value, kv.mod_revision)
            new = mutate(jsonio.copy(old))
            new = self._merge_subresource(rt, old, new, subresource)
            try:
                return await self._write(rt, old, new, kv.mod_revision, opts, subresource, tracked)
            except APIError as e:
                if e.reason != "Conflict" or e.code != 409:
                    raise
        raise errors.conflict(rt.plural, name, rt.group)

    # -- patch ----------------------------------------------------------------

    async def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str, body: bytes,
                    opts: WriteOptions, subresource: str = "") -> tuple[Obj, bool]:
        definition = self.definition(rt)
        managedfields.validate_patch_options(content_type, opts.field_manager, opts.force or None)
        if content_type == "application/apply-patch+yaml":
            return await self._apply(rt, namespace, name, body, opts, subresource)

        def mutate(current: Obj) -> Obj:
            expected_rv = current["metadata"].get("resourceVersion")
            patched = patch.apply_patch(content_type, current, body, definition, field_validation=opts.field_validation)
            self._check_type(rt, patched)
            meta = _meta(patched)
            if meta.get("resourceVersion") and meta["resourceVersion"] != expected_rv:
                raise errors.conflict(rt.plural, name, rt.group)
            if meta.get("name", name) != name:
                raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            self._check_unknown_fields(rt, patched, opts, patching=True)
            return patched

        return await self.guaranteed_update(rt, namespace, name, mutate, opts, subresource), False

    async def _apply(self, rt: ResourceType, namespace: str | None, name: str, body: bytes, opts: WriteOptions,
                     subresource: str) -> tuple[Obj, bool]:
        applied = managedfields.decode_apply_patch(body)
        self._check_type(rt, applied)
        meta = _meta(applied)
        if meta.get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        self._check_unknown_fields(rt, applied, opts)
        definition = self.definition(rt)

        def merge(live: Obj | None) -> Obj:
            return managedfields.apply(live, jsonio.copy(applied), manager=opts.field_manager, force=opts.force,
                                       definition_name=definition, api_version=rt.group_version,
                                       now=now_rfc3339(), subresource=subresource)
        for _ in range(_UPDATE_RETRIES):
            kv = await self.store.get(rt.key(namespace, name))
            if kv is None:
                if subresource:
                    raise errors.not_found(rt.plural, name, rt.group)
                created = merge(None)
                _meta(created).update({"name": name})
                try:
                    return await self.create(rt, namespace, created, opts, tracked=True), True
                except APIError as e:
                    if e.reason == "AlreadyExists":
                        continue
                    raise
            old = decode(kv.value, kv.mod_revision)
            new = self._merge_subresource(rt, old, merge(jsonio.copy(old)), subresource)
            try:
                return await self._write(rt, old, new, kv.mod_revision, opts, subresource, tracked=True), False
            except APIError as e:
                if e.reason != "Conflict" or e.code != 409 or "Apply failed" in e.message:
                    raise
        raise errors.conflict(rt.plural, name, rt.group)

    # -- delete ---------------------------------------------------------------

    async def delete(self, rt: ResourceType, namespace: str | None, name: str, options: Obj,
                     opts: WriteOptions) -> tuple[Obj, bool]:
        """Delete or mark for deletion. Returns (object, removed now)."""
        st = self.strategy(rt)
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Foreground", "Background"):
            raise errors.invalid("DeleteOptions", "", [errors.field_cause(
                "propagationPolicy", f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                "FieldValueNotSupported")])
        grace_opt = options.get("gracePeriodSeconds")
        pre = options.get("preconditions") or {}
        for _ in range(_UPDATE_RETRIES):
            kv = await self.store.get(rt.key(namespace, name))
            if kv is None:
                raise errors.not_found(rt.plural, name, rt.group)
            obj = decode(kv.value, kv.mod_revision)
            meta = obj["metadata"]
            st.check_delete(obj)
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(rt.plural, name, rt.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(rt.plural, name, rt.group,
                                      f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                      f"ResourceVersion in object meta: {meta['resourceVersion']}")
            finalizers = list(meta.get("finalizers") or [])
            if policy is not None:
                # A policy replaces the garbage collector's finalizers with its own (none for Background).
                finalizers = [f for f in finalizers if f not in _GC_FINALIZERS.values()]
                if policy in _GC_FINALIZERS:
                    finalizers.append(_GC_FINALIZERS[policy])
            grace = st.graceful_delete(obj, grace_opt)
            if not finalizers and grace == 0 and not st.holds_deletion(obj):
                if opts.dry_run:
                    return obj, True
                try:
                    revision = await self.store.delete(kv.key, kv.mod_revision)
                except (RevisionConflict, KeyNotFound):
                    continue
                await st.after_delete(self, obj)
                meta["resourceVersion"] = str(revision)
                return obj, True
            marked = jsonio.copy(obj)
            mmeta = marked["metadata"]
            if mmeta.get("deletionTimestamp") and grace >= int(mmeta.get("deletionGracePeriodSeconds") or 0) \
                    and finalizers == (mmeta.get("finalizers") or []):
                return obj, False               # already being deleted; nothing to shorten
            at = datetime.now(timezone.utc) + timedelta(seconds=grace)
            if not mmeta.get("deletionTimestamp") or grace < int(mmeta.get("deletionGracePeriodSeconds") or 0):
                mmeta["deletionTimestamp"] = now_rfc3339(at)
            mmeta["deletionGracePeriodSeconds"] = grace
            if finalizers:
                mmeta["finalizers"] = finalizers
            st.on_deletion_marked(marked)
            if st.tracks_generation:
                mmeta["generation"] = int(mmeta.get("generation") or 0) + 1
            if opts.dry_run:
                return marked, False
            try:
                mmeta["resourceVersion"] = str(await self.store.update(kv.key, self._encode(marked), kv.mod_revision))
            except (RevisionConflict, KeyNotFound):
                continue
            if rt.kind == "Namespace" and not rt.group:
                # Creates in it are refused from this moment on, not from when the watch catches up
                # (upstream's NamespaceLifecycle forces a live lookup after a namespace delete).
                self._index_namespace(marked)
            return marked, False
        raise errors.conflict(rt.plural, name, rt.group)

    async def delete_collection(self, rt: ResourceType, namespace: str | None, options: Obj, opts: WriteOptions,
                                label_selector: str = "", field_selector: str = "") -> ListResult:
        listed = await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        for obj in listed.items:
            m = obj["metadata"]
            try:
                gone, _ = await self.delete(rt, m.get("namespace"), m["name"], options, opts)
                deleted.append(gone)
            except APIError as e:
                if e.code != 404:
                    raise
        return ListResult(deleted, listed.resource_version)
