"""The fake API itself: the API-server behaviour the operator tests rely on (so a passing test means something)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fake_cluster import CONFIGMAPS, RUNS, FakeCluster
from support.kube_emulator import LabelSelector


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[FakeCluster]:
    """A fake cluster without the job simulator."""
    with FakeCluster(tmp_path, simulate=False) as c:
        yield c


def cm(
    name: str, labels: dict[str, str] | None = None, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "blockOwnerDeletion": True,
                "controller": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def run_doc(name: str = "r") -> dict[str, Any]:
    return {
        "apiVersion": "purpcode.dev/v1alpha1",
        "kind": "PurpCodeRun",
        "metadata": {"name": name},
        "spec": {"model": {"name": "tiny-random"}},
        "status": {"phase": "Succeeded"},
    }


def http(
    cluster: FakeCluster,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                method,
                cluster.url + path,
                data=None if body is None else json.dumps(body),
                headers={"Content-Type": ctype},
                params=params,
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    return asyncio.run(go())


def test_metadata_resource_versions_and_generation(quiet: FakeCluster) -> None:
    e = quiet.emulator
    run = quiet.create_run(run_doc())
    meta = run["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"].endswith("Z")
    assert "status" not in run  # the status subresource ignores status on create
    rv1 = e.revision(meta["resourceVersion"])
    assert rv1 is not None
    run = quiet.patch_run("r", {"metadata": {"labels": {"a": "b"}}})
    assert run["metadata"]["generation"] == 1 and e.revision(run["metadata"]["resourceVersion"]) > rv1
    run = quiet.patch_run("r", {"spec": {"seed": 7}})
    assert run["metadata"]["generation"] == 2
    same = quiet.patch_run("r", {"spec": {"seed": 7}})
    assert same["metadata"]["resourceVersion"] == run["metadata"]["resourceVersion"]  # no-op patch
    run = quiet.call(e.patch, RUNS, "default", "r", {"status": {"phase": "Running"}}, subresource="status")
    assert run["status"] == {"phase": "Running"} and run["metadata"]["generation"] == 2
    run = quiet.patch_run("r", {"status": {"phase": "Failed"}, "spec": {"seed": 8}})
    assert run["status"] == {"phase": "Running"} and run["spec"]["seed"] == 8


def test_http_create_conflict_precondition_and_json_patch(quiet: FakeCluster) -> None:
    status, obj = http(quiet, "POST", "/api/v1/namespaces/default/configmaps", cm("a"))
    assert status == 201 and obj["metadata"]["namespace"] == "default"
    status, err = http(quiet, "POST", "/api/v1/namespaces/default/configmaps", cm("a"))
    assert status == 409 and err["reason"] == "AlreadyExists"
    status, err = http(
        quiet,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        {"metadata": {"resourceVersion": "1"}, "data": {"k": "x"}},
        "application/merge-patch+json",
    )
    assert status == 409 and err["reason"] == "Conflict"
    status, obj = http(
        quiet,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        [{"op": "replace", "path": "/data/k", "value": "j"}],
        "application/json-patch+json",
    )
    assert status == 200 and obj["data"] == {"k": "j"}
    status, err = http(
        quiet,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        [{"op": "test", "path": "/data/k", "value": "nope"}],
        "application/json-patch+json",
    )
    assert status == 422
    status, err = http(quiet, "GET", "/api/v1/namespaces/default/configmaps/missing")
    assert status == 404 and err["reason"] == "NotFound"


def test_list_with_label_selectors(quiet: FakeCluster) -> None:
    for name, labels in (("a", {"x": "1", "y": "a"}), ("b", {"x": "2"}), ("c", {})):
        quiet.call(quiet.emulator.create, CONFIGMAPS, "default", cm(name, labels))
    names = lambda sel: sorted(o["metadata"]["name"] for o in quiet.objects(CONFIGMAPS, labels=sel))  # noqa: E731
    assert names("x=1") == ["a"] and names("x!=1") == ["b", "c"] and names("x in (1,2)") == ["a", "b"]
    assert names("x notin (1)") == ["b", "c"] and names("y") == ["a"] and names("!x") == ["c"]
    assert names("x,y=a") == ["a"]
    status, lst = http(
        quiet, "GET", "/api/v1/namespaces/default/configmaps", params={"labelSelector": "x==2"}
    )
    assert status == 200 and [i["metadata"]["name"] for i in lst["items"]] == ["b"]
    assert LabelSelector.parse("a in (x, y),b").matches({"a": "y", "b": ""})


def test_watch_resumes_from_a_resource_version(quiet: FakeCluster) -> None:
    quiet.call(quiet.emulator.create, CONFIGMAPS, "default", cm("a"))
    status, lst = http(quiet, "GET", "/api/v1/namespaces/default/configmaps")
    since = lst["metadata"]["resourceVersion"]
    quiet.call(quiet.emulator.create, CONFIGMAPS, "default", cm("b"))
    quiet.call(quiet.emulator.patch, CONFIGMAPS, "default", "a", {"data": {"k": "2"}})

    async def watch(params: dict[str, str]) -> list[tuple[str, str]]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                quiet.url + "/api/v1/namespaces/default/configmaps", params={"watch": "true", **params}
            ) as resp,
        ):
            out = []
            async for line in resp.content:
                if line.strip():
                    ev = json.loads(line)
                    out.append((ev["type"], ev["object"]["metadata"].get("name", ev["object"].get("code"))))
            return out

    assert asyncio.run(watch({"resourceVersion": since, "timeoutSeconds": "1"})) == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
    ]
    assert sorted(asyncio.run(watch({"timeoutSeconds": "1"}))) == [("ADDED", "a"), ("ADDED", "b")]


def test_garbage_collection_background_foreground_orphan(quiet: FakeCluster) -> None:
    e = quiet.emulator
    for mode in ("Background", "Foreground", "Orphan"):
        owner = quiet.create_run(run_doc(f"o-{mode.lower()}"))
        child = quiet.call(e.create, CONFIGMAPS, "default", cm(f"c-{mode.lower()}", owner=owner))
        quiet.call(
            e.create, CONFIGMAPS, "default", cm(f"g-{mode.lower()}", owner={**child, "apiVersion": "v1"})
        )
        quiet.delete_run(owner["metadata"]["name"], propagation=mode)
    left = lambda: sorted(o["metadata"]["name"] for o in quiet.objects(CONFIGMAPS))  # noqa: E731
    quiet.wait_for(lambda: left() == ["c-orphan", "g-orphan"], timeout=5, what="collection")
    orphan = quiet.call(quiet.emulator.get, CONFIGMAPS, "default", "c-orphan")
    assert orphan["metadata"]["ownerReferences"] == []


def test_an_object_created_after_its_owner_is_gone_is_collected(quiet: FakeCluster) -> None:
    owner = quiet.create_run(run_doc())
    quiet.delete_run("r")
    quiet.call(quiet.emulator.create, CONFIGMAPS, "default", cm("late", owner=owner))
    quiet.wait_for(lambda: quiet.objects(CONFIGMAPS) == [], timeout=5, what="late orphan collected")


def test_finalizers_hold_deletion(quiet: FakeCluster) -> None:
    e = quiet.emulator
    doc = run_doc()
    doc["metadata"]["finalizers"] = ["x/y"]
    quiet.create_run(doc)
    held = quiet.delete_run("r")
    assert held["metadata"]["deletionTimestamp"] and quiet.get_run("r") is not None
    quiet.call(e.patch, RUNS, "default", "r", {"metadata": {"finalizers": []}})
    assert quiet.get_run("r") is None


def test_creates_are_recorded_once_per_object(quiet: FakeCluster) -> None:
    http(quiet, "POST", "/api/v1/namespaces/default/configmaps", cm("a"))
    http(quiet, "POST", "/api/v1/namespaces/default/configmaps", cm("a"))
    records = quiet.call(lambda: [c for c in quiet.emulator.creates if c.resource == "v1/configmaps"])
    assert [r.name for r in records] == ["a"]
