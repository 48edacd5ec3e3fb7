"""A stateful fake Kubernetes API: kmock's KubernetesEmulator, extended to behave like an API server.

kmock (by kopf's author) gives the HTTP server, discovery, the request DSL (tests can inject errors with
`emulator["create", kmock.resource("batch", "v1", "jobs")] << 500`) and an object store with history. It has no
uid/resourceVersion/generation, no status subresource, no label selectors, no watch resume and no garbage
collection; this subclass adds them, closely enough that the real operator process (kopf + its own aiohttp client)
cannot tell it from a cluster for the calls it makes:

- metadata: uid, resourceVersion (one global counter), generation (bumped when anything but metadata/status
  changes), creationTimestamp, generateName; resourceVersion preconditions (409 Conflict).
- status subresource: PATCH on the object ignores `.status`, PATCH on `/status` changes only `.status`.
- patches: JSON patch, merge patch, strategic merge (as merge: lists are replaced).
- list/watch: labelSelector, fieldSelector (metadata.name/namespace), `resourceVersion` resume from an event log
  (410 Gone when too old), `timeoutSeconds`.
- delete: finalizers + deletionTimestamp; propagationPolicy Background (default), Foreground, Orphan; owner-reference
  garbage collection of dependents (recursive), as the kube-controller-manager's garbage collector does.
- a record of every successful create (`creates`) and hooks on requests (`request_hooks`), so tests can assert
  "never a duplicate Job" and kill the operator right after a write.

Everything mutates synchronously inside the emulator's event loop (no awaits between read and write), so the
in-process job simulator and HTTP requests never interleave half-way.

Why one file (past 800 lines): one subclass of kmock's emulator whose handlers share the store, the event log
and the resourceVersion counter; semantic validation and Pod Security admission are in kube_validation.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import dicts as kdicts
from kmock._internal import k8s_dicts, parsing, rendering

from purpcode_operator import pss

from . import kube_validation as kv

Resource = kmock.resource
Obj = dict[str, Any]
Listener = Callable[[str, Resource, Obj], None]
RequestHook = Callable[[rendering.Request, int], None]

_STATUS_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    409: "AlreadyExists",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    504: "Timeout",
}
NAMESPACES = kmock.resource("", "v1", "namespaces")
PODS = kmock.resource("", "v1", "pods")
JOBS = kmock.resource("batch", "v1", "jobs")
# The Warning headers of the request being served (the API server's `Warning: 299 - "..."`).
_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("warnings", default=None)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, on purpose, with HTTP requests (in-process controllers are never faulted).

    A share `write_rate` of writes fail: creates with 429 (Retry-After), 500, or 504 *after* the object was stored
    (the client cannot know it was); patches with 409 Conflict, 429 or 500; deletes with 429 or 500. Watch streams
    end after about `watch_cut_seconds` (a load balancer's idle cut, an API server restart).
    """

    write_rate: float = 0.1
    watch_cut_seconds: float | None = None
    seed: int = 0
    # Also fault the simulated control plane's own requests (User-Agent kube-controller-manager/...)?
    controllers: bool = False


def _clone(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return json.loads(json.dumps(obj))


def _uid() -> str:
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def now_rfc3339(offset_seconds: float = 0.0) -> str:
    """Kubernetes' metav1.Time format (second precision, UTC)."""
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def api_error(status: int, message: str, reason: str | None = None) -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=status, reason=reason or _STATUS_REASONS.get(status, "Failure"), message=message
    )


# --------------------------------------------------------------------------------------------- kmock fixes

