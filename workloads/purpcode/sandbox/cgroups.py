"""Per-execution cgroups where the host delegates them (v1 or v2), and a clear 'not enforced' where it does not.

Why: rlimits are per process; a fork bomb of memory hogs multiplies them. A cgroup bounds the whole execution
(every process, its tmpfs pages) with one number. Kubernetes nodes run cgroup v2 and usually mount it read-only
in pods; this development machine has v1 controllers. The service creates one parent cgroup per zygote,
binds it into the jail, and the zygote creates and removes one child per execution.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Controller:
    """One delegated cgroup directory: where it is on the host, where the jail sees it, what it limits."""

    name: str
    host_path: Path
    jail_path: str
    files: dict[str, str]  # cgroup file -> key in the per-execution limits ('memory_bytes', 'pids')


@dataclass
class CgroupPlan:
    version: int | None
    controllers: list[Controller] = field(default_factory=list)
    procs_file: str = "cgroup.procs"
    reason: str = ""

    @property
    def enforced(self) -> list[str]:
        return sorted({key for c in self.controllers for key in c.files.values()})

    def zygote_config(self) -> list[dict[str, object]]:
        return [{"path": c.jail_path, "files": c.files} for c in self.controllers]

    def cleanup(self, *, warn: bool = True) -> bool:
        """Remove the per-zygote parents and the (reused) per-execution children; False while some are busy
        (processes of a just-killed zygote still exiting)."""
        return all([_rmtree_cgroup(ctrl.host_path, warn=warn) for ctrl in self.controllers])


def _rmtree_cgroup(path: Path, *, warn: bool = True) -> bool:
    if not path.is_dir():
        return True
    done = all([_rmtree_cgroup(child, warn=warn) for child in path.iterdir() if child.is_dir()])
    try:
        path.rmdir()
    except OSError as err:
        if warn:
            LOG.warning("could not remove cgroup %s: %s", path, err)
        return False
    return done


def remove_stale(prefix: str) -> None:
    """Parents left by services that died without cleaning up (named `<prefix><pid>-...`, pid not running)."""
    try:
        own = _own_cgroups()
    except OSError:
        return
    roots = [CGROUP_ROOT / ctrl / own.get(ctrl, "/").lstrip("/") for ctrl in ("memory", "pids")]
    roots.append(CGROUP_ROOT / own.get("", "/").lstrip("/"))
    for root in roots:
        try:
            entries = list(root.glob(prefix + "*"))
        except OSError:
            continue
        for entry in entries:
            pid = entry.name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _rmtree_cgroup(entry, warn=False)


def _own_cgroups() -> dict[str, str]:
    """controller (or '' for the v2 unified tree) -> this process's cgroup path."""
    result: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ctrls.split(",") if ctrls else [""]:
            result[ctrl] = path
    return result


def _prepare(path: Path, owner_uid: int | None) -> None:
    path.mkdir(exist_ok=True)
    if owner_uid is not None and owner_uid != os.getuid():
        for entry in [path, *path.iterdir()]:
            os.chown(entry, owner_uid, -1)


def plan_cgroups(name: str, *, mode: str = "auto", owner_uid: int | None = None) -> CgroupPlan:
    """Delegate a parent cgroup named `name` for one zygote, or say why none can be used."""
    if mode == "off":
        return CgroupPlan(version=None, reason="disabled by settings (cgroups='off')")
    try:
        own = _own_cgroups()
    except OSError as err:
        return CgroupPlan(version=None, reason=f"cannot read /proc/self/cgroup: {err}")
    unified_only = (CGROUP_ROOT / "cgroup.controllers").exists()
    try:
        if unified_only:
            return _plan_v2(name, own.get("", "/"), owner_uid)
        return _plan_v1(name, own, owner_uid)
    except OSError as err:
        return CgroupPlan(version=None, reason=f"cgroups not delegated to this container ({err.strerror})")


def _plan_v1(name: str, own: dict[str, str], owner_uid: int | None) -> CgroupPlan:
    controllers: list[Controller] = []
    for ctrl, files in (
        ("memory", {"memory.limit_in_bytes": "memory_bytes"}),
        ("pids", {"pids.max": "pids"}),
    ):
        mount = CGROUP_ROOT / ctrl
        if not (mount / "cgroup.procs").exists():
            continue
        parent = mount / own.get(ctrl, "/").lstrip("/") / name
        _prepare(parent, owner_uid)
        controllers.append(Controller(ctrl, parent, f"/cgroup/{ctrl}", files))
    if not controllers:
        return CgroupPlan(version=None, reason="no memory or pids cgroup v1 controller mounted")
    return CgroupPlan(version=1, controllers=controllers)


def _plan_v2(name: str, own_path: str, owner_uid: int | None) -> CgroupPlan:
    base = CGROUP_ROOT / own_path.lstrip("/")
    available = (base / "cgroup.controllers").read_text().split()
    wanted = [c for c in ("memory", "pids") if c in available]
    if not wanted:
        return CgroupPlan(version=None, reason=f"cgroup v2 at {base} offers no memory/pids controller")
    # No internal processes in v2: move ourselves into a leaf before enabling controllers for children.
    leaf = base / "service"
    leaf.mkdir(exist_ok=True)
    if str(os.getpid()) not in (leaf / "cgroup.procs").read_text().split():
        for pid in (base / "cgroup.procs").read_text().split():
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # a process that exited meanwhile
    (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    parent = base / name
    _prepare(parent, owner_uid)
    (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    files: dict[str, str] = {}
    if "memory" in wanted:
        files["memory.max"] = "memory_bytes"
        files["memory.swap.max"] = "zero"
    if "pids" in wanted:
        files["pids.max"] = "pids"
    return CgroupPlan(version=2, controllers=[Controller("unified", parent, "/cgroup/unified", files)])


def zygote_leaf(plan: CgroupPlan) -> Path | None:
    """v2 only: the zygote must start inside the delegated subtree (moves need a common delegated ancestor)."""
    if plan.version != 2:
        return None
    leaf = plan.controllers[0].host_path / "zygote"
    leaf.mkdir(exist_ok=True)
    return leaf / "cgroup.procs"
