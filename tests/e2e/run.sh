#!/usr/bin/env bash
# The kind suite, one command (`make e2e`): a real cluster, the real images, the Helm chart, the tiny-cpu run.
#
#   0. check the host (tests/e2e/preflight.sh: Docker and its CPUs/memory against the tiny run's requests, kind,
#      kubectl, helm, user namespaces) and print the fix for anything missing
#   1. create a kind cluster from a pinned kindest/node image (or reuse one of the same name)
#   2. build the operator, sandbox and CPU-only trainer images (images/{operator,sandbox,trainer-cpu}/Dockerfile)
#      and load them into kind
#   3. helm install helm/purpcode (the CRD comes from the chart's crds/)
#   4. kubectl apply manifests/samples/tiny-cpu.yaml and wait until the run is Succeeded (fails fast on Failed)
#   5. check the artifacts on its volume (every stage's _SUCCESS, the report), its Events, the operator's metrics
#   6. delete the cluster (keep it with PURPCODE_E2E_KEEP=1)
#
# Needs docker (a running daemon), kind, kubectl and helm; no Python on the host. When the host falls short it prints
# each fix, then "E2E SKIPPED: <first problem>" and exits 0, or exits 1 with PURPCODE_E2E_REQUIRE=1 (CI machines
# that must run it).
# Knobs: PURPCODE_E2E_CLUSTER (purpcode-e2e), PURPCODE_E2E_NAMESPACE (purpcode-e2e), PURPCODE_E2E_TIMEOUT
# (seconds the run may take, 3600), PURPCODE_E2E_SKIP_BUILD=1 (images already loaded), PURPCODE_E2E_NODE_IMAGE (the
# kindest/node image), REGISTRY and VERSION (image names, as the Makefile: ghcr.io/purpcode-k8s/<name>:<version>).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CLUSTER="${PURPCODE_E2E_CLUSTER:-purpcode-e2e}"
NS="${PURPCODE_E2E_NAMESPACE:-purpcode-e2e}"
SYSTEM_NS="${PURPCODE_E2E_SYSTEM_NAMESPACE:-purpcode-system}"
RELEASE="${PURPCODE_E2E_RELEASE:-purpcode}"
TIMEOUT="${PURPCODE_E2E_TIMEOUT:-3600}"
REGISTRY="${REGISTRY:-ghcr.io/purpcode-k8s}"
VERSION="${VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n 1)}"
# Kubernetes >= 1.33: user-namespaced pods (hostUsers: false) on by default, which the sandbox needs. The image
# kind v0.29.0 publishes for 1.33 (kind >= 0.29.0 is checked by preflight.sh).
NODE_IMAGE="${PURPCODE_E2E_NODE_IMAGE:-kindest/node:v1.33.1}"
IMAGES=(operator sandbox trainer-cpu)
TRAINER="$REGISTRY/trainer-cpu"
RUN=tiny-cpu
STAGE_DIRS=(model synthesis rule_learning rl evaluation report)  # purpcode_operator.layout.STAGE_DIRS

log() { printf '\n== %s\n' "$*"; }

skip() {
  echo "E2E SKIPPED: $*"
  if [ "${PURPCODE_E2E_REQUIRE:-0}" = "1" ]; then exit 1; fi
  exit 0
}

log "host prerequisites"
preflight_out="$(bash tests/e2e/preflight.sh)" && preflight_rc=0 || preflight_rc=$?
printf '%s\n' "$preflight_out"
if [ "$preflight_rc" -ne 0 ]; then
  skip "$(printf '%s\n' "$preflight_out" | sed -n 's/^preflight: FAILED: //p')"
fi

KUBECTL=(kubectl --context "kind-$CLUSTER")

diagnose() {
  set +e
  echo "---- run"
  "${KUBECTL[@]}" -n "$NS" get purpcoderun "$RUN" -o yaml
  echo "---- children"
  "${KUBECTL[@]}" -n "$NS" get jobs,pods,deployments,services,networkpolicies,pvc -l "purpcode.dev/run=$RUN" -o wide
  echo "---- events"
  "${KUBECTL[@]}" -n "$NS" get events --sort-by=.lastTimestamp | tail -60
  echo "---- failed pods' logs"
  for pod in $("${KUBECTL[@]}" -n "$NS" get pods -l "purpcode.dev/run=$RUN" -o name); do
    echo "-- $pod"
    "${KUBECTL[@]}" -n "$NS" logs "$pod" --all-containers --tail=60
  done
  echo "---- operator log"
  "${KUBECTL[@]}" -n "$SYSTEM_NS" logs "deploy/$RELEASE-operator" --tail=200
}

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then diagnose || true; fi
  if [ "${PURPCODE_E2E_KEEP:-0}" != "1" ]; then
    log "delete the kind cluster $CLUSTER (PURPCODE_E2E_KEEP=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit $rc
}

log "kind cluster $CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --wait 180s
fi
trap cleanup EXIT

if [ "${PURPCODE_E2E_SKIP_BUILD:-0}" != "1" ]; then
  for image in "${IMAGES[@]}"; do
    ref="$REGISTRY/$image:$VERSION"
    log "build $ref"
    DOCKER_BUILDKIT=1 docker build -f "images/$image/Dockerfile" --build-arg "VERSION=$VERSION" -t "$ref" .
    log "load $ref into kind"
    kind load docker-image "$ref" --name "$CLUSTER"
  done
fi

