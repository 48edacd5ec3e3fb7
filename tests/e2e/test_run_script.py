"""Cheap checks of the kind suite's script that run everywhere (the suite itself needs kind and Docker)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "tests" / "e2e" / "run.sh"


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(RUN_SH)], check=True)


def test_everything_it_uses_exists() -> None:
    text = RUN_SH.read_text()
    for image in ("operator", "sandbox", "trainer-cpu"):
        assert (ROOT / "images" / image / "Dockerfile").exists(), image
    assert (ROOT / "helm" / "purpcode" / "Chart.yaml").exists()
    assert (ROOT / "manifests" / "samples" / "tiny-cpu.yaml").exists()
    from purpcode_operator.layout import STAGE_DIRS

    assert f"STAGE_DIRS=({' '.join(STAGE_DIRS.values())})" in text
    assert "bash tests/e2e/run.sh" in (ROOT / "Makefile").read_text()


# What run.sh and preflight.sh may use on a host (coreutils, sed, awk): never Python (macOS ships 3.9; the project
# needs 3.11), never the project itself.
BASICS = ("bash", "env", "dirname", "printf", "cat", "sed", "awk", "head", "tr", "uname", "grep")


def _path_without(tools: set[str], tmp_path: Path) -> str:
    """A PATH holding only the basic commands the script needs before its tool check (no docker/kind/...)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        if found and name not in tools:
            os.symlink(found, bin_dir / name)
    return str(bin_dir)


def test_missing_tools_skip_with_a_clear_reason(tmp_path: Path) -> None:
    env = {"PATH": _path_without({"docker", "kind", "kubectl", "helm"}, tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "E2E SKIPPED: docker: 'docker' is not installed" in proc.stdout
    for tool in ("kind", "kubectl", "helm"):  # every missing tool is listed with its fix, not only the first
        assert f"'{tool}' is not installed" in proc.stdout
    assert "fix: install Docker" in proc.stdout
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env={**env, "PURPCODE_E2E_REQUIRE": "1"},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "E2E SKIPPED" in proc.stdout


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI to check the daemon test with")
def test_an_unreachable_docker_daemon_skips(tmp_path: Path) -> None:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        pytest.skip("a Docker daemon is running here: the suite would really run")
    bin_dir = Path(_path_without(set(), tmp_path))
    for tool in ("docker", "kubectl"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    for fake in ("kind", "helm"):
        (bin_dir / fake).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / fake).chmod(0o755)
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "E2E SKIPPED: docker: the Docker daemon is not reachable" in proc.stdout


# --------------------------------------------------------------------------------------------- preflight (issue 16)

PREFLIGHT = ROOT / "tests" / "e2e" / "preflight.sh"
GIB = 1024**3


def _stub(bin_dir: Path, name: str, script: str) -> None:
    (bin_dir / name).write_text("#!/bin/sh\n" + script + "\n")
    (bin_dir / name).chmod(0o755)


def _host(
    tmp_path: Path,
    *,
    cpus: int = 8,
    memory_gib: float = 16,
    kind: str | None = "kind v0.29.0 go1.24.2 linux/amd64",
    os_name: str = "Linux",
    sysctls: dict[str, str] | None = None,
    daemon: bool = True,
) -> dict[str, str]:
    """A fake host: docker/kind/kubectl/helm/uname stubs on PATH and a fake /proc/sys."""
    bin_dir = Path(_path_without({"uname"}, tmp_path))
    info = f"echo '{cpus} {int(memory_gib * GIB)} 27.3.1'" if daemon else "exit 1"
    _stub(bin_dir, "docker", f'[ "$1" = info ] && {{ {info}; }}')
    if kind is not None:
        _stub(bin_dir, "kind", f"echo '{kind}'")
    _stub(bin_dir, "kubectl", "echo 'Client Version: v1.33.2'")
    _stub(bin_dir, "helm", "echo 'v3.16.2+g13654a5'")
    _stub(bin_dir, "uname", f"echo {os_name}")
    proc_dir = tmp_path / "proc"
    for key, value in (sysctls or {}).items():
        path = proc_dir / "sys" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "PURPCODE_E2E_PROC": str(proc_dir)}


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PREFLIGHT)], env=env, capture_output=True, text=True, check=False)


