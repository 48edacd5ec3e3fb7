"""kopf handlers: thin. They log in, keep indices of the children, and queue runs; the controller decides.

Run with `purpcode-operator` (main.py) or plainly `kopf run -m purpcode_operator.handlers --standalone -A`.
Only watching/indexing handlers are used (no on.create/on.update progress, no finalizers): kopf writes nothing to
the runs, and the operator's state is the cluster's. Deleting a run needs no operator at all (garbage collection).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import kopf

from . import api, gctune, naming
from .config import OperatorConfig
from .controller import Controller, index_key, trim_deployment, trim_job, trim_pod
from .health import HealthServer
from .kube import ApiError, KubeClient, login
from .metrics import OperatorMetrics

MANAGED: dict[str, Any] = {
    naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
    naming.LABEL_RUN: kopf.PRESENT,
}
log = logging.getLogger("purpcode_operator")


class OperatorState:
    """What the process holds between handler calls (rebuilt from the cluster on every start)."""

    def __init__(self) -> None:
        self.controller: Controller | None = None
        self.health: HealthServer | None = None
        self.client: KubeClient | None = None
        self.probe: asyncio.Task[None] | None = None
        self.collector: asyncio.Task[None] | None = None
        self.api_reachable = False


STATE = OperatorState()


class EssenceFreeDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf builds each object's "essence" (a deep copy of the body) on every watch event for change-detecting
    handlers (on.create/on.update/on.field). This operator has none: it reconciles from the cluster's state. An
    empty essence saves that copy (the largest CPU cost per event at hundreds of runs)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}


@kopf.on.login()
def login_handler(**kwargs: Any) -> kopf.ConnectionInfo:
    return login(kwargs.get("logger"))


@kopf.on.startup()
async def startup(**kwargs: Any) -> None:
    settings: kopf.OperatorSettings = kwargs["settings"]
    memo: kopf.Memo = kwargs["memo"]
    logger: logging.Logger = kwargs["logger"]
    config: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    metrics: OperatorMetrics = memo.get("metrics") or OperatorMetrics()
    # kopf keeps nothing in the run's status (its schema is strict): annotations, if it ever needs to.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="purpcode.dev")
    settings.persistence.diffbase_storage = EssenceFreeDiffBaseStorage(
        prefix="purpcode.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "purpcode.dev/operator"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = config.api_timeout_seconds
    if STATE.controller is not None:
        return  # a retried start-up (kopf retries failed activities): everything below is already running
    client = KubeClient(login(logger), timeout=config.api_timeout_seconds, relogin=lambda: login(logger))
    controller = Controller(
        client,
        config,
        metrics,
        jobs=kwargs["purpcode_jobs"],
        pods=kwargs["purpcode_pods"],
        deployments=kwargs["purpcode_deployments"],
    )
    health = HealthServer(
        metrics,
        alive=controller.alive,
        ready=lambda: STATE.api_reachable and controller.alive(),
        host=config.metrics_host,
        port=config.metrics_port,
    )
    await health.start()
    await controller.start()
    STATE.client, STATE.controller, STATE.health = client, controller, health
    STATE.probe = asyncio.create_task(_probe_api(client, logger), name="purpcode-api-probe")
    gctune.tune()  # last: what start-up built stays out of every later collection
    STATE.collector = asyncio.create_task(gctune.collect_periodically(), name="purpcode-gc")
    logger.info("purpcode operator started: %d workers, metrics on :%d", config.workers, config.metrics_port)


async def _probe_api(client: KubeClient, logger: logging.Logger) -> None:
    """Readiness: the API server answers and serves the PurpCodeRun API (the CRD is installed)."""
    delay = 0.5
    while not STATE.api_reachable:
        try:
            await client.request("GET", f"/apis/{api.API_VERSION}", what="discover the PurpCodeRun API")
            STATE.api_reachable = True
        except ApiError as err:
            logger.error("the PurpCodeRun API is not served (is the CRD installed?): %s", err)
        except (TimeoutError, aiohttp.ClientError) as err:
            logger.warning("the API server is not reachable yet: %r", err)
        if not STATE.api_reachable:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


@kopf.on.cleanup()
async def cleanup(**kwargs: Any) -> None:
    logger: logging.Logger = kwargs["logger"]
    for task in (STATE.probe, STATE.collector):
        if task is not None:
            task.cancel()
    if STATE.controller is not None:
        await STATE.controller.stop()
    if STATE.health is not None:
        await STATE.health.stop()
    if STATE.client is not None:
        await STATE.client.close()
    logger.info("purpcode operator stopped")


# --------------------------------------------------------------------------------------------- indices
# kopf passes handler arguments as keywords; `**kwargs` keeps the handlers compatible with its protocols.


def _key(kwargs: dict[str, Any]) -> Any:
    return index_key(kwargs.get("namespace"), kwargs.get("labels") or {})


@kopf.index("batch", "v1", "jobs", labels=MANAGED)
async def purpcode_jobs(**kwargs: Any) -> dict[Any, Any]:
    key = _key(kwargs)
    return {key: trim_job(kwargs["body"])} if key else {}


@kopf.index("", "v1", "pods", labels=MANAGED)
async def purpcode_pods(**kwargs: Any) -> dict[Any, Any]:
    key = _key(kwargs)
    return {key: trim_pod(kwargs["body"])} if key else {}


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
async def purpcode_deployments(**kwargs: Any) -> dict[Any, Any]:
    key = _key(kwargs)
    return {key: trim_deployment(kwargs["body"])} if key else {}


# --------------------------------------------------------------------------------------------- events


def _raw_body(kwargs: dict[str, Any]) -> Any:
    """The event's parsed object as a plain dict (`body` is kopf's view over it: every lookup through the view
    resolves a field path, several times the cost of a dict lookup; kopf never mutates an event's object)."""
    event = kwargs.get("event")
    return (
        event["object"]
        if isinstance(event, dict) and isinstance(event.get("object"), dict)
        else kwargs["body"]
    )


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def run_event(**kwargs: Any) -> None:
    if STATE.controller is not None:
        STATE.controller.run_event(kwargs.get("type"), _raw_body(kwargs))


async def _child_event(kwargs: dict[str, Any]) -> None:
    if STATE.controller is not None:
        STATE.controller.child_event(
            kwargs.get("namespace"), (kwargs.get("labels") or {}).get(naming.LABEL_RUN)
        )


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(**kwargs: Any) -> None:
    if STATE.controller is not None:
        meta = _raw_body(kwargs).get("metadata", {})
        STATE.controller.child_event(
            kwargs.get("namespace"),
            (kwargs.get("labels") or {}).get(naming.LABEL_RUN),
            job=meta.get("name"),
            rv=meta.get("resourceVersion"),
        )


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(**kwargs: Any) -> None:
    await _child_event(kwargs)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def deployment_event(**kwargs: Any) -> None:
    await _child_event(kwargs)