log "helm install $RELEASE (namespace $SYSTEM_NS)"
helm upgrade --install "$RELEASE" helm/purpcode --kube-context "kind-$CLUSTER" \
  --namespace "$SYSTEM_NS" --create-namespace \
  --set image.repository="$REGISTRY/operator" --set image.tag="$VERSION" \
  --set defaultImages.trainer.repository="$TRAINER" --set defaultImages.trainer.tag="$VERSION" \
  --set defaultImages.sandbox.repository="$REGISTRY/sandbox" --set defaultImages.sandbox.tag="$VERSION" \
  --set defaultImages.judge.repository="$TRAINER" --set defaultImages.judge.tag="$VERSION" \
  --wait --timeout 10m
"${KUBECTL[@]}" -n "$SYSTEM_NS" rollout status "deploy/$RELEASE-operator" --timeout=300s

log "apply manifests/samples/$RUN.yaml in namespace $NS"
"${KUBECTL[@]}" create namespace "$NS" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f -
"${KUBECTL[@]}" -n "$NS" delete purpcoderun "$RUN" --ignore-not-found --wait=true
"${KUBECTL[@]}" -n "$NS" apply -f "manifests/samples/$RUN.yaml"

log "wait for $RUN to succeed (at most ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
phase=""
while [ $SECONDS -lt $deadline ]; do
  phase="$("${KUBECTL[@]}" -n "$NS" get purpcoderun "$RUN" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  stage="$("${KUBECTL[@]}" -n "$NS" get purpcoderun "$RUN" -o jsonpath='{.status.currentStage}' 2>/dev/null || true)"
  printf '%s  phase=%s stage=%s\n' "$(date +%T)" "${phase:-?}" "${stage:-?}"
  case "$phase" in
    Succeeded) break ;;
    Failed)
      echo "the run failed: $("${KUBECTL[@]}" -n "$NS" get purpcoderun "$RUN" -o jsonpath='{.status.message}')"
      exit 1 ;;
  esac
  sleep 15
done
[ "$phase" = "Succeeded" ] || { echo "the run did not finish in ${TIMEOUT}s"; exit 1; }
"${KUBECTL[@]}" -n "$NS" wait --for=condition=Succeeded "purpcoderun/$RUN" --timeout=10s

log "check the artifacts on $RUN-artifacts"
checks=""
for dir in "${STAGE_DIRS[@]}"; do
  checks+="test -f /artifacts/$dir/_SUCCESS || { echo missing /artifacts/$dir/_SUCCESS; exit 1; }"$'\n'
done
checks+='ls -la /artifacts/report; test -n "$(ls /artifacts/report | grep -v _SUCCESS)" || { echo empty report; exit 1; }'$'\n'
checks+='echo ARTIFACTS OK'
"${KUBECTL[@]}" -n "$NS" delete pod artifacts-check --ignore-not-found --wait=true
"${KUBECTL[@]}" -n "$NS" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: artifacts-check
  labels: {app.kubernetes.io/name: purpcode-e2e}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000,
                    seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: check
      image: $TRAINER:$VERSION
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c"]
      args:
        - |
$(printf '%s\n' "$checks" | sed 's/^/          /')
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: artifacts, mountPath: /artifacts, readOnly: true}]
  volumes:
    - name: artifacts
      persistentVolumeClaim: {claimName: $RUN-artifacts, readOnly: true}
EOF
"${KUBECTL[@]}" -n "$NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/artifacts-check --timeout=600s
"${KUBECTL[@]}" -n "$NS" logs pod/artifacts-check | tee /dev/stderr | grep -q "ARTIFACTS OK"

log "check the run's Events"
events="$("${KUBECTL[@]}" -n "$NS" get events --field-selector "involvedObject.name=$RUN" -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}')"
echo "$events" | sort | uniq -c
[ "$(echo "$events" | grep -c '^StageSucceeded$')" -eq 6 ] || { echo "expected 6 StageSucceeded events"; exit 1; }

log "check the operator's metrics"
pod="$("${KUBECTL[@]}" -n "$SYSTEM_NS" get pods -l app.kubernetes.io/component=operator -o jsonpath='{.items[0].metadata.name}')"
port="$("${KUBECTL[@]}" -n "$SYSTEM_NS" get pod "$pod" -o jsonpath='{.spec.containers[0].ports[?(@.name=="metrics")].containerPort}')"
metrics="$("${KUBECTL[@]}" get --raw "/api/v1/namespaces/$SYSTEM_NS/pods/$pod:$port/proxy/metrics")"
echo "$metrics" | grep -E "^purpcode_run_phase\{.*run=\"$RUN\".*\} " || true
echo "$metrics" | grep -Eq "^purpcode_run_phase\{[^}]*phase=\"Succeeded\"[^}]*run=\"$RUN\"[^}]*\} 1(\.0)?$" \
  || { echo "purpcode_run_phase for $RUN is not Succeeded=1"; exit 1; }
echo "$metrics" | grep -Eq '^controller_runtime_reconcile_total\{controller="purpcoderun",result="success"\} [1-9]' \
  || { echo "no successful reconcile counted"; exit 1; }
echo "$metrics" | grep -Eq '^purpcode_stage_duration_seconds_count\{result="succeeded",stage="report"\} 1(\.0)?$' \
  || { echo "no report stage duration observed"; exit 1; }

echo
echo "E2E PASSED: $RUN Succeeded on kind cluster $CLUSTER; artifacts, events and metrics checked"