def test_preflight_passes_on_a_host_that_has_everything(tmp_path: Path) -> None:
    proc = _preflight(_host(tmp_path, sysctls={"kernel/apparmor_restrict_unprivileged_userns": "0"}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 7, proc.stdout
    assert lines[-1].startswith("preflight: ok") and "fix:" not in proc.stdout


def test_preflight_measures_docker_against_the_tiny_runs_requests(tmp_path: Path) -> None:
    proc = _preflight(_host(tmp_path, cpus=2, memory_gib=3.8))
    assert proc.returncode == 1
    assert re.search(
        r"^fail\s+docker CPUs\s+2 CPUs for containers; the tiny run needs 3\.5", proc.stdout, re.M
    )
    assert re.search(
        r"^fail\s+docker memory\s+3\.8 GiB for containers; the tiny run needs 7\.0 GiB", proc.stdout, re.M
    )
    assert "Settings > Resources > CPUs" in proc.stdout and "give Docker at least 7.0 GiB" in proc.stdout
    assert proc.stdout.rstrip().endswith(
        "preflight: FAILED: docker CPUs: 2 CPUs for containers; the tiny run needs 3.5 at its peak"
    )


@pytest.mark.parametrize(
    ("kind", "ok"),
    [
        ("kind v0.29.0 go1.24 linux/amd64", True),
        ("kind v0.30.1", True),
        ("kind v0.20.0 go1.20", False),
        ("kind v0.9.0", False),
    ],
)
def test_preflight_wants_a_kind_that_runs_the_pinned_node_image(tmp_path: Path, kind: str, ok: bool) -> None:
    proc = _preflight(_host(tmp_path, kind=kind))
    assert (proc.returncode == 0) is ok, proc.stdout
    if not ok:
        assert "needs kind >= 0.29.0" in proc.stdout and "fix: upgrade kind" in proc.stdout


@pytest.mark.parametrize(
    ("sysctls", "fix"),
    [
        (
            {"kernel/apparmor_restrict_unprivileged_userns": "1"},
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        ),
        ({"kernel/unprivileged_userns_clone": "0"}, "sudo sysctl -w kernel.unprivileged_userns_clone=1"),
        ({"user/max_user_namespaces": "0"}, "sudo sysctl -w user.max_user_namespaces="),
    ],
)
def test_preflight_catches_a_linux_host_that_refuses_user_namespaces(
    tmp_path: Path, sysctls: dict[str, str], fix: str
) -> None:
    proc = _preflight(_host(tmp_path, sysctls=sysctls))
    assert proc.returncode == 1 and re.search(r"^fail\s+user namespaces", proc.stdout, re.M)
    assert f"fix: {fix}" in proc.stdout


def test_preflight_leaves_the_sysctls_to_docker_desktops_vm_on_macos(tmp_path: Path) -> None:
    proc = _preflight(
        _host(tmp_path, os_name="Darwin", sysctls={"kernel/apparmor_restrict_unprivileged_userns": "1"})
    )
    assert proc.returncode == 0, proc.stdout


def test_run_sh_skips_with_the_first_preflight_failure_and_needs_no_python(tmp_path: Path) -> None:
    env = _host(tmp_path, cpus=2)
    assert not (Path(env["PATH"]) / "python3").exists()
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "E2E SKIPPED: docker CPUs: 2 CPUs for containers" in proc.stdout
    assert "fix: give Docker more CPUs" in proc.stdout


def test_the_kind_node_image_is_pinned_new_enough_for_user_namespaced_pods() -> None:
    text = RUN_SH.read_text()
    match = re.search(
        r'NODE_IMAGE="\$\{PURPCODE_E2E_NODE_IMAGE:-kindest/node:v(\d+)\.(\d+)\.(\d+)[^}]*\}"', text
    )
    assert match, "run.sh must pin a kindest/node image"
    assert (int(match.group(1)), int(match.group(2))) >= (1, 33)
    assert '--image "$NODE_IMAGE"' in text
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "python" in line.lower()]  # no Python needed on the host


def _cpu_milli(q: str) -> int:
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def _mib(q: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(int(q) / 1024 / 1024)


# kind's control plane requests (kube-apiserver 250m, controller-manager 200m, scheduler 100m, etcd 100m/100Mi,
# CoreDNS 2 x 100m/70Mi, kindnet 100m/50Mi) and the chart's operator (100m/256Mi).
KIND_OVERHEAD = (950, 290)
OPERATOR = (100, 256)


def test_preflights_needs_cover_the_tiny_samples_peak_and_fit_a_4_core_laptop() -> None:
    from support.run_specs import load_sample

    from purpcode_operator.decide import Settings, prepare

    doc = load_sample("tiny-cpu")
    doc["metadata"]["namespace"] = "e2e"
    run, plan = prepare(doc, Settings())
    services = {
        "sandbox": (
            plan.sandbox.replicas * _cpu_milli(plan.sandbox.cpu),
            plan.sandbox.replicas * _mib(plan.sandbox.memory),
        ),
        "judge": (
            plan.judge.replicas * _cpu_milli(plan.judge.cpu),
            plan.judge.replicas * _mib(plan.judge.memory),
        ),
    }
    peak_cpu = peak_mib = 0
    for stage in plan.stages:
        cpu = _cpu_milli(stage.resources.cpu) + sum(services[s][0] for s in stage.needs)
        mib = _mib(stage.resources.memory) + sum(services[s][1] for s in stage.needs)
        peak_cpu, peak_mib = max(peak_cpu, cpu), max(peak_mib, mib)
    need_cpu = peak_cpu + KIND_OVERHEAD[0] + OPERATOR[0]
    need_mib = peak_mib + KIND_OVERHEAD[1] + OPERATOR[1]
    text = PREFLIGHT.read_text()
    declared_cpu = int(re.search(r"NEED_CPU_MILLI:-(\d+)", text).group(1))  # type: ignore[union-attr]
    declared_mib = int(re.search(r"NEED_MEMORY_MIB:-(\d+)", text).group(1))  # type: ignore[union-attr]
    assert need_cpu <= declared_cpu <= 4000, (need_cpu, declared_cpu)  # a 4-core laptop's Docker can give 4
    assert need_mib <= declared_mib <= 8 * 1024, (need_mib, declared_mib)


def test_the_e2e_trainer_image_is_cpu_only_and_lint_clean() -> None:
    text = (ROOT / "images" / "trainer-cpu" / "Dockerfile").read_text()
    assert "nvidia/cuda" not in text and "download.pytorch.org/whl/cpu" in text
    assert "gpu" not in re.search(r"PURPCODE_EXTRAS=(\S+)", text).group(1)  # type: ignore[union-attr]
    assert re.search(r"^USER 1000:1000$", text, re.M)
    hadolint = shutil.which("hadolint")
    if hadolint is not None:
        out = subprocess.run(
            [hadolint, "--no-color", "-"], input=text, capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout
