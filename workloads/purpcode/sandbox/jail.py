"""Starts the zygote inside bubblewrap and talks to it from the service's event loop.

The jail (one per zygote): own user, pid, network, ipc, uts and cgroup namespaces; a tmpfs root made read-only
holding only read-only binds of /usr (+ the /bin, /lib symlinks), the interpreter's prefix, a generated
/etc/passwd and /etc/group; fresh /proc, minimal /dev; no environment. Nothing of the service (its source, its
config, its service-account token, its environment) is inside. Per-execution isolation is added by the zygote.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from purpcode.sandbox.cgroups import CgroupPlan, plan_cgroups, remove_stale, zygote_leaf

LOG = logging.getLogger(__name__)
WORK_DIR = "/sandbox"
CGROUP_PREFIX = "purpcode-sandbox-"
MAX_MSG = 1 << 16
_ETC_PASSWD = (
    "root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{uid}:{uid}:sandbox:/sandbox:/usr/sbin/nologin\n"
)
_ETC_GROUP = "root:x:0:\nsandbox:x:{uid}:\n"
# Only what programs without a network need (each bind is one more mount copied per execution).
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives")


class JailError(RuntimeError):
    """The jail could not be started (missing bubblewrap, no user namespaces, bad interpreter)."""


class ZygoteDied(RuntimeError):
    """The zygote exited; its in-flight executions are lost (they are reported as sandbox errors)."""


@dataclass
class JailConfig:
    """Everything needed to start one jailed zygote (built from SandboxSettings)."""

    python: str
    sandbox_uid: int = 65534
    host_uid: int | None = None
    extra_ro_binds: Sequence[str] = ()
    tmpfs_inodes: int = 8192
    netns_per_exec: bool = False
    landlock: str = "auto"
    seccomp: bool = True
    tiny_init: bool = True
    cgroups: str = "auto"
    bwrap: str = "bwrap"
    start_timeout_s: float = 60.0
    interpreter_paths: list[str] = field(default_factory=list)
    # "namespaces" (bubblewrap jail) or "restricted" (no jail: seccomp + Landlock per execution).
    mode: str = "namespaces"
    tmpfs_mb: int = 64
    work_root: str = ""
    allow_weaker: bool = False
    ro_paths: list[str] = field(default_factory=list)
    seccomp_bpf: bytes = b""


def zygote_source() -> str:
    return resources.files("purpcode.sandbox").joinpath("zygote.py").read_text(encoding="utf-8")


def interpreter_paths(python: str) -> list[str]:
    """The directories the interpreter needs (prefix, base prefix, its real location), outside /usr."""
    probe = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix]))"
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise JailError(f"sandbox interpreter {python!r} does not run: {err}") from err
    paths = set(json.loads(out))
    paths.add(str(Path(python).parent.parent))
    paths.add(str(Path(os.path.realpath(python)).parent.parent))
    result: list[str] = []
    for path in sorted(paths):
        if path in ("/", "/usr") or path.startswith("/usr/"):
            continue
        result.append(path)
    # Keep only the outermost of nested paths.
    return [p for p in result if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in result)]


# Read-only binds under /tmp (an interpreter or virtualenv there, e.g. a CI checkout in /tmp) would be hidden by the
# jail's own /tmp and by each execution's fresh /tmp tmpfs: they are also bound here, outside /tmp, and each
# execution binds them back over its new /tmp (see zygote `_setup_mounts`).
KEEP_DIR = "/.purpcode-keep"


def kept_binds(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(stash, path) for each read-only bind that a /tmp tmpfs would hide."""
    return [(f"{KEEP_DIR}/{i}", p) for i, p in enumerate(paths) if p == "/tmp" or p.startswith("/tmp/")]


def _data_fd(text: str) -> int:
    r, w = os.pipe()
    os.write(w, text.encode())
    os.close(w)
    return r


