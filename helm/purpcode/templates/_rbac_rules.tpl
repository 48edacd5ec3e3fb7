{{/*
RBAC rules, one place (rbac.yaml binds them). They grant exactly the API calls listed in
operator/purpcode_operator/permissions.py (what the operator and kopf request; tests/operator/test_rbac_calls.py
records them from the real process): tests/packaging/test_packaging_rbac.py fails on a missing or an extra verb.
*/}}

{{- define "purpcode.watchRules" -}}
# kopf scans and watches CRDs to find the PurpCodeRun resource.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# With a namespace list, kopf lists and watches namespaces to learn which of them exist.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}

{{- define "purpcode.runRules" -}}
# Runs: watched; status written; re-read after a failed status write; deleted after their TTL.
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion (OwnerReferencesPermissionEnforcement checks this on create).
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns/finalizers"]
  verbs: ["update"]
# Children: created idempotently (a 409 is followed by a get); Jobs suspended/resumed by patch; service
# Deployments scaled by patch and torn down with their Service and NetworkPolicy. Jobs and PVCs go with their
# run (garbage collector), never deleted by the operator.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on runs: transitions, failures (deterministic names: a repeat is a 409), and kopf's own.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
