"""The fake API is as strict as a real one: Pod Security admission, semantic validation, server versions, opaque
resourceVersions with a bounded watch window, and injected faults. All through HTTP, as clients see it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fake_cluster import NAMESPACES, FakeCluster
from support.kube_emulator import Faults

from purpcode_operator import pss

GOOD_SC = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str = "p", sc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {"name": "app", "image": "i", "securityContext": GOOD_SC if sc is None else sc}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [c], **spec},
    }


def job(name: str = "j", **spec: Any) -> dict[str, Any]:
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "i", "securityContext": GOOD_SC}],
        }
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": template, **spec},
    }


def http(
    c: FakeCluster, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, Any, list[str]]:
    async def go() -> tuple[int, Any, list[str]]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                method,
                c.url + path,
                data=json.dumps(body) if body is not None else None,
                headers={"Content-Type": ctype},
            ) as r,
        ):
            return (
                r.status,
                await r.json(content_type=None),
                r.headers.getall("Warning", [])
                + ([f"retry-after={r.headers['Retry-After']}"] if "Retry-After" in r.headers else []),
            )

    return asyncio.run(go())


@pytest.fixture
def restricted(tmp_path: Path) -> Iterator[FakeCluster]:
    with FakeCluster(tmp_path, simulate=False, pod_security="restricted") as c:
        yield c


PODS_PATH = "/api/v1/namespaces/default/pods"
JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"


# --------------------------------------------------------------------------------------------- Pod Security


def test_pod_security_refuses_pods_and_warns_on_templates(restricted: FakeCluster) -> None:
    status, ok, _ = http(restricted, "POST", PODS_PATH, pod("good"))
    assert status == 201, ok
    status, err, _ = http(restricted, "POST", PODS_PATH, pod("bad", sc={}))
    assert (
        status == 403 and err["reason"] == "Forbidden" and err["details"] == {"name": "bad", "kind": "pods"}
    )
    assert err["message"].startswith('pods "bad" is forbidden: violates PodSecurity "restricted:latest": ')
    assert "allowPrivilegeEscalation != false" in err["message"]
    assert restricted.call(restricted.emulator.get, *_pods("bad")) is None

    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod(sc={})["spec"]},
        },
    }
    status, _, warnings = http(restricted, "POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    assert status == 201
    (warning,) = warnings
    assert warning.startswith(
        '299 - "would violate PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation'
    )
    status, _, warnings = http(restricted, "POST", JOBS_PATH, job())
    assert status == 201 and warnings == []  # a compliant template: no warning


def _pods(name: str) -> tuple[Any, str, str]:
    from support.job_simulator import PODS

    return PODS, "default", name


def test_pod_security_levels_and_versions(tmp_path: Path) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="baseline") as c:
        assert http(c, "POST", PODS_PATH, pod("plain", sc={}))[0] == 201  # baseline admits a default pod
        status, err, _ = http(c, "POST", PODS_PATH, pod("hostnet", sc={}, hostNetwork=True))
        assert (
            status == 403
            and 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in err["message"]
        )
        labels = {pss.ENFORCE_LABEL: "restricted", pss.ENFORCE_LABEL + "-version": "v1.29"}
        c.call(c.emulator.patch, NAMESPACES, None, "default", {"metadata": {"labels": labels}})
        status, err, _ = http(c, "POST", PODS_PATH, pod("old", sc={}))
        assert status == 403 and '"restricted:v1.29"' in err["message"]
    with FakeCluster(tmp_path / "p", simulate=False, pod_security="privileged") as c:
        assert http(c, "POST", PODS_PATH, pod("any", sc={"privileged": True}, hostPID=True))[0] == 201


# --------------------------------------------------------------------------------------------- validation


def test_quantity_grammar_is_a_decode_error(restricted: FakeCluster) -> None:
    for bad in ("1.2.3", "2Gii", "5e"):
        body = job(f"q{len(bad)}")
        body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": bad}}
        status, err, _ = http(restricted, "POST", JOBS_PATH, body)
        assert status == 400 and err["reason"] == "BadRequest", bad
        assert err["message"].startswith(
            'Job in version "v1" cannot be handled as a Job: quantities must match'
        )
    body = job("fine")
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"memory": "1.5Gi", "cpu": "500m"},
        "limits": {"memory": "2e9", "cpu": "1"},
    }
    assert http(restricted, "POST", JOBS_PATH, body)[0] == 201
    body = job("inverted")
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2"},
        "limits": {"cpu": "1"},
    }
    status, err, _ = http(restricted, "POST", JOBS_PATH, body)
    assert status == 422 and "must be less than or equal to cpu limit" in err["message"]


def test_names_labels_and_owner_references(restricted: FakeCluster) -> None:
    status, err, _ = http(restricted, "POST", PODS_PATH, pod("Bad_Name"))
    assert status == 422 and err["reason"] == "Invalid"
    assert err["message"].startswith(
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'
    )
    assert err["details"]["causes"][0]["field"] == "metadata.name"

    body = pod("labelled")
    body["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "q" * 64}
    status, err, _ = http(restricted, "POST", PODS_PATH, body)
    assert status == 422 and "must be no more than 63 characters" in err["message"]
    assert err["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{"q" * 64}": must be no more than 63 characters',
            "field": "metadata.labels",
        }
    ]

    long_job = job("j" * 64)
    status, err, _ = http(restricted, "POST", JOBS_PATH, long_job)
    assert status == 422 and "spec.template.labels" in err["message"]

    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "1svc"},
        "spec": {"ports": [{"port": 80}]},
    }
    status, err, _ = http(restricted, "POST", "/api/v1/namespaces/default/services", svc)
    assert status == 422 and "DNS-1035 label" in err["message"]

    owned = pod("owned")
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "batch/v1", "kind": "Job", "name": "b", "uid": "", "controller": True},
    ]
    status, err, _ = http(restricted, "POST", PODS_PATH, owned)
    assert status == 422
    fields = [c["field"] for c in err["details"]["causes"]]
    assert fields == ["metadata.ownerReferences.uid", "metadata.ownerReferences"]
    assert err["message"].startswith(
        'Pod "owned" is invalid: [metadata.ownerReferences.uid: Invalid value: "": uid must not be empty'
    )


def test_annotations_are_qualified_names_within_256_kib(restricted: FakeCluster) -> None:
    """ValidateAnnotations on the object and on a template: a stage's config travels in its pods' annotation, so a
    config past the limit must be refused here as the API server refuses it (then the run fails as SpecRejected)."""
    big = job("big")
    big["spec"]["template"]["metadata"] = {"annotations": {"purpcode.dev/stage-config": "x" * (256 * 1024)}}
    status, err, _ = http(restricted, "POST", JOBS_PATH, big)
    assert status == 422
    assert err["message"] == (
        'Job.batch "big" is invalid: spec.template.metadata.annotations: Too long: may not be more than 262144 bytes'
    )
    assert err["details"]["causes"] == [
        {
            "reason": "FieldValueTooLong",
            "message": "Too long: may not be more than 262144 bytes",
            "field": "spec.template.metadata.annotations",
        }
    ]
    # Exactly at the limit (key and value lengths together) is accepted.
    key = "purpcode.dev/stage-config"
    fits = job("fits")
    fits["spec"]["template"]["metadata"] = {"annotations": {key: "x" * (256 * 1024 - len(key))}}
    assert http(restricted, "POST", JOBS_PATH, fits)[0] == 201

    bad_key = pod("annotated")
    bad_key["metadata"]["annotations"] = {"bad key": "v"}
    status, err, _ = http(restricted, "POST", PODS_PATH, bad_key)
    assert status == 422 and err["details"]["causes"][0]["field"] == "metadata.annotations"
    assert "name part must consist of alphanumeric characters" in err["message"]


def test_proc_mount_needs_host_users_false(restricted: FakeCluster) -> None:
    restricted.call(
        restricted.emulator.patch,
        NAMESPACES,
        None,
        "default",
        {"metadata": {"labels": {pss.ENFORCE_LABEL: "privileged"}}},
    )
    status, err, _ = http(restricted, "POST", PODS_PATH, pod("pm", sc={"procMount": "Unmasked"}))
    assert status == 422
    assert (
        'spec.containers[0].securityContext.procMount: Invalid value: "Unmasked": `hostUsers` must be false to use `Unmasked`'
        in err["message"]
    )
    assert (
        http(restricted, "POST", PODS_PATH, pod("pm2", sc={"procMount": "Unmasked"}, hostUsers=False))[0]
        == 201
    )


def test_job_rules_and_immutability(restricted: FakeCluster) -> None:
    status, err, _ = http(restricted, "POST", JOBS_PATH, job("idx", completionMode="Indexed"))
    assert (
        status == 422
        and "spec.completions: Required value: when completion mode is Indexed" in err["message"]
    )
    status, err, _ = http(
        restricted,
        "POST",
        JOBS_PATH,
        job("big", completionMode="Indexed", completions=1, parallelism=100_001),
    )
    assert status == 422 and "spec.parallelism" in err["message"]
    always = job("always")
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    status, err, _ = http(restricted, "POST", JOBS_PATH, always)
    assert (
        status == 422
        and 'Unsupported value: "Always": supported values: "OnFailure", "Never"' in err["message"]
    )

    assert http(restricted, "POST", JOBS_PATH, job("m", suspend=True, parallelism=1, completions=1))[0] == 201
    path = f"{JOBS_PATH}/m"
    merge = "application/merge-patch+json"
    assert http(restricted, "PATCH", path, {"spec": {"suspend": False, "parallelism": 2}}, merge)[0] == 200
    status, err, _ = http(restricted, "PATCH", path, {"spec": {"completions": 3}}, merge)
    assert status == 422 and "spec.completions: Invalid value: 3: field is immutable" in err["message"]
    new_template = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "other", "securityContext": GOOD_SC}]}
            }
        }
    }
    status, err, _ = http(restricted, "PATCH", path, new_template, merge)
    assert status == 422 and "spec.template" in err["message"] and "field is immutable" in err["message"]
    # a suspended Job that never started may change its pods' scheduling directives
    assert http(restricted, "POST", JOBS_PATH, job("s", suspend=True))[0] == 201
    nodes = {"spec": {"template": {"spec": {"nodeSelector": {"pool": "gpu"}}}}}
    assert http(restricted, "PATCH", f"{JOBS_PATH}/s", nodes, merge)[0] == 200


def test_server_version_and_user_namespaced_pods(tmp_path: Path) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="privileged", server_version=(1, 32)) as c:
        status, version, _ = http(c, "GET", "/version")
        assert (version["major"], version["minor"]) == ("1", "32")
        status, obj, _ = http(c, "POST", PODS_PATH, pod("u", sc={"procMount": "Unmasked"}, hostUsers=False))
        assert status == 201  # accepted, and quietly without the fields the 1.32 defaults disable
        assert (
            "hostUsers" not in obj["spec"]
            and "procMount" not in obj["spec"]["containers"][0]["securityContext"]
        )
    with FakeCluster(
        tmp_path / "old", simulate=False, pod_security="privileged", server_version=(1, 29)
    ) as c:
        armored = pod("a", sc={**GOOD_SC, "appArmorProfile": {"type": "RuntimeDefault"}})
        status, obj, warnings = http(c, "POST", PODS_PATH, armored)
        assert status == 201 and "appArmorProfile" not in obj["spec"]["containers"][0]["securityContext"]
        assert warnings == ['299 - "unknown field \\"spec.containers[0].securityContext.appArmorProfile\\""']
    with FakeCluster(
        tmp_path / "new", simulate=False, pod_security="privileged", server_version=(1, 33)
    ) as c:
        status, obj, _ = http(c, "POST", PODS_PATH, pod("u", sc={"procMount": "Unmasked"}, hostUsers=False))
        assert status == 201 and obj["spec"]["hostUsers"] is False


# --------------------------------------------------------------------------------------------- versions, faults


def test_resource_versions_are_opaque_and_the_watch_window_is_bounded(tmp_path: Path) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security=None, history_seconds=0.3) as c:
        cms = "/api/v1/namespaces/default/configmaps"
        versions = []
        for i in range(20):
            status, obj, _ = http(c, "POST", cms, {"metadata": {"name": f"c{i}"}, "data": {}})
            versions.append(obj["metadata"]["resourceVersion"])
        numbers = [int(v) for v in versions]  # numeric-looking, but in no order
        assert numbers != sorted(numbers) and len(set(versions)) == 20
        revisions = [c.emulator.revision(v) for v in versions]
        assert revisions == sorted(revisions)  # the server itself knows the order

        async def first_event(since: str) -> dict[str, Any]:
            async with (
                aiohttp.ClientSession() as s,
                s.get(
                    c.url + cms, params={"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
                ) as r,
            ):
                async for line in r.content:
                    if line.strip():
                        return dict(json.loads(line))
            return {}

        assert asyncio.run(first_event(versions[-2]))["object"]["metadata"]["name"] == "c19"
        time.sleep(0.4)
        http(c, "POST", cms, {"metadata": {"name": "late"}, "data": {}})  # the window moves on
        gone = asyncio.run(first_event(versions[-2]))
        assert (
            gone["type"] == "ERROR"
            and gone["object"]["code"] == 410
            and gone["object"]["reason"] == "Expired"
        )
        assert asyncio.run(first_event("not-a-version"))["object"]["code"] == 410


def test_injected_faults(tmp_path: Path) -> None:
    with FakeCluster(
        tmp_path,
        simulate=False,
        pod_security=None,
        faults=Faults(write_rate=1.0, watch_cut_seconds=0.3, seed=3),
    ) as c:
        cms = "/api/v1/namespaces/default/configmaps"
        seen: dict[int, int] = {}
        for i in range(30):
            status, err, extra = http(c, "POST", cms, {"metadata": {"name": f"c{i}"}, "data": {}})
            seen[status] = seen.get(status, 0) + 1
            stored = c.call(c.emulator.get, *_cm(f"c{i}")) is not None
            assert stored == (status == 504), (status, err)  # a time-out may hide a stored write
            if status == 429:
                assert err["reason"] == "TooManyRequests" and "retry-after=1" in extra
        assert set(seen) == {429, 500, 504}
        assert len(c.emulator.fault_log) == 30

        async def watch_for() -> float:
            began = time.monotonic()
            async with aiohttp.ClientSession() as s, s.get(c.url + cms, params={"watch": "true"}) as r:
                async for _ in r.content:
                    pass
            return time.monotonic() - began

        assert asyncio.run(watch_for()) < 5  # cut, not held open


def _cm(name: str) -> tuple[Any, str, str]:
    from support.fake_cluster import CONFIGMAPS

    return CONFIGMAPS, "default", name


def test_workload_selectors(restricted: FakeCluster) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod()["spec"]}

    def dep(name: str, selector: dict[str, Any]) -> dict[str, Any]:
        body = {"selector": selector, "template": template}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": body}

    status, err, _ = http(restricted, "POST", deployments, dep("a", {"matchLabels": {"app": "y"}}))
    assert status == 422 and "`selector` does not match template `labels`" in err["message"]
    status, err, _ = http(restricted, "POST", deployments, dep("b", {}))
    assert status == 422 and "spec.selector: Required value" in err["message"]
    ok = dep("c", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]})
    assert http(restricted, "POST", deployments, ok)[0] == 201
    change = {"spec": {"selector": {"matchLabels": {"app": "x"}}}}
    status, err, _ = http(restricted, "PATCH", f"{deployments}/c", change, "application/merge-patch+json")
    assert status == 422 and "spec.selector" in err["message"] and "field is immutable" in err["message"]
    assert (
        http(
            restricted, "PATCH", f"{deployments}/c", {"spec": {"replicas": 3}}, "application/merge-patch+json"
        )[0]
        == 200
    )