def bwrap_argv(cfg: JailConfig, cgroups: CgroupPlan, data_fds: tuple[int, int]) -> list[str]:
    passwd_fd, group_fd = data_fds
    argv = [
        cfg.bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try",
        "--uid", "0", "--gid", "0", "--cap-add", "ALL",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for path in _ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    argv += ["--ro-bind-data", str(passwd_fd), "/etc/passwd", "--ro-bind-data", str(group_fd), "/etc/group"]
    binds = [*cfg.interpreter_paths, *cfg.extra_ro_binds]
    argv += ["--tmpfs", "/tmp"]  # before the binds, so a bind under /tmp lands on top of it
    for path in binds:
        argv += ["--ro-bind", path, path]
    for stash, path in kept_binds(binds):
        argv += ["--ro-bind", path, stash]
    argv += ["--proc", "/proc", "--dev", "/dev", "--dir", WORK_DIR]
    for ctrl in cgroups.controllers:
        argv += ["--bind", str(ctrl.host_path), ctrl.jail_path]
    argv += ["--remount-ro", "/", "--chdir", "/"]
    return argv


class Zygote:
    """One jailed zygote and its control socket; `run` submits an execution and awaits its report."""

    def __init__(
        self, cfg: JailConfig, index: int, flavour: str = "python", preload: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg
        self.index = index
        self.flavour = flavour
        self.preload = list(preload)
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.features: dict[str, Any] = {}
        self.cgroups = CgroupPlan(version=None, reason="not started")
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self.alive = False
        self.stopping = False
        self.code_seen: dict[str, int] = {}
        self.on_death: Callable[[Zygote], None] | None = None
        self.code_cached: set[str] = set()

    @property
    def load(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        if self.cfg.mode == "restricted":
            await self._start_restricted()
            return
        cfg = self.cfg
        if shutil.which(cfg.bwrap) is None:
            raise JailError(f"bubblewrap ({cfg.bwrap!r}) is not installed: apt-get install bubblewrap")
        loop = asyncio.get_running_loop()
        if cfg.cgroups != "off":
            remove_stale(CGROUP_PREFIX)
        self.cgroups = plan_cgroups(
            f"{CGROUP_PREFIX}{os.getpid()}-{self.flavour}-{self.index}",
            mode=cfg.cgroups,
            owner_uid=cfg.host_uid,
        )
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        passwd_fd = _data_fd(_ETC_PASSWD.format(uid=cfg.sandbox_uid))
        group_fd = _data_fd(_ETC_GROUP.format(uid=cfg.sandbox_uid))
        zcfg = {
            "ctrl_fd": child.fileno(),
            "sandbox_uid": cfg.sandbox_uid,
            "work_dir": WORK_DIR,
            "tmpfs_inodes": cfg.tmpfs_inodes,
            "tmpfs_mb": cfg.tmpfs_mb,
            "preload": self.preload,
            "netns_per_exec": cfg.netns_per_exec,
            "landlock": cfg.landlock,
            "seccomp": cfg.seccomp,
            "tiny_init": cfg.tiny_init,
            "python": cfg.python,
            "cgroups": self.cgroups.zygote_config(),
            "cgroup_procs_file": self.cgroups.procs_file,
            "keep_binds": kept_binds([*cfg.interpreter_paths, *cfg.extra_ro_binds]),
        }
        argv = bwrap_argv(cfg, self.cgroups, (passwd_fd, group_fd))
        argv += [cfg.python, "-I", "-c", zygote_source(), json.dumps(zcfg)]
        kwargs: dict[str, Any] = {}
        if cfg.host_uid is not None and os.getuid() == 0 and cfg.host_uid != 0:
            kwargs = {"user": cfg.host_uid, "group": cfg.host_uid, "extra_groups": []}
        leaf = zygote_leaf(self.cgroups)
        if leaf is not None:
            kwargs["preexec_fn"] = lambda: leaf.write_text("0")
        self._ready = loop.create_future()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(child.fileno(), passwd_fd, group_fd),
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                # Its own session: a terminal's Ctrl-C reaches the service, which stops the zygotes itself.
                start_new_session=True,
                **kwargs,
            )
        finally:
            child.close()
            os.close(passwd_fd)
            os.close(group_fd)
        await self._connect(parent, "")

    async def _start_restricted(self) -> None:
        """Restricted mode: the zygote runs as the service's own uid, without a jail; every execution confines
        itself (seccomp filter from `seccomp_bpf`, Landlock allow-list `ro_paths`, its own dir under `work_root`)."""
        import base64

        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.cgroups = CgroupPlan(version=None, reason="restricted mode: no cgroups")
        os.makedirs(cfg.work_root, mode=0o700, exist_ok=True)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        zcfg = {
            "mode": "restricted",
            "ctrl_fd": child.fileno(),
            "work_dir": cfg.work_root,
            "work_root": cfg.work_root,
            "preload": self.preload,
            "python": cfg.python,
            "cgroups": [],
            "ro_paths": cfg.ro_paths,
            "rw_files": ["/dev/null", "/dev/full"],
            "seccomp_bpf": base64.b64encode(cfg.seccomp_bpf).decode() if cfg.seccomp else "",
            "allow_weaker": cfg.allow_weaker,
            "landlock": cfg.landlock,
            "landlock_min_abi": 6,
        }
        self._ready = loop.create_future()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                cfg.python, "-I", "-c", zygote_source(), json.dumps(zcfg),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(child.fileno(),), env={"PATH": "/usr/local/bin:/usr/bin:/bin"}, cwd="/",
                start_new_session=True,
            )  # fmt: skip
        finally:
            child.close()
        await self._connect(parent, "restricted")

    async def _connect(self, parent: socket.socket, mode: str) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        assert self._ready is not None
        self.sock = parent
        parent.setblocking(False)
        loop.add_reader(parent.fileno(), self._on_readable)
        self._stderr_task = asyncio.create_task(self._pump_stderr())
        try:
            self.features = await asyncio.wait_for(self._ready, cfg.start_timeout_s)
        except (TimeoutError, ZygoteDied) as err:
            await self.stop()
            tail = getattr(self, "_stderr_tail", "")
            hint = ""
            if mode == "restricted":
                raise JailError(
                    f"the restricted sandbox zygote did not start: {err or 'timeout'}; stderr: {tail[-2000:]}"
                ) from err
            if "mount proc" in tail or "uid map" in tail or "No permissions to create" in tail:
                hint = (
                    " -- the pod must allow unprivileged user namespaces and an unmasked /proc "
                    "(seccompProfile Unconfined or a profile allowing unshare/mount/pivot_root, appArmorProfile "
                    "Unconfined, procMount: Unmasked with hostUsers: false; see docs/sandbox.md)"
                )
            raise JailError(
                f"the sandbox zygote did not start: {err or 'timeout'}; stderr: {tail[-2000:]}{hint}"
            ) from err
        self.alive = True

    async def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self._stderr_tail = ""
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr_tail = (self._stderr_tail + text + "\n")[-8000:]
            # A zygote that did not start is reported once, with this tail, by `start`.
            LOG.log(logging.WARNING if self.alive else logging.DEBUG, "zygote %d: %s", self.index, text)

    def _on_readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(MAX_MSG)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._died()
                return
            msg = json.loads(data)
            if msg.get("op") == "ready":
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(msg)
            elif msg.get("op") == "done":
                fut = self._pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)

    def _died(self) -> None:
        self.alive = False
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        err = ZygoteDied(f"sandbox zygote {self.index} exited")
        was_ready = self._ready is not None and self._ready.done()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        if was_ready and self.on_death is not None and not self.stopping:
            LOG.error("sandbox zygote %d (%s) exited; restarting it", self.index, self.flavour)
            self.on_death(self)
        elif was_ready:
            LOG.debug("sandbox zygote %d (%s) exited during shutdown", self.index, self.flavour)

    async def _send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        if self.sock is None:
            raise ZygoteDied(f"sandbox zygote {self.index} is not running")
        data = json.dumps(msg).encode()
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.sock.sendmsg([data], anc)
                return
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(self.sock.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    if self.sock is not None:
                        loop.remove_writer(self.sock.fileno())

    async def submit(
        self, msg: dict[str, Any], fds: Sequence[int]
    ) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Send one execution; returns its id and the future of its report. The fds are sent, not closed."""
        self._next_id += 1
        job_id = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = fut
        try:
            await self._send({**msg, "op": "run", "id": job_id}, fds)
        except BaseException:
            self._pending.pop(job_id, None)
            raise
        return job_id, fut

    async def kill(self, job_id: int) -> None:
        """Kill an execution's whole process tree (its pid namespace); the report still arrives."""
        with contextlib.suppress(ZygoteDied, OSError):
            await self._send({"op": "kill", "id": job_id})

    def forget(self, job_id: int) -> None:
        self._pending.pop(job_id, None)

    async def stop(self) -> None:
        self.stopping = True
        self.alive = False
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.returncode is None:
            if self.cfg.mode == "restricted":
                # The closed socket tells the zygote to kill its executions' process groups, then it exits.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.proc.wait()), 2.0)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 5)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ZygoteDied("sandbox stopped"))
        self._pending.clear()
        # The jail's processes are gone or going (SIGKILL, PDEATHSIG): retry briefly while they finish exiting.
        for _ in range(60):
            if self.cgroups.cleanup(warn=False):
                break
            await asyncio.sleep(0.05)
        else:
            self.cgroups.cleanup(warn=True)


def default_python() -> str:
    """The interpreter user code runs with: this one (same version, same installed packages)."""
    return sys.executable
