"""The operator's own API client against the fake API over HTTP: idempotent creates, patches, deletes, events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_cluster import CONFIGMAPS, DEPLOYMENTS, EVENTS, RUNS, FakeCluster

from purpcode_operator import kube
from purpcode_operator.kube import ApiError, KubeClient, object_path


@pytest.fixture
def quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    with FakeCluster(tmp_path, simulate=False) as c:
        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        monkeypatch.setattr(kube.kopf, "login_with_service_account", lambda **_: None)
        yield c


def owned_cm(name: str, uid: str, data: str = "v") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "default",
            "ownerReferences": [
                {"apiVersion": "purpcode.dev/v1alpha1", "kind": "PurpCodeRun", "name": "r", "uid": uid}
            ],
        },
        "data": {"k": data},
    }


def an_event(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"name": "r"},
        "reason": "X",
        "message": "m",
        "type": "Normal",
    }


def test_paths() -> None:
    assert object_path("v1", "ConfigMap", "ns", "x") == "/api/v1/namespaces/ns/configmaps/x"
    assert object_path("batch/v1", "Job", "ns") == "/apis/batch/v1/namespaces/ns/jobs"
    assert object_path("purpcode.dev/v1alpha1", "PurpCodeRun", "ns", "r", "status") == (
        "/apis/purpcode.dev/v1alpha1/namespaces/ns/purpcoderuns/r/status"
    )
    with pytest.raises(ValueError, match="does not manage Secret"):
        object_path("v1", "Secret", "ns")


def owner(cluster: FakeCluster, name: str) -> str:
    run = cluster.create_run(
        {
            "apiVersion": "purpcode.dev/v1alpha1",
            "kind": "PurpCodeRun",
            "metadata": {"name": name},
            "spec": {"model": {"name": "tiny-random"}},
        }
    )
    return str(run["metadata"]["uid"])


async def test_ensure_is_idempotent_and_checks_ownership(quiet: FakeCluster) -> None:
    client = KubeClient(kube.login())
    u1, u2 = owner(quiet, "one"), owner(quiet, "two")
    try:
        first = await client.ensure(owned_cm("a", u1))
        again = await client.ensure(owned_cm("a", u1, data="changed"))
        assert again["metadata"]["uid"] == first["metadata"]["uid"] and again["data"] == {"k": "v"}
        with pytest.raises(ApiError, match="belongs to another object") as err:
            await client.ensure(owned_cm("a", u2))
        assert err.value.status == 409
        records = quiet.call(
            lambda: [c.name for c in quiet.emulator.creates if c.resource == "v1/configmaps"]
        )
        assert records == ["a"]
    finally:
        await client.close()


async def test_ensure_patches_listed_fields_when_they_differ(quiet: FakeCluster) -> None:
    client = KubeClient(kube.login())
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}},
        },
    }
    try:
        await client.ensure(dep)
        zero = {**dep, "spec": {**dep["spec"], "replicas": 0}}
        out = await client.ensure(zero, patch_if_exists={"spec": {"replicas": 0}})
        assert out["spec"]["replicas"] == 0
        assert quiet.call(quiet.emulator.get, DEPLOYMENTS, "default", "d")["spec"]["replicas"] == 0
    finally:
        await client.close()


async def test_delete_status_patch_and_events(quiet: FakeCluster) -> None:
    client = KubeClient(kube.login())
    try:
        assert await client.delete("v1", "ConfigMap", "default", "missing") is None
        await client.create(owned_cm("x", owner(quiet, "holder")))
        assert await client.delete("v1", "ConfigMap", "default", "x") is not None
        assert quiet.objects(CONFIGMAPS) == []
        quiet.create_run(
            {
                "apiVersion": "purpcode.dev/v1alpha1",
                "kind": "PurpCodeRun",
                "metadata": {"name": "r"},
                "spec": {"model": {"name": "tiny-random"}},
            }
        )
        out = await client.patch(
            "purpcode.dev/v1alpha1",
            "PurpCodeRun",
            "default",
            "r",
            [{"op": "add", "path": "/status", "value": {"phase": "Running"}}],
            sub="status",
            json_patch=True,
        )
        assert out["status"] == {"phase": "Running"}
        assert quiet.call(quiet.emulator.get, RUNS, "default", "r")["status"] == {"phase": "Running"}
        event = an_event("r.abc")
        assert await client.post_event(event) is True
        assert await client.post_event(event) is False  # the same transition is reported once
        with pytest.raises(ApiError) as err:
            await client.get("v1", "ConfigMap", "default", "nope")
        assert err.value.status == 404 and "get ConfigMap nope" in str(err.value)
    finally:
        await client.close()


async def test_a_refused_token_is_read_again_once_and_the_new_one_kept() -> None:
    """Projected service-account tokens rotate: a 401 re-reads the credentials and repeats the call once; the
    following calls send the new token (the client keeps its headers per credentials, not per call)."""
    from aiohttp import web

    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer new":
            return web.json_response(
                {"kind": "Status", "reason": "Unauthorized", "message": "no"}, status=401
            )
        assert request.headers["Content-Type"] == "application/merge-patch+json"
        assert await request.json() == {"spec": {"replicas": 0}}
        return web.json_response({"metadata": {"name": "d"}})

    app = web.Application()
    app.router.add_route("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = f"http://127.0.0.1:{port}"
    logins: list[str] = []

    def relogin() -> kube.kopf.ConnectionInfo:
        logins.append("new")
        return kube.kopf.ConnectionInfo(server=server, token="new")

    client = KubeClient(kube.kopf.ConnectionInfo(server=server, token="old"), relogin=relogin)
    try:
        patch = {"spec": {"replicas": 0}}
        assert await client.patch("apps/v1", "Deployment", "ns", "d", patch) == {"metadata": {"name": "d"}}
        assert await client.patch("apps/v1", "Deployment", "ns", "d", patch) == {"metadata": {"name": "d"}}
        assert seen == ["Bearer old", "Bearer new", "Bearer new"] and logins == ["new"]
    finally:
        await client.close()
        await runner.cleanup()


async def test_events_are_posted_without_reading_the_answer_but_errors_still_speak(
    quiet: FakeCluster,
) -> None:
    client = KubeClient(kube.login())
    event = an_event("r.undecoded")
    try:
        assert await client.create(event, decode=False) == {}  # created, answer not decoded
        stored = quiet.call(quiet.emulator.get, EVENTS, "default", "r.undecoded")
        assert stored["reason"] == "X" and stored["message"] == "m"
        with pytest.raises(ApiError) as err:
            await client.create(event, decode=False)  # the same name again: the server's words come through
        assert (
            err.value.status == 409
            and err.value.reason == "AlreadyExists"
            and "r.undecoded" in err.value.message
        )
    finally:
        await client.close()
