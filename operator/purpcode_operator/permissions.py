"""Every Kubernetes API call the operator makes, as RBAC (group, resource, verb): the one list the chart's
ClusterRoles/Roles must grant exactly (tests/packaging/test_packaging_rbac.py compares them; the integration test
tests/operator/test_rbac_calls.py records what the real operator process asks of the API and checks it is here).

Why a list and not "whatever the chart grants": a grant nobody uses is attack surface (an operator that may
`update`/`delete` Jobs can be turned into a job-deleter), and a missing one shows only on a real cluster as 403.
"""

from __future__ import annotations

from . import api

Call = tuple[str, str, str]  # (API group, resource[/subresource], verb)

# Cluster-wide, whatever namespaces are watched: kopf scans and watches CRDs to find the PurpCodeRun resource
# (kopf's resource observer). API discovery (/apis/...) is a non-resource URL every authenticated user may read.
CLUSTER_CALLS: frozenset[Call] = frozenset(
    {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
)

# Cluster-wide, only when a namespace list is watched (`--namespace`): kopf's namespace observer lists and
# watches namespaces to learn which listed ones exist (with --all-namespaces it does not look at namespaces).
NAMESPACE_CALLS: frozenset[Call] = frozenset({("", "namespaces", "list"), ("", "namespaces", "watch")})

_RUNS = (api.GROUP, api.PLURAL)

# Where runs live (the watched namespaces, or cluster-wide when all are watched).
RUN_CALLS: frozenset[Call] = frozenset(
    {
        # kopf only watches runs (event handlers; no kopf finalizer, no progress annotations on runs).
        (*_RUNS, "list"),
        (*_RUNS, "watch"),
        # the controller: status writes (a JSON patch on /status); a re-read after a 422 on one (was the run
        # deleted and created again?); deleting a run after its ttlSecondsAfterFinished.
        (*_RUNS, "get"),
        (*_RUNS, "delete"),
        (api.GROUP, f"{api.PLURAL}/status", "patch"),
        # Not a request: creating a child with blockOwnerDeletion=true needs `update` on the owner's finalizers
        # when the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, hardened clusters).
        (api.GROUP, f"{api.PLURAL}/finalizers", "update"),
        # Children: created idempotently (a 409 is followed by a get); Jobs suspended/resumed by patch; the
        # service Deployments scaled and re-templated by patch; services torn down by delete. Jobs and PVCs
        # are never deleted by the operator: the garbage collector removes them with their run.
        ("batch", "jobs", "create"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "patch"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "watch"),
        ("apps", "deployments", "create"),
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "delete"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("", "persistentvolumeclaims", "create"),
        ("", "persistentvolumeclaims", "get"),
        ("", "services", "create"),
        ("", "services", "get"),
        ("", "services", "delete"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "get"),
        ("networking.k8s.io", "networkpolicies", "delete"),
        # pods: read-only, indexed by kopf to explain pending/failed stages.
        ("", "pods", "list"),
        ("", "pods", "watch"),
        # Events: the operator's (deterministic names: a repeat is a 409) and kopf's own warnings.
        ("", "events", "create"),
    }
)


def required(*, all_namespaces: bool) -> dict[str, frozenset[Call]]:
    """What must be granted where: "cluster" (a ClusterRole) and "runs" (a Role per watched namespace, or a
    ClusterRole when every namespace is watched)."""
    cluster = CLUSTER_CALLS if all_namespaces else CLUSTER_CALLS | NAMESPACE_CALLS
    return {"cluster": cluster, "runs": RUN_CALLS}
