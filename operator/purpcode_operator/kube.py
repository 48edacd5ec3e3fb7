"""A small async Kubernetes client (aiohttp, the same credentials kopf logs in with) and idempotent helpers.

Why not the `kubernetes` package: it is synchronous (threads per call) and heavy to import; the operator makes a
handful of kinds of calls (create, get, merge/JSON patch, delete, events), which this covers in ~200 lines.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from . import api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

# (apiVersion, kind) -> plural; all of them namespaced.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("batch/v1", "Job"): "jobs",
    ("apps/v1", "Deployment"): "deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (api.API_VERSION, api.KIND): api.PLURAL,
}


class ApiError(Exception):
    """A non-2xx answer of the API server, with its Status reason and message."""

    def __init__(self, status: int, reason: str, message: str, *, what: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what
        super().__init__(f"{what}: {status} {reason}: {message}" if what else f"{status} {reason}: {message}")


def object_path(
    api_version: str, kind: str, namespace: str, name: str | None = None, sub: str | None = None
) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def login(logger: logging.Logger | None = None) -> kopf.ConnectionInfo:
    """In-cluster service account first, then the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings, logger=logger or log)
    info = info or kopf.login_with_kubeconfig(settings=settings, logger=logger or log)
    if info is None:
        raise kopf.LoginError(
            "no credentials: neither an in-cluster service account nor a kubeconfig was found"
        )
    return info


class KubeClient:
    """Just the calls the operator makes. One aiohttp session, connection pooling, credentials re-read on 401."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        timeout: float = 30.0,
        max_connections: int = 64,
        relogin: Callable[[], kopf.ConnectionInfo] | None = None,
    ) -> None:
        self._info = info
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._relogin = relogin
        self._session: aiohttp.ClientSession | None = None
        self._base_headers: dict[str, str] | None = None  # built once per credentials (a relogin resets it)
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.requests = 0

    def _ssl(self) -> ssl.SSLContext | bool:
        info = self._info
        if not info.server.startswith("https"):
            return False
        if info.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            cadata = _b64(info.ca_data).decode() if info.ca_data else None
            ctx = ssl.create_default_context(
                cafile=os.fsdecode(info.ca_path) if info.ca_path else None, cadata=cadata
            )
        cert, key = info.certificate_path, info.private_key_path
        if info.certificate_data or info.private_key_data:
            self._tmpdir = self._tmpdir or tempfile.TemporaryDirectory(prefix="purpcode-operator-")
            if info.certificate_data:
                cert = os.path.join(self._tmpdir.name, "client.crt")
                _write_private(cert, _b64(info.certificate_data))
            if info.private_key_data:
                key = os.path.join(self._tmpdir.name, "client.key")
                _write_private(key, _b64(info.private_key_data))
        if cert:
            ctx.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
        return ctx

    def _headers(self) -> dict[str, str]:
        if self._base_headers is None:
            self._base_headers = {**self._info.as_http_headers(), "Accept": "application/json"}
        return self._base_headers

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        what: str = "",
        decode: bool = True,
    ) -> Obj:
        """One call; the answer's JSON object (`decode=False`: {} on success, for calls whose answer nobody reads,
        e.g. Events: decoding it is a share of a request's cost here). A non-2xx answer raises ApiError."""
        # Serialised once (compact: fewer bytes to write, parse and store), not per retry by aiohttp.
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (1, 2):
            session = await self._get_session()
            headers = self._headers()
            if payload is not None:
                headers = {**headers, "Content-Type": content_type}
            self.requests += 1
            async with session.request(
                method, self._info.server.rstrip("/") + path, data=payload, headers=headers, params=params
            ) as resp:
                if resp.status == 401 and attempt == 1 and self._relogin is not None:
                    self._info = self._relogin()  # projected service-account tokens rotate
                    self._base_headers = None
                    continue
                if not decode and resp.status < 400:
                    return {}
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {"message": (await resp.text())[:500]}
                if resp.status >= 400:
                    data = data if isinstance(data, dict) else {}
                    raise ApiError(
                        resp.status,
                        str(data.get("reason") or resp.reason),
                        str(data.get("message") or ""),
                        what=what,
                    )
                return data if isinstance(data, dict) else {}
        raise ApiError(401, "Unauthorized", "credentials were refreshed and still refused", what=what)

    # ----------------------------------------------------------------------------- verbs

    async def create(self, obj: Obj, *, decode: bool = True) -> Obj:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self.request(
            "POST", path, body=obj, what=f"create {obj['kind']} {meta['name']}", decode=decode
        )

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        path = object_path(api_version, kind, namespace, name)
        return await self.request("GET", path, what=f"get {kind} {name}")

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        sub: str | None = None,
        json_patch: bool = False,
    ) -> Obj:
        path = object_path(api_version, kind, namespace, name, sub)
        ctype = "application/json-patch+json" if json_patch else "application/merge-patch+json"
        return await self.request("PATCH", path, body=body, content_type=ctype, what=f"patch {kind} {name}")

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, propagation: str = "Background"
    ) -> Obj | None:
        """Delete; None when it was already gone."""
        path = object_path(api_version, kind, namespace, name)
        try:
            return await self.request(
                "DELETE",
                path,
                body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation},
                what=f"delete {kind} {name}",
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    # ----------------------------------------------------------------------------- idempotent helpers

    async def ensure(self, obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        """Create; on 409 read the existing object, check it is ours, and patch the listed fields if they differ."""
        try:
            return await self.create(obj)
        except ApiError as err:
            if err.status != 409:
                raise
        meta = obj["metadata"]
        existing = await self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        ours = {ref.get("uid") for ref in meta.get("ownerReferences", [])}
        theirs = {ref.get("uid") for ref in existing.get("metadata", {}).get("ownerReferences", [])}
        if ours and not ours & theirs:
            raise ApiError(
                409,
                "AlreadyExists",
                f"{obj['kind']} {meta['name']} exists and belongs to another object; delete it or rename the run",
                what=f"create {obj['kind']} {meta['name']}",
            )
        if patch_if_exists and not _contains(existing, patch_if_exists):
            return await self.patch(
                obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"], patch_if_exists
            )
        return existing

    async def post_event(self, event: Obj) -> bool:
        """Post an Event with a deterministic name; False when it was already posted (409)."""
        try:
            await self.create(event, decode=False)
        except ApiError as err:
            if err.status == 409:
                return False
            raise
        return True


def _contains(obj: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(obj, dict) and all(_contains(obj.get(k), v) for k, v in pattern.items())
    return bool(obj == pattern)


def _b64(data: str | bytes) -> bytes:
    """kubeconfig's *-data fields are base64 of PEM."""
    return base64.b64decode(data)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


async def gather_api(coros: list[Any]) -> tuple[list[Any], list[ApiError]]:
    """Run API calls concurrently; return the successful results and the API errors (anything else propagates:
    it is a bug)."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    ok: list[Any] = []
    errors: list[ApiError] = []
    for result in results:
        if isinstance(result, ApiError):
            errors.append(result)
        elif isinstance(result, aiohttp.ClientError | TimeoutError):
            errors.append(ApiError(0, type(result).__name__, str(result)))
        elif isinstance(result, BaseException):
            raise result
        else:
            ok.append(result)
    return ok, errors


async def gather_errors(coros: list[Any]) -> list[ApiError]:
    """Run API calls concurrently; return the API errors (anything else propagates: it is a bug)."""
    return (await gather_api(coros))[1]
