{{/*
RBAC rules, one place (rbac.yaml binds them). They follow what the operator's code touches
(purpcode_operator.kube.PLURALS, the kopf handlers); tests/packaging/test_packaging_chart.py checks the two agree.
*/}}

{{- define "purpcode.watchRules" -}}
# kopf discovers the custom resource and, without a fixed namespace list, the namespaces to watch.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "purpcode.runRules" -}}
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns"]
  verbs: ["get", "list", "watch", "patch", "update", "delete"]
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["purpcode.dev"]
  resources: ["purpcoderuns/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["configmaps", "services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events on runs: transitions, failures (core/v1, deterministic names; kopf's own too).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
