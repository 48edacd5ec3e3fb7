"""Pin every Python package each container image installs: writes `images/<image>/constraints.txt`.

Why: the images must build the same way every time, and a constraint file with the whole resolved closure
(`name==version` for every transitive dependency) is what the Dockerfiles pass to pip (`-c`). The resolution is
done by pip itself for the image's interpreter and platform (cp3.11 on Debian bookworm for operator and sandbox,
cp3.12 on Ubuntu 24.04 for the CUDA trainer), so nothing here guesses versions.

Usage: `python tools/lock_images.py [operator sandbox trainer]` (needs the package index; about a minute for the
trainer). `tests/packaging/test_images.py` checks the locks cover the project's requirements and resolve.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "purpcode-k8s"


@dataclass(frozen=True)
class ImageLock:
    """What one image installs and for which interpreter/platform."""

    extras: tuple[str, ...]
    python: str
    glibc_minor: int  # highest manylinux_2_N the base image's glibc accepts
    # Packages published only as sdists: pinned to the version tested here and installed from source in the
    # image; their own dependencies are resolved as wheels like everything else.
    sdists: tuple[str, ...] = ()
    extra_requirements: tuple[str, ...] = field(default_factory=tuple)


IMAGES: dict[str, ImageLock] = {
    "operator": ImageLock(extras=("operator",), python="3.11", glibc_minor=36),
    "sandbox": ImageLock(extras=("sandbox", "analysis"), python="3.11", glibc_minor=36),
    "trainer": ImageLock(
        extras=("training", "gpu", "analysis", "report", "sandbox"),
        python="3.12",
        glibc_minor=39,
        sdists=("deepspeed",),
        # TRL's vLLM integration (server mode, weight sync) needs its `vllm` extra's helpers.
        extra_requirements=("trl[vllm]",),
    ),
}


def _name(req: str) -> str:
    """Canonical distribution name of a requirement string."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not m:
        raise ValueError(f"cannot parse requirement {req!r}")
    return re.sub(r"[-_.]+", "-", m.group(1)).lower()


def project_requirements(extras: tuple[str, ...], pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's base dependencies plus the named extras, self-references (`purpcode-k8s[x]`) expanded."""
    meta = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = meta.get("optional-dependencies", {})
    out: list[str] = list(meta.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra {extra!r} (known: {sorted(optional)})")
        seen.add(extra)
        for req in optional[extra]:
            if _name(req) == PROJECT:
                inner = re.search(r"\[(.*)\]", req)
                todo.extend(x.strip() for x in (inner.group(1).split(",") if inner else []))
            else:
                out.append(req)
    return out


def build_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What building the project itself needs (pinned too: the images build it without isolation)."""
    return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"])


def _sdist_deps(name: str) -> tuple[str, list[str]]:
    """Version installed here and its unconditional requirements (the image pins the same version)."""
    version = importlib.metadata.version(name)
    reqs = [r for r in importlib.metadata.requires(name) or [] if "extra ==" not in r]
    return version, reqs


def resolve(image: ImageLock, constraints: Path | None = None) -> dict[str, str]:
    """Ask pip which versions it would install for the image's interpreter and platform.

    With `constraints` (a lock written earlier) pip must honour its pins: that checks a lock still resolves.
    """
    reqs = project_requirements(image.extras) + list(image.extra_requirements) + build_requirements()
    pins: dict[str, str] = {}
    for sdist in image.sdists:
        version, deps = _sdist_deps(sdist)
        pins[sdist] = version
        reqs = [r for r in reqs if _name(r) != sdist] + deps
    platforms = [f"manylinux_2_{n}_x86_64" for n in range(17, image.glibc_minor + 1)]
    platforms += ["manylinux2014_x86_64", "linux_x86_64"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        cmd += ["--report", str(report), "--target", str(Path(tmp) / "t")]
        cmd += ["--python-version", image.python, "--implementation", "cp", "--only-binary=:all:"]
        for p in platforms:
            cmd += ["--platform", p]
        if constraints is not None:
            cmd += ["-c", str(constraints)]
        cmd += reqs
        # A machine-wide pip constraint (this dev box caps torch) must not leak into the images' locks.
        env = {**os.environ, "PIP_CONSTRAINT": ""}
        subprocess.run(cmd, check=True, env=env)
        data = json.loads(report.read_text(encoding="utf-8"))
    for item in data["install"]:
        pins[_name(item["metadata"]["name"])] = item["metadata"]["version"]
    return pins


def render(image_name: str, image: ImageLock, pins: dict[str, str]) -> str:
    head = [
        f"# Generated by tools/lock_images.py for the {image_name} image (cp{image.python}, manylinux_2_"
        f"{image.glibc_minor} x86_64).",
        f"# Extras: {', '.join(image.extras)}. Do not edit: change pyproject.toml and rerun the tool.",
    ]
    return "\n".join([*head, *(f"{n}=={v}" for n, v in sorted(pins.items())), ""])


def constraints_path(image_name: str) -> Path:
    return ROOT / "images" / image_name / "constraints.txt"


def read_constraints(path: Path) -> dict[str, str]:
    """name -> pinned version of a constraints file written by `render`."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"images to lock (default: all of {', '.join(IMAGES)})")
    args = parser.parse_args(argv)
    unknown = set(args.images) - set(IMAGES)
    if unknown:
        parser.error(f"unknown image(s) {sorted(unknown)}; known: {', '.join(IMAGES)}")
    for name in args.images or list(IMAGES):
        pins = resolve(IMAGES[name])
        path = constraints_path(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render(name, IMAGES[name], pins), encoding="utf-8")
        os.replace(tmp, path)
        print(f"{path.relative_to(ROOT)}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
