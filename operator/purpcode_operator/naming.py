"""Fixed names and labels of every child object of a run.

Why fixed: a restarted operator finds what it made by name and label, and creating the same name twice is a 409,
not a duplicate. One Job per attempt, named `<run>-<stage slug>-<attempt>` (attempt from 1): the attempt count is
kept in the run's status AND readable from the Jobs' `purpcode.dev/attempt` label, so a restart always knows the
highest attempt that exists and never creates a second Job for it.
"""

from __future__ import annotations

import hashlib

from .plan import judge_service_name, sandbox_service_name

MANAGED_BY = "purpcode-operator"
PART_OF = "purpcode-k8s"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "purpcode.dev/run"
LABEL_ROLE = "purpcode.dev/role"  # stage | sandbox | judge | artifacts | rendezvous
LABEL_STAGE = "purpcode.dev/stage"  # the stage slug (init, synthesis, rule-learning, rl, evaluation, report)
LABEL_ATTEMPT = "purpcode.dev/attempt"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
ANNOTATION_STAGE = "purpcode.dev/stage-name"  # the API name (ruleLearning), for humans and tools
# A stage pod's StageConfig (JSON), mounted as /etc/purpcode/config.json by a downward API volume.
ANNOTATION_STAGE_CONFIG = "purpcode.dev/stage-config"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

ROLE_STAGE = "stage"
ROLE_SANDBOX = "sandbox"
ROLE_JUDGE = "judge"


def job_name(run: str, slug: str, attempt: int) -> str:
    return f"{run}-{slug}-{attempt}"


def pvc_name(run: str) -> str:
    return f"{run}-artifacts"


def rendezvous_service_name(run: str, slug: str) -> str:
    """Headless Service giving an Indexed Job's pods stable DNS names (torchrun's master is index 0)."""
    return f"{run}-{slug}"


def sandbox_name(run: str) -> str:
    return sandbox_service_name(run)


def judge_name(run: str) -> str:
    return judge_service_name(run)


def labels(
    run: str,
    role: str,
    *,
    component: str | None = None,
    stage_slug: str | None = None,
    attempt: int | None = None,
) -> dict[str, str]:
    """The standard label set of a child (recommended app.kubernetes.io/* plus run/role/stage/attempt)."""
    out = {
        LABEL_NAME: "purpcode",
        LABEL_INSTANCE: run,
        LABEL_COMPONENT: component or stage_slug or role,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUN: run,
        LABEL_ROLE: role,
    }
    if stage_slug is not None:
        out[LABEL_STAGE] = stage_slug
    if attempt is not None:
        out[LABEL_ATTEMPT] = str(attempt)
    return out


def selector(run: str, role: str, stage_slug: str | None = None) -> dict[str, str]:
    """The immutable subset used in Deployment/Service selectors."""
    out = {LABEL_RUN: run, LABEL_ROLE: role}
    if stage_slug is not None:
        out[LABEL_STAGE] = stage_slug
    return out


def event_name(run: str, uid: str, key: str) -> str:
    """A deterministic Event name per transition: posting it twice (after a restart) is a 409, not a duplicate."""
    digest = hashlib.sha256(f"{uid}/{key}".encode()).hexdigest()[:16]
    return f"{run}.{digest}"
