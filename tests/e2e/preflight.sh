#!/usr/bin/env bash
# Host prerequisites of the kind suite (`make e2e`), checked before anything is created. One line per check:
#   ok|warn|fail  <check>  <what was found>
#         fix: <what to do>                    (on warn and fail)
# Exit 1 when any check fails; the last line then reads "preflight: FAILED: <the first failure>".
# Plain bash and coreutils/awk (macOS's bash 3.2 too); no Python.
#
# What the suite needs (tests/e2e/test_run_script.py keeps these numbers in step with the tiny-cpu sample):
#   Docker with a running daemon, kind >= KIND_MIN (it creates a cluster from NODE_IMAGE: Kubernetes >= 1.33 runs
#   user-namespaced pods, which the sandbox needs), kubectl, helm >= 3; the Docker engine must offer NEED_CPU_MILLI
#   CPU and NEED_MEMORY_MIB memory: the tiny sample's largest step (one stage + sandbox + judge), the operator and
#   kind's control plane; on Linux, unprivileged user namespaces (the sandbox jails code with them).
# Test hooks: PURPCODE_E2E_PROC (a fake /proc/sys root), commands stubbed on PATH.
set -uo pipefail

KIND_MIN="${PURPCODE_E2E_KIND_MIN:-0.29.0}"
HELM_MIN="3.0.0"
NEED_CPU_MILLI="${PURPCODE_E2E_NEED_CPU_MILLI:-3500}"
NEED_MEMORY_MIB="${PURPCODE_E2E_NEED_MEMORY_MIB:-7168}"
PROC="${PURPCODE_E2E_PROC:-/proc}"

failed=""
warned=0

report() {  # report LEVEL CHECK DETAIL [FIX]
  printf '%-5s %-22s %s\n' "$1" "$2" "$3"
  if [ -n "${4:-}" ]; then printf '      %-22s fix: %s\n' "" "$4"; fi
  case "$1" in
    fail) [ -n "$failed" ] || failed="$2: $3" ;;
    warn) warned=$((warned + 1)) ;;
  esac
}

# version_ge A B: A >= B, numerically per dot-separated part (1.10 > 1.9).
version_ge() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    na = split(a, x, "."); nb = split(b, y, "."); n = na > nb ? na : nb
    for (i = 1; i <= n; i++) { xi = x[i] + 0; yi = y[i] + 0; if (xi > yi) exit 0; if (xi < yi) exit 1 }
    exit 0 }'
}

first_version() {  # the first x.y[.z] in a text, without the "v"
  printf '%s\n' "$1" | sed -n 's/[^0-9]*\([0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\{0,1\}\).*/\1/p' | head -n 1
}

# ---- Docker
if ! command -v docker >/dev/null 2>&1; then
  report fail docker "'docker' is not installed" \
    "install Docker Desktop (macOS, Windows) or Docker Engine (Linux): https://docs.docker.com/get-docker/"
elif ! info="$(docker info --format '{{.NCPU}} {{.MemTotal}} {{.ServerVersion}}' 2>/dev/null)" || [ -z "$info" ]; then
  report fail docker "the Docker daemon is not reachable ('docker info' failed)" \
    "start Docker (Docker Desktop, or 'sudo systemctl start docker'); on Linux add yourself to the docker group"
