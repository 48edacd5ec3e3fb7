"""The floor operator for bench/operator.py: the least a kopf operator does for a PurpCodeRun.

One `on.create` handler that creates one Job adopted by the run (`kopf.adopt`), with kopf's default settings
(progress and diff-base storage in annotations; no Events: kopf 1.45 defaults `settings.posting.loggers` to False, so
handler log lines are not posted): no status, no lifecycle, no metrics. Our operator's CPU per run
divided by this one's is what our lifecycle, status, Events and metrics cost on top of kopf itself.

    kopf run --standalone --namespace default bench/floor_operator.py
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import kopf


@kopf.on.startup()
async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    info = kopf.login_with_service_account(settings=settings, logger=logger) or kopf.login_with_kubeconfig(
        settings=settings, logger=logger
    )
    if info is None:
        raise kopf.PermanentError("no credentials")
    memo["server"] = info.server.rstrip("/")
    memo["session"] = aiohttp.ClientSession(headers=dict(info.as_http_headers()))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo["session"].close()


@kopf.on.create("purpcode.dev", "v1alpha1", "purpcoderuns")
async def create_job(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    secure = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-floor", "labels": {"purpcode.dev/run": name}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"purpcode.dev/run": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "securityContext": secure}],
                },
            },
        },
    }
    kopf.adopt(job, owner=body)
    url = f"{memo['server']}/apis/batch/v1/namespaces/{namespace}/jobs"
    async with memo["session"].post(url, json=job) as resp:
        if resp.status == 409:
            return  # created by an earlier attempt
        if resp.status >= 300:
            raise kopf.TemporaryError(f"create Job: {resp.status} {await resp.text()}", delay=1)