_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock 0.8 crashes on the namespace list itself (`/api/v1/namespaces`), which kopf reads: route it."""
    parts = path.strip("/").split("/")
    if parts[-1:] == ["namespaces"] and (
        (parts[0] == "api" and len(parts) == 3) or (parts[0] == "apis" and len(parts) == 4)
    ):
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        return parsing.ParsedPath(group, version, "namespaces", None, None, None)
    if parts[0] == "api" and len(parts) == 4 and parts[2] == "namespaces":  # GET /api/v1/namespaces/NAME
        return parsing.ParsedPath("", parts[1], "namespaces", None, parts[3], None)
    return _kmock_parse_path(path)


parsing.parse_path = _parse_path


# --------------------------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class LabelSelector:
    """A parsed `labelSelector` query (=, ==, !=, in, notin, exists, !exists)."""

    terms: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        terms: list[tuple[str, str, frozenset[str]]] = []
        for part in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", part)
            if m:
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                terms.append((m.group(1), m.group(2), values))
            elif "!=" in part:
                k, v = part.split("!=", 1)
                terms.append((k.strip(), "notin", frozenset([v.strip()])))
            elif "==" in part or "=" in part:
                k, v = re.split(r"==?", part, maxsplit=1)
                terms.append((k.strip(), "in", frozenset([v.strip()])))
            elif part.startswith("!"):
                terms.append((part[1:].strip(), "!exists", frozenset()))
            else:
                terms.append((part, "exists", frozenset()))
        return cls(tuple(terms))

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        for key, op, values in self.terms:
            present = key in labels
            if op == "in" and (not present or labels[key] not in values):
                return False
            if op == "notin" and present and labels[key] in values:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True


def field_selector_matches(text: str | None, obj: Obj) -> bool:
    """Only metadata.name and metadata.namespace are understood (all the callers here use)."""
    if not text:
        return True
    meta = obj.get("metadata", {})
    for part in text.split(","):
        if "!=" in part:
            k, v = part.split("!=", 1)
            negate = True
        elif "=" in part:
            k, v = re.split(r"==?", part, maxsplit=1)
            negate = False
        else:
            continue
        k = k.strip()
        if k in ("metadata.name", "metadata.namespace"):
            actual = meta.get(k.split(".", 1)[1])
            if (actual == v.strip()) == negate:
                return False
    return True


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CreateRecord:
    """One successful create, as the API server would audit it."""

    resource: str  # "batch/v1/jobs"
    namespace: str | None
    name: str
    uid: str
    at: float  # time.monotonic()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class _Watcher:
    resource: Resource
    namespace: str | None
    labels: LabelSelector
    fields: str | None
    queue: asyncio.Queue[Obj] = field(default_factory=asyncio.Queue)

    def wants(self, resource: Resource, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        return (
            resource == self.resource
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and self.labels.matches(meta.get("labels"))
            and field_selector_matches(self.fields, obj)
        )


def resource_key(resource: Resource) -> str:
    return "/".join(p for p in (resource.group, resource.version, resource.plural) if p)


# --------------------------------------------------------------------------------------------- the emulator


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the API-server behaviour an operator relies on (see the module docstring)."""

    log_limit: int = 200_000
    gc_delay: float = (
        0.0  # seconds before the garbage collector removes dependents (the real one is async too)
    )
    # True when a controller outside (tests/support/job_simulator.py) collects garbage, as kube-controller-manager
    # does: then a foreground delete only marks the owner (deletionTimestamp + the foregroundDeletion finalizer).
    external_gc: bool = False

    server_version: tuple[int, int] = (1, 33)
    opaque_rv: bool = (
        False  # resourceVersions as non-consecutive, unordered tokens (the contract: opaque strings)
    )
    history_seconds: float | None = None  # watch resume window (the watch cache's); older: 410 Gone
    faults: Faults | None = None
    relax_user_namespaces: bool = False  # the UserNamespacesPodSecurityStandards feature gate

    _rv: int = attrs.field(default=0, init=False)
    _tokens: dict[int, str] = attrs.field(factory=dict, init=False)
    _token_rv: dict[str, int] = attrs.field(factory=dict, init=False)
    _rng: random.Random = attrs.field(factory=random.Random, init=False)
    _log_times: collections.deque[tuple[int, float]] = attrs.field(factory=collections.deque, init=False)
    fault_log: list[tuple[str, str, int]] = attrs.field(factory=list, init=False)
    _log: collections.deque[tuple[int, Resource, Obj]] = attrs.field(init=False)
    _watchers: list[_Watcher] = attrs.field(factory=list, init=False)
    _uids: dict[str, tuple[Resource, str | None, str]] = attrs.field(factory=dict, init=False)
    _builtin_reactions: int = attrs.field(default=0, init=False)
    creates: list[CreateRecord] = attrs.field(factory=list, init=False)
    listeners: list[Listener] = attrs.field(factory=list, init=False)
    request_hooks: list[RequestHook] = attrs.field(factory=list, init=False)
    # Called with every request before it is served, reads and watches included (what RBAC must grant).
    access_hooks: list[Callable[[rendering.Request], None]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._log = collections.deque(maxlen=self.log_limit)
        self._builtin_reactions = len(self._payloads)
        if self.faults is not None:
            self._rng.seed(self.faults.seed)

    # ----------------------------------------------------------------------------- resource metadata

    def declare(
        self,
        resource: str | Resource,
        *,
        kind: str,
        namespaced: bool = True,
        subresources: Iterable[str] = ("status",),
        singular: str | None = None,
        shortnames: Iterable[str] = (),
        categories: Iterable[str] = (),
    ) -> Resource:
        """Declare a resource (a CRD's kind) for discovery and storage."""
        res = resource if isinstance(resource, Resource) else Resource(resource)
        self.resources[res] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            singular=singular or kind.lower(),
            verbs={"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
            shortnames=set(shortnames),
            categories=set(categories),
            subresources=set(subresources),
        )
        return res

    def _info(self, res: Resource) -> kmock.ResourceInfo:
        if res not in self.resources:
            raise kmock.KubernetesResourceNotFoundError()
        return self.resources[res]

    def _has_status(self, res: Resource) -> bool:
        return "status" in self._info(res).subresources

    def _api_version(self, res: Resource) -> str:
        return f"{res.group}/{res.version}" if res.group else str(res.version)

    # ----------------------------------------------------------------------------- the store (sync)

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        obj = self._objects._objects.get((res, namespace, name))
        if obj is None or obj.deleted:
            return None
        return obj.raw

    def list(
        self, res: Resource, namespace: str | None = None, labels: str | LabelSelector | None = None
    ) -> list[Obj]:
        selector = labels if isinstance(labels, LabelSelector) else LabelSelector.parse(labels)
        out = []
        for (r, ns, _), obj in self._objects._objects.items():
            if r != res or obj.deleted or (namespace is not None and ns != namespace):
                continue
            raw = obj.raw
            if selector.matches(raw.get("metadata", {}).get("labels")):
                out.append(raw)
        return out

    def history(self, res: Resource, namespace: str | None, name: str) -> list[Obj | None]:
        obj = self._objects._objects.get((res, namespace, name))
        return [] if obj is None else [None if v is None else v.raw for v in obj.history]

    # ----------------------------------------------------------------------------- validation and admission

    def _validate(self, res: Resource, namespace: str | None, obj: Obj, old: Obj | None) -> None:
        """What the API server checks before storing: decoding (400), then field validation (422)."""
        kind = str(obj.get("kind") or self._info(res).kind)
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        kv.check_quantities(obj)
        self._drop_disabled_fields(obj)
        errors = [] if old is not None else kv.name_errors(kind, name)
        errors += kv.label_errors(meta.get("labels"), "metadata.labels")
        errors += kv.annotation_errors(meta.get("annotations"), "metadata.annotations")
        errors += kv.owner_reference_errors(meta)
        if kind == "Pod":
            errors += kv.pod_spec_errors(obj.get("spec") or {}, "spec")
        elif kind == "Job":
            errors += kv.job_errors(obj)
            if old is not None:
                errors += kv.job_update_errors(old, obj)
        elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
            errors += kv.workload_errors(obj, old)
        if errors:
            raise kv.invalid(kind, res.group or "", name, errors)

    def _drop_disabled_fields(self, obj: Obj) -> None:
        """Fields this server version does not serve are dropped, as the real one does: user-namespaced pods and
        procMount before 1.33 (feature gates off by default), the appArmorProfile field before 1.30 (unknown: a
        Warning says so)."""
        found = pss.pod_template(obj)
        if found is None or not isinstance(found[1], dict):
            return
        spec = found[1]
        containers = [
            c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []
        ]
        if self.server_version < (1, 33):
            spec.pop("hostUsers", None)
            for c in containers:
                (c.get("securityContext") or {}).pop("procMount", None)
        if self.server_version < (1, 30):
            prefix = "spec.template.spec" if obj.get("kind") != "Pod" else "spec"
            dropped = []
            if (spec.get("securityContext") or {}).pop("appArmorProfile", None) is not None:
                dropped.append(f"{prefix}.securityContext.appArmorProfile")
            for key in ("initContainers", "containers", "ephemeralContainers"):
                for i, c in enumerate(spec.get(key) or []):
                    if (c.get("securityContext") or {}).pop("appArmorProfile", None) is not None:
                        dropped.append(f"{prefix}.{key}[{i}].securityContext.appArmorProfile")
            warnings = _WARNINGS.get()
            if warnings is not None:
                warnings += [f'unknown field "{path}"' for path in dropped]

    def _admit(self, res: Resource, namespace: str | None, obj: Obj) -> None:
        """Pod Security admission: Pods the namespace's enforce level refuses get 403; workloads get a Warning."""
        if namespace is None:
            return
        found = pss.pod_template(obj)
        if found is None:
            return
        ns = self.get(NAMESPACES, None, namespace)
        policy = pss.NamespacePolicy.from_labels((ns or {}).get("metadata", {}).get("labels"))
        meta, spec = found
        relax = self.relax_user_namespaces
        if obj.get("kind") == "Pod":
            enforce_v = policy.enforce_version or self.server_version
            found_v = pss.check_pod(
                spec, meta, level=policy.enforce, version=enforce_v, relax_user_namespaces=relax
            )
            if found_v:
                name = obj["metadata"]["name"]
                raise kmock.KubernetesError(
                    status=403,
                    reason="Forbidden",
                    message=pss.forbidden_message(
                        res.plural, name, policy.enforce, policy.enforce_version, found_v
                    ),
                    details={"name": name, "kind": res.plural},
                )
            return
        warn_v = policy.warn_version or self.server_version
        found_w = pss.check_pod(spec, meta, level=policy.warn, version=warn_v, relax_user_namespaces=relax)
        warnings = _WARNINGS.get()
        if found_w and warnings is not None:
            warnings.append(pss.warning_message(policy.warn, policy.warn_version, found_w))

    def _next_rv(self) -> str:
        self._rv += 1
        return self._token(self._rv)

    def _token(self, rv: int) -> str:
        """The resourceVersion string of revision `rv`: its number, or an opaque token that orders nothing."""
        if not self.opaque_rv:
            return str(rv)
        token = self._tokens.get(rv)
        if token is None:
            # numeric-looking, so a client comparing them as numbers gets wrong answers
            token = str(random.getrandbits(40))
            while token in self._token_rv:
                token = str(random.getrandbits(40))
            self._tokens[rv] = token
            self._token_rv[token] = rv
        return token

    def revision(self, token: str) -> int | None:
        """The revision behind a resourceVersion this server gave out (None: unknown)."""
        if not self.opaque_rv:
            return int(token) if token.isdigit() else None
        return self._token_rv.get(token)

    def _emit(self, kind: str, res: Resource, obj: Obj) -> None:
        event = {"type": kind, "object": obj}
        self._log.append((self._rv, res, event))
        if self.history_seconds is not None:
            now = time.monotonic()
            self._log_times.append((self._rv, now))
            while self._log_times and self._log_times[0][1] < now - self.history_seconds:
                old_rv, _ = self._log_times.popleft()
                while self._log and self._log[0][0] <= old_rv:
                    self._log.popleft()
        for watcher in self._watchers:
            if watcher.wants(res, obj):
                watcher.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(kind, res, obj)

    def create(
        self,
        res: Resource,
        namespace: str | None,
        body: Obj,
        *,
        keep_status: bool = False,
        created_ago: float = 0.0,
    ) -> Obj:
        """Create an object; 409 if it exists. `created_ago` backdates creationTimestamp (simulated age)."""
        info = self._info(res)
        obj = _clone(body)
        meta = obj.setdefault("metadata", {})
        if info.namespaced:
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise api_error(400, "the namespace of the object must be set")
            if meta.get("namespace") not in (None, namespace):
                raise api_error(400, "the namespace of the provided object does not match the request")
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise api_error(422, "name or generateName is required")
            meta["name"] = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        name = meta["name"]
        obj.setdefault("apiVersion", self._api_version(res))
        obj.setdefault("kind", info.kind)
        self._validate(res, namespace, obj, None)
        key = (res, namespace, name)
        existing = self._objects._objects.get(key)
        if existing is not None and not existing.deleted:
            raise api_error(409, f'{res.plural} "{name}" already exists')
        self._admit(res, namespace, obj)
        if self._has_status(res) and not keep_status:
            obj.pop("status", None)
        meta["uid"] = _uid()
        meta["resourceVersion"] = self._next_rv()
        meta["generation"] = 1
        meta["creationTimestamp"] = now_rfc3339(-created_ago)
        for transient in ("deletionTimestamp", "managedFields", "selfLink"):
            meta.pop(transient, None)
        if existing is None:
            self._objects._objects[key] = k8s_dicts.Object(obj)
        else:
            existing.create(obj)
        self._uids[meta["uid"]] = key
        self.creates.append(
            CreateRecord(
                resource_key(res),
                namespace,
                name,
                meta["uid"],
                time.monotonic(),
                dict(meta.get("labels", {})),
            )
        )
        self._emit("ADDED", res, obj)
        refs = meta.get("ownerReferences") or []
        if refs and all(ref.get("uid") not in self._uids for ref in refs):
            # Created after its owner was deleted (a controller racing the deletion): the real garbage
            # collector finds the owner missing and deletes the dependent; so does this one.
            self._schedule_gc(meta["uid"], orphan=(res, namespace, name))
        return obj

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        patch: Obj | list[Obj],
        *,
        subresource: str | None = None,
    ) -> Obj:
        """Apply a merge patch (dict) or JSON patch (list), honouring the status subresource."""
        key = (res, namespace, name)
        stored = self._objects._objects.get(key)
        if stored is None or stored.deleted:
            raise api_error(404, f'{res.plural} "{name}" not found')
        old = _clone(stored.raw)  # private: the patched candidate may share unchanged parts with it
        try:
            candidate: Obj = dict(kdicts.patch_dict(old, patch))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
            raise api_error(422, f"the patch cannot be applied: {err}") from None
        want_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if want_rv is not None and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise api_error(
                409,
                f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                reason="Conflict",
            )
        if subresource is None:
            self._validate(res, namespace, candidate, old)
        return self._store_update(res, key, old, candidate, subresource=subresource)

    def replace_status(self, res: Resource, namespace: str | None, name: str, status: Obj) -> Obj:
        """What a controller does with PUT .../status: swap the whole status."""
        key = (res, namespace, name)
        stored = self._objects._objects.get(key)
        if stored is None or stored.deleted:
            raise api_error(404, f'{res.plural} "{name}" not found')
        old = _clone(stored.raw)
        candidate = dict(old)
        candidate["status"] = _clone(status)
        return self._store_update(res, key, old, candidate, subresource="status")

    def _store_update(
        self,
        res: Resource,
        key: tuple[Resource, str | None, str],
        old: Obj,
        candidate: Obj,
        *,
        subresource: str | None,
    ) -> Obj:
        if subresource == "status":
            new = dict(old)
            if candidate.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = candidate["status"]
        elif subresource is not None:
            raise api_error(404, f"subresource {subresource!r} is not served by this emulator")
        else:
            new = candidate
            if self._has_status(res):
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        new["metadata"] = dict(new.get("metadata") or {})
        meta, old_meta = new["metadata"], old["metadata"]
        for fixed in ("uid", "name", "namespace", "creationTimestamp", "generation", "deletionTimestamp"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        strip = ("metadata", "status")
        if {k: v for k, v in new.items() if k not in strip} != {
            k: v for k, v in old.items() if k not in strip
        }:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old:
            return old  # a no-op patch changes nothing, not even the resourceVersion (as the API server does)
        meta["resourceVersion"] = self._next_rv()
        stored = self._objects._objects[key]
        stored.history.append(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(res, key, new)
        else:
            self._emit("MODIFIED", res, new)
        return new

    def delete(
        self, res: Resource, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> Obj:
        """Delete (or mark for deletion while finalizers remain), then collect dependents."""
        key = (res, namespace, name)
        stored = self._objects._objects.get(key)
        if stored is None or stored.deleted:
            raise api_error(404, f'{res.plural} "{name}" not found')
        obj = _clone(stored.raw)
        meta = obj["metadata"]
        uid = meta["uid"]
        if propagation == "Orphan":
            self._orphan_dependents(uid)
        elif propagation == "Foreground" and self.external_gc:
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
                meta["resourceVersion"] = self._next_rv()
                stored.history.append(obj)
                self._emit("MODIFIED", res, obj)
            return obj
        elif propagation == "Foreground":
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["resourceVersion"] = self._next_rv()
                stored.history.append(obj)
                self._emit("MODIFIED", res, obj)
            for dep_res, dep_key in self._dependents_of(uid):
                if self.get(dep_res, dep_key[1], dep_key[2]) is not None:
                    self.delete(dep_res, dep_key[1], dep_key[2], propagation="Foreground")
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["resourceVersion"] = self._next_rv()
                stored.history.append(obj)
                self._emit("MODIFIED", res, obj)
            return obj
        self._remove(res, key, obj)
        return obj

    def _remove(self, res: Resource, key: tuple[Resource, str | None, str], obj: Obj) -> None:
        final = _clone(obj)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._objects._objects[key].delete()
        self._uids.pop(final["metadata"]["uid"], None)
        self._emit("DELETED", res, final)
        self._schedule_gc(final["metadata"]["uid"])

    def _schedule_gc(self, uid: str, orphan: tuple[Resource, str | None, str] | None = None) -> None:
        if self.external_gc:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._collect_garbage(uid, orphan)
        else:
            loop.call_later(self.gc_delay, self._collect_garbage, uid, orphan)

    def _dependents_of(self, uid: str) -> list[tuple[Resource, tuple[Resource, str | None, str]]]:
        found = []
        for key, obj in self._objects._objects.items():
            if obj.deleted:
                continue
            refs = obj.last.raw.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                found.append((key[0], key))
        return found

    def _collect_garbage(self, gone_uid: str, orphan: tuple[Resource, str | None, str] | None = None) -> None:
        """Delete dependents whose every owner is gone (background propagation, recursive via _remove)."""
        candidates = [(orphan[0], orphan)] if orphan is not None else self._dependents_of(gone_uid)
        for res, key in candidates:
            obj = self.get(res, key[1], key[2])
            if obj is None:
                continue
            refs = obj.get("metadata", {}).get("ownerReferences") or []
            if all(ref.get("uid") not in self._uids for ref in refs):
                self.delete(res, key[1], key[2], propagation="Background")

    def _orphan_dependents(self, uid: str) -> None:
        for res, key in self._dependents_of(uid):
            obj = self.get(res, key[1], key[2])
            if obj is None:
                continue
            refs = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
            self.patch(
                res, key[1], key[2], [{"op": "replace", "path": "/metadata/ownerReferences", "value": refs}]
            )

    # ----------------------------------------------------------------------------- HTTP side

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip kmock's own mutation prelude: the fallbacks below do everything. kmock matches reactions by
        # filtering its whole request history (O(requests) per request); with no user reactions registered,
        # resource requests go straight to the fallbacks, so thousands of requests stay fast.
        for access in list(self.access_hooks):
            access(request)
        plural = request.resource.plural if request.resource is not None else None
        serve = self._FAST.get(request.action) if plural else None  # not discovery (/apis/<group>/<version>)
        warnings: list[str] = []
        token = _WARNINGS.set(warnings)
        try:
            fault = self._fault(request) if serve is not None else None
            if fault is not None and fault[0] == "before":
                response = await self._render_error(fault[1])
            elif serve is not None and len(self._payloads) == self._builtin_reactions:
                handler = getattr(self, serve)
                if serve == "_serve_watch":
                    response = await rendering.Response(payload=handler)(request)
                else:  # a create answers 201 Created, as the API server does
                    created = request.action == kmock.action.CREATE
                    try:  # refusals (409...) are rendered here, so the request hooks see them too
                        response = aiohttp.web.json_response(
                            await handler(request), status=201 if created else 200
                        )
                    except kmock.KubernetesError as err:
                        response = await self._render_error(err)
                if fault is not None and response.status < 400:  # stored, and yet the client hears a time-out
                    response = await self._render_error(fault[1])
            else:
                response = await kmock.KubernetesScaffold._handle(self, request)
        finally:
            _WARNINGS.reset(token)
        for text in warnings:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.add("Warning", f'299 - "{escaped}"')
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            for hook in list(self.request_hooks):
                hook(request, response.status)
        return response

    def _fault(self, request: rendering.Request) -> tuple[str, kmock.KubernetesError] | None:
        """Pick an injected failure for this write (None for reads, in-process calls, or no luck)."""
        faults = self.faults
        action = request.action
        if faults is None or action not in (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            return None
        agent = request.headers.get("User-Agent") or ""
        if not faults.controllers and agent.startswith("kube-controller-manager/"):
            return None
        if self._rng.random() >= faults.write_rate:
            return None
        if action == kmock.action.CREATE:
            choice = self._rng.choice(("429", "500", "504-after"))
        elif action == kmock.action.UPDATE:
            choice = self._rng.choice(("409", "429", "500"))
        else:
            choice = self._rng.choice(("429", "500"))
        assert request.resource is not None
        self.fault_log.append((str(action), request.resource.plural or "", int(choice[:3])))
        name = request.name or ""
        if choice == "409":
            err = api_error(
                409,
                f'Operation cannot be fulfilled on {request.resource.plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                reason="Conflict",
            )
        elif choice == "429":
            err = kmock.KubernetesError(
                status=429,
                reason="TooManyRequests",
                message="Too many requests, please try again later.",
                details={"retryAfterSeconds": 1},
            )
        elif choice == "500":
            err = api_error(500, "Internal error occurred: etcdserver: leader changed")
        else:
            err = api_error(
                504, "Timeout: request did not complete within requested timeout - context deadline exceeded"
            )
            return ("after", err)
        return ("before", err)

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        major, minor = self.server_version
        return {
            "major": str(major),
            "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.0",
            "gitTreeState": "clean",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    _FAST = {
        kmock.action.LIST: "_serve_list",
        kmock.action.WATCH: "_serve_watch",
        kmock.action.FETCH: "_serve_fetch",
        kmock.action.CREATE: "_serve_create",
        kmock.action.UPDATE: "_serve_update",
        kmock.action.DELETE: "_serve_delete",
    }

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesError):
            retry = (exc.details or {}).get("retryAfterSeconds") if isinstance(exc.details, dict) else None
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "metadata": {},
                    "status": "Failure",
                    "code": exc.status,
                    "reason": exc.reason,
                    "message": exc.message,
                    "details": exc.details or {},
                },
                status=exc.status,
                headers={"Retry-After": str(retry)} if retry else None,
            )
        return await super()._render_error(exc)

    def _resource_of(self, request: rendering.Request) -> Resource:
        assert request.resource is not None
        res = Resource(request.resource.group, request.resource.version, request.resource.plural)
        self._info(res)
        return res

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        res = self._resource_of(request)
        selector = LabelSelector.parse(request.params.get("labelSelector"))
        fields = request.params.get("fieldSelector")
        items = [o for o in self.list(res, request.namespace, selector) if field_selector_matches(fields, o)]
        return {
            "apiVersion": self._api_version(res),
            "kind": f"{self._info(res).kind}List",
            "metadata": {"resourceVersion": self._token(self._rv)},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        res = self._resource_of(request)
        watcher = _Watcher(
            resource=res,
            namespace=request.namespace,
            labels=LabelSelector.parse(request.params.get("labelSelector")),
            fields=request.params.get("fieldSelector"),
        )
        if request.name:
            extra = f"metadata.name={request.name}"
            watcher.fields = f"{watcher.fields},{extra}" if watcher.fields else extra
        since = request.params.get("resourceVersion")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        if self.faults is not None and self.faults.watch_cut_seconds:
            cut = self.faults.watch_cut_seconds * self._rng.uniform(0.5, 1.5)
            timeout = cut if timeout is None else min(timeout, cut)
        backlog: list[Obj] = []
        if since and since != "0":
            since_rv = self.revision(since)
            oldest = self._log[0][0] if self._log else self._rv + 1
            if since_rv is None or (since_rv < oldest - 1 and since_rv < self._rv):
                yield b""
                yield {
                    "type": "ERROR",
                    "object": {
                        "apiVersion": "v1",
                        "kind": "Status",
                        "metadata": {},
                        "status": "Failure",
                        "code": 410,
                        "reason": "Expired",
                        "message": f"too old resource version: {since} ({self._token(oldest)})",
                    },
                }
                return
            backlog = [ev for rv, r, ev in self._log if rv > since_rv and watcher.wants(r, ev["object"])]
        else:
            backlog = [
                {"type": "ADDED", "object": o} for o in self.list(res, request.namespace, watcher.labels)
            ]
            backlog = [ev for ev in backlog if field_selector_matches(watcher.fields, ev["object"])]
        self._watchers.append(watcher)  # registered in the same step as the backlog: no event falls between
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            yield b""
            for event in backlog:
                yield event
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    return
                yield event
        finally:
            self._watchers.remove(watcher)

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        res = self._resource_of(request)
        assert request.name is not None
        obj = self.get(res, request.namespace, request.name)
        if obj is None:
            raise api_error(404, f'{res.plural} "{request.name}" not found')
        return obj

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        res = self._resource_of(request)
        if not isinstance(request.data, dict):
            raise api_error(400, "the body must be a JSON object")
        return self.create(res, request.namespace, request.data)

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        res = self._resource_of(request)
        assert request.name is not None
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            raise api_error(415, "server-side apply is not emulated: use a merge or JSON patch")
        data = request.data
        if ctype == "application/json-patch+json" and not isinstance(data, list):
            raise api_error(400, "a JSON patch must be a list of operations")
        if not isinstance(data, dict | list):
            raise api_error(400, "the patch body must be JSON")
        return self.patch(res, request.namespace, request.name, data, subresource=request.subresource)

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        res = self._resource_of(request)
        assert request.name is not None
        options = request.data if isinstance(request.data, dict) else {}
        propagation = (
            request.params.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        )
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise api_error(400, f"unknown propagationPolicy {propagation!r}")
        return self.delete(res, request.namespace, request.name, propagation=propagation)


# --------------------------------------------------------------------------------------------- helpers


def job_creates(emulator: KubeEmulator) -> list[CreateRecord]:
    return [c for c in emulator.creates if c.resource == "batch/v1/jobs"]