else
  set -- $info
  ncpu="${1:-0}"; mem="${2:-0}"; server="${3:-?}"
  report ok docker "Docker $server, daemon reachable"
  have_cpu=$((ncpu * 1000))
  have_mib=$(awk -v b="$mem" 'BEGIN { printf "%d", b / 1048576 }')
  need_gib=$(awk -v m="$NEED_MEMORY_MIB" 'BEGIN { printf "%.1f", m / 1024 }')
  have_gib=$(awk -v m="$have_mib" 'BEGIN { printf "%.1f", m / 1024 }')
  if [ "$have_cpu" -lt "$NEED_CPU_MILLI" ]; then
    report fail "docker CPUs" "$ncpu CPUs for containers; the tiny run needs $((NEED_CPU_MILLI / 1000)).$(( (NEED_CPU_MILLI % 1000) / 100 )) at its peak" \
      "give Docker more CPUs (Docker Desktop: Settings > Resources > CPUs), or use a larger machine"
  else
    report ok "docker CPUs" "$ncpu CPUs (the tiny run requests up to ${NEED_CPU_MILLI}m)"
  fi
  if [ "$have_mib" -lt "$NEED_MEMORY_MIB" ]; then
    report fail "docker memory" "${have_gib} GiB for containers; the tiny run needs ${need_gib} GiB at its peak" \
      "give Docker at least ${need_gib} GiB (Docker Desktop: Settings > Resources > Memory)"
  else
    report ok "docker memory" "${have_gib} GiB (the tiny run requests up to ${need_gib} GiB)"
  fi
fi

# ---- kind, kubectl, helm
if ! command -v kind >/dev/null 2>&1; then
  report fail kind "'kind' is not installed" \
    "install kind >= $KIND_MIN: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (brew install kind)"
else
  v="$(first_version "$(kind version 2>/dev/null)")"
  if [ -z "$v" ] || ! version_ge "$v" "$KIND_MIN"; then
    report fail kind "kind ${v:-of unknown version}; the pinned node image needs kind >= $KIND_MIN" \
      "upgrade kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  else
    report ok kind "kind $v"
  fi
fi
if ! command -v kubectl >/dev/null 2>&1; then
  report fail kubectl "'kubectl' is not installed" "install kubectl: https://kubernetes.io/docs/tasks/tools/"
else
  report ok kubectl "$(first_version "$(kubectl version --client 2>/dev/null)")"
fi
if ! command -v helm >/dev/null 2>&1; then
  report fail helm "'helm' is not installed" "install Helm 3: https://helm.sh/docs/intro/install/"
else
  v="$(first_version "$(helm version --short 2>/dev/null)")"
  if [ -z "$v" ] || ! version_ge "$v" "$HELM_MIN"; then
    report fail helm "helm ${v:-of unknown version}; the chart needs Helm 3" "install Helm 3: https://helm.sh/docs/intro/install/"
  else
    report ok helm "helm $v"
  fi
fi

# ---- user namespaces (Linux hosts: kind's nodes share the host kernel; Docker Desktop runs its own VM)
if [ "$(uname -s 2>/dev/null)" = "Linux" ]; then
  sysctl_value() { [ -r "$PROC/sys/$1" ] && tr -d ' \n' < "$PROC/sys/$1"; }
  apparmor="$(sysctl_value kernel/apparmor_restrict_unprivileged_userns || true)"
  clone="$(sysctl_value kernel/unprivileged_userns_clone || true)"
  max_ns="$(sysctl_value user/max_user_namespaces || true)"
  if [ "$apparmor" = "1" ]; then
    report fail "user namespaces" "AppArmor restricts unprivileged user namespaces (Ubuntu >= 23.10 default): the sandbox's jail cannot start" \
      "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (persist: echo kernel.apparmor_restrict_unprivileged_userns=0 | sudo tee /etc/sysctl.d/60-purpcode-userns.conf)"
  elif [ "$clone" = "0" ]; then
    report fail "user namespaces" "kernel.unprivileged_userns_clone is 0: the sandbox's jail cannot start" \
      "sudo sysctl -w kernel.unprivileged_userns_clone=1"
  elif [ "$max_ns" = "0" ]; then
    report fail "user namespaces" "user.max_user_namespaces is 0: the sandbox's jail cannot start" \
      "sudo sysctl -w user.max_user_namespaces=63359"
  else
    report ok "user namespaces" "unprivileged user namespaces allowed"
  fi
else
  report ok "user namespaces" "checked inside Docker's own VM on $(uname -s 2>/dev/null || echo this OS)"
fi

if [ -n "$failed" ]; then
  echo "preflight: FAILED: $failed"
  exit 1
fi
echo "preflight: ok ($warned warning(s))"
