"""Runs one RunCodeRequest on a zygote: limits, payload, streamed and capped output, the response.

Why stream output through pipes the service reads itself: a program printing 100 MB must cost the service at
most `max_output_bytes` of memory; past the cap the whole execution is killed, never buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from purpcode.sandbox.jail import JailConfig, JailError, Zygote, ZygoteDied, default_python, interpreter_paths
from purpcode.sandbox.models import CommandRunStatus, RunCodeRequest, RunCodeResponse, RunResult, RunStatus
from purpcode.sandbox.restricted import (
    RestrictedUnavailable,
    default_work_root,
    python_path_dirs,
    ro_paths,
    seccomp_bpf,
)
from purpcode.sandbox.settings import SandboxSettings

LOG = logging.getLogger(__name__)
_F_SETPIPE_SZ = 1031
_COLD_FOOTPRINT = 96 << 20  # address space of a fresh interpreter before user code allocates
_CACHE_MAX_SOURCE = 512 << 10
_REPORT_GRACE_S = 30.0  # the zygote kills at the deadline; this only guards against a wedged zygote


class ClientError(ValueError):
    """What the request made impossible (invalid base64, files larger than the work dir): answered with a 200
    whose status is Failed, like SandboxFusion; counted as the client's error, not the sandbox's."""


class RequestRejected(ValueError):
    """A request the service will not run (limits above the maximum, oversize files): a 4xx for the caller."""


@dataclass
class Outcome:
    """What happened, for metrics: success, failed, timeout, output_limit, sandbox_error."""

    response: RunCodeResponse
    label: str


@dataclass
class _Stream:
    fd: int
    cap: int
    data: bytearray = field(default_factory=bytearray)
    exceeded: bool = False
    eof: bool = False

    def read_available(self) -> None:
        while not self.eof and not self.exceeded:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            room = self.cap - len(self.data)
            if len(chunk) > room:
                self.data += chunk[:room]
                self.exceeded = True
                return
            self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class Sandbox:
    """The zygote pool and the per-request execution logic."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        python = settings.python or default_python()
        self.jail_cfg = JailConfig(
            python=python,
            sandbox_uid=settings.sandbox_uid,
            host_uid=settings.host_uid,
            extra_ro_binds=settings.extra_ro_binds,
            netns_per_exec=settings.netns_per_exec,
            landlock=settings.landlock,
            seccomp=settings.seccomp,
            tiny_init=settings.tiny_init,
            cgroups=settings.cgroups,
            allow_weaker=settings.allow_weaker_isolation,
            tmpfs_mb=settings.tmpfs_mb,
        )
        self.zygotes: list[Zygote] = []
        self.mode = ""  # the isolation mode in use once started: namespaces | restricted
        self.mode_reason = ""
        self._restarting: set[int] = set()
        self._stopping = False
        self.restarts = 0

    async def start(self) -> None:
        """Start the zygotes in the mode asked for; `auto` tries the namespaces jail and falls back to the
        restricted mode when the pod does not allow it. The choice is logged once and kept in `self.mode`."""
        self.jail_cfg.interpreter_paths = await asyncio.to_thread(interpreter_paths, self.jail_cfg.python)
        wanted = self.settings.isolation
        if wanted in ("auto", "namespaces"):
            try:
                await self._start_zygotes("namespaces")
                self.mode, self.mode_reason = "namespaces", "the pod allows user namespaces"
            except JailError as err:
                if wanted == "namespaces":
                    raise
                self.mode_reason = "namespaces jail unavailable: " + str(err).splitlines()[0][:300]
        if not self.mode:
            await self._prepare_restricted()
            await self._start_zygotes("restricted")
            self.mode = "restricted"
            if wanted == "restricted":
                self.mode_reason = "asked for"
        LOG.info("sandbox isolation: %s (asked: %s; %s)", self.mode, wanted, self.mode_reason)
        features = self.zygotes[0].features
        LOG.info(
            "sandbox ready: %d zygote(s), python %s, seccomp=%s, cgroups=%s, preloaded %d modules",
            len(self.zygotes), features.get("python"), features.get("seccomp"),
            self.zygotes[0].cgroups.version or f"none ({self.zygotes[0].cgroups.reason})",
            len(features.get("preloaded", [])),
        )  # fmt: skip
        if self.mode == "restricted":
            abi = int(features.get("landlock_abi") or 0)
            if abi < 6:
                LOG.warning(
                    "restricted isolation without Landlock ABI 6 (this kernel: %d), accepted by "
                    "allow_weaker_isolation: see /healthz for what is not enforced",
                    abi,
                )
            return
        if not self.zygotes[0].cgroups.version:
            LOG.info("per-execution cgroups not available: %s", self.zygotes[0].cgroups.reason)
        if os.getuid() == 0 and self.settings.host_uid in (None, 0) and not self._pids_by_cgroup():
            LOG.warning("the jail runs as host root without a pids cgroup: RLIMIT_NPROC is not enforced")

    async def _start_zygotes(self, mode: str) -> None:
        s = self.settings
        self.jail_cfg.mode = mode
        pytest_preload = [*s.preload, *[m for m in s.preload_pytest if m not in s.preload]]
        zygotes = [Zygote(self.jail_cfg, i, "python", s.preload) for i in range(s.zygotes)] + [
            Zygote(self.jail_cfg, s.zygotes + i, "pytest", pytest_preload) for i in range(s.zygotes)
        ]
        for z in zygotes:
            z.on_death = self._schedule_restart
        results = await asyncio.gather(*(z.start() for z in zygotes), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(z.stop() for z in zygotes), return_exceptions=True)
            raise failed[0]
        self.zygotes = zygotes

    async def _prepare_restricted(self) -> None:
        s = self.settings
        if os.getuid() == 0:
            raise JailError(
                "the restricted isolation mode does not run as root: run the service as a non-root uid "
                "(the image and the operator's pods use 1000)"
            )
        cfg = self.jail_cfg
        cfg.work_root = s.work_root or default_work_root()
        extra = await asyncio.to_thread(python_path_dirs, cfg.python)
        cfg.ro_paths = ro_paths([*cfg.interpreter_paths, *extra], s.extra_ro_binds)
        try:
            cfg.seccomp_bpf = seccomp_bpf() if s.seccomp else b""
        except RestrictedUnavailable as err:
            raise JailError(str(err)) from err

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(z.stop() for z in self.zygotes), return_exceptions=True)
        if self.mode == "restricted" and self.jail_cfg.work_root:
            # Work dirs of executions cut short by the stop (the zygotes removed the others).
            await asyncio.to_thread(shutil.rmtree, self.jail_cfg.work_root, True)

    def _pids_by_cgroup(self) -> bool:
        return bool(self.zygotes) and "pids" in self.zygotes[0].cgroups.enforced

    def isolation_report(self) -> dict[str, Any]:
        """Which protections and limits are enforced here (served on /healthz)."""
        z = self.zygotes[0] if self.zygotes else None
        cg = z.cgroups if z else None
        host_root = os.getuid() == 0 and self.settings.host_uid in (None, 0)
        nproc_by = []
        if not host_root:
            nproc_by.append("rlimit")
        if cg is not None and "pids" in cg.enforced:
            nproc_by.append("cgroup")
        abstract_unix = z.features.get("abstract_unix_sockets") if z else None
        if self.mode == "restricted":
            return self._restricted_report(z)
        netns_per_exec = self.settings.netns_per_exec or abstract_unix == "netns per execution"
        return {
            "mode": self.mode,
            "requested": self.settings.isolation,
            "reason": self.mode_reason,
            "pod_needs": "privileged Pod Security level (user namespaces, unmasked /proc, Unconfined seccomp)",
            "max_tasks": self.settings.max_processes,
            "max_tasks_scope": "execution" if nproc_by else "not enforced",
            "warm": self.settings.warm,
            "namespaces": ["user", "pid", "mount", "ipc", "uts (jail-wide)", "cgroup (jail-wide)"]
            + (["net (per execution)"] if netns_per_exec else ["net (jail-wide, empty)"]),
            # How executions are kept from each other's abstract unix sockets (and signals): Landlock scopes, or
            # a network namespace per execution where the kernel has no Landlock ABI 6.
            "abstract_unix_sockets": abstract_unix,
            # pid 1 of each execution: "machine code" (zygote.clone_init) or "forked interpreter".
            "pid1": z.features.get("pid1") if z else None,
            "seccomp": bool(z and z.features.get("seccomp")),
            "cgroups": {
                "version": cg.version if cg else None,
                "enforced": cg.enforced if cg else [],
                "reason": cg.reason if cg else "not started",
            },
            "limits": {
                "wall_time": "zygote deadline kills the execution's pid namespace",
                "cpu_time": "rlimit",
                "address_space": "rlimit",
                "memory_total": "cgroup"
                if cg is not None and "memory_bytes" in cg.enforced
                else "not enforced",
                "processes": "+".join(nproc_by) or "not enforced",
                "file_size": "rlimit",
                "open_files": "rlimit",
                "disk": f"tmpfs {self.settings.tmpfs_mb} MiB (work dir and /tmp each)",
                "output": f"{self.settings.max_output_bytes} bytes per stream, then killed",
            },
            "python": z.features.get("python") if z else None,
            "warm_address_space_bytes": z.features.get("address_space_bytes") if z else None,
            "preloaded": {zz.flavour: zz.features.get("preloaded", []) for zz in self.zygotes},
        }

    def _restricted_report(self, z: Zygote | None) -> dict[str, Any]:
        features = z.features if z else {}
        abi = int(features.get("landlock_abi") or 0)
        s = self.settings
        return {
            "mode": "restricted",
            "requested": s.isolation,
            "reason": self.mode_reason,
            "pod_needs": "nothing beyond the restricted Pod Security Standard",
            "work_root": self.jail_cfg.work_root,
            "max_tasks": self._restricted_nproc(z),
            "max_tasks_scope": "uid (the service and all executions together)",
            "warm": s.warm,
            "namespaces": [],
            "seccomp": bool(features.get("seccomp")),
            "landlock": {
                "abi": abi,
                "filesystem": "read-only allow-list + the execution's own directory" if abi >= 1 else "none",
                "tcp": "denied" if abi >= 4 else "not handled (seccomp refuses non-unix sockets)",
                "scopes": ["abstract_unix_socket", "signal"] if abi >= 6 else [],
            },
            "abstract_unix_sockets": features.get("abstract_unix_sockets"),
            "signals": "landlock scope" if abi >= 6 else "NOT separated (same uid, no Landlock ABI 6)",
            "proc": "own /proc/<pid> only (Landlock); executions not dumpable"
            if abi >= 1
            else "other executions' /proc entries visible (not dumpable: no fd, mem or environ)",
            "network": "no sockets but AF_UNIX (seccomp); no pathname sockets (Landlock)",
            "cgroups": {"version": None, "enforced": [], "reason": "restricted mode"},
            "limits": {
                "wall_time": "zygote deadline kills the execution's process group (setsid/setpgid refused)",
                "cpu_time": "rlimit",
                "address_space": "rlimit",
                "memory_total": "not enforced per execution (the pod's memory limit; executions are OOM-killed "
                "first)",
                "processes": f"rlimit per uid: {self._restricted_nproc(z)} for the service and all executions "
                "together (the pod's pids limit bounds it too)",
                "file_size": "rlimit",
                "open_files": "rlimit",
                "disk": "rlimit per file; the pod's /tmp emptyDir bounds the total (shared by executions)",
                "output": f"{s.max_output_bytes} bytes per stream, then killed",
            },
            "python": features.get("python"),
            "warm_address_space_bytes": features.get("address_space_bytes"),
            "preloaded": {zz.flavour: zz.features.get("preloaded", []) for zz in self.zygotes},
        }

    def _restricted_nproc(self, z: Zygote | None) -> int:
        """RLIMIT_NPROC counts every task of the uid: the service's own, plus max_processes per CPU slot."""
        base = int((z.features.get("uid_tasks") if z else 0) or 0)
        return base + 64 + self.settings.max_processes * self.settings.concurrency

    @property
    def alive(self) -> int:
        return sum(1 for z in self.zygotes if z.alive)

    def _pick(self, flavour: str) -> Zygote:
        alive = [z for z in self.zygotes if z.alive and z.flavour == flavour]
        for z in self.zygotes:
            if not z.alive:
                self._schedule_restart(z)
        if not alive:
            raise ZygoteDied(f"no {flavour} sandbox zygote is running (restarting)")
        return min(alive, key=lambda z: z.load)

    def _schedule_restart(self, z: Zygote) -> None:
        if self._stopping or z.index in self._restarting:
            return
        self._restarting.add(z.index)

        async def restart() -> None:
            delay = 0.5
            try:
                while not self._stopping:
                    await z.stop()
                    fresh = Zygote(self.jail_cfg, z.index, z.flavour, z.preload)
                    fresh.on_death = self._schedule_restart
                    try:
                        await fresh.start()
                    except JailError as err:
                        LOG.error("zygote %d restart failed: %s", z.index, err)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 30.0)
                        continue
                    self.zygotes[z.index] = fresh
                    self.restarts += 1
                    LOG.warning("zygote %d restarted", z.index)
                    return
            finally:
                self._restarting.discard(z.index)

        asyncio.get_running_loop().create_task(restart())

    # ------------------------------------------------------------------------------------------- limits

    def _limits(
        self, req: RunCodeRequest, z: Zygote
    ) -> tuple[float, dict[str, Any], dict[str, Any], bool, list[str]]:
        """Per-run limits from the request, clamped into the service's range (SandboxFusion clients send values
        it accepts, e.g. run_timeout 0): each clamp is a note in the response's message."""
        s = self.settings
        notes = []
        timeout = float(req.run_timeout)
        if timeout <= 0:
            notes.append(
                f"run_timeout {req.run_timeout} is not positive: ran with {s.default_run_timeout_s} s"
            )
            timeout = s.default_run_timeout_s
        elif timeout > s.max_run_timeout_s:
            notes.append(
                f"run_timeout {req.run_timeout} above this service's maximum: ran with {s.max_run_timeout_s} s"
            )
            timeout = s.max_run_timeout_s
        memory_mb = s.default_memory_mb if req.memory_limit_MB <= 0 else req.memory_limit_MB
        if req.memory_limit_MB < -1 or req.memory_limit_MB == 0:
            notes.append(f"memory_limit_MB {req.memory_limit_MB}: ran with the default {memory_mb} MiB")
        if memory_mb < 16:
            notes.append(f"memory_limit_MB {memory_mb} below 16: ran with 16 MiB")
            memory_mb = 16
        elif memory_mb > s.max_memory_mb:
            notes.append(
                f"memory_limit_MB {memory_mb} above this service's maximum: ran with {s.max_memory_mb} MiB"
            )
            memory_mb = s.max_memory_mb
        warm = s.warm
        footprint = int(z.features.get("address_space_bytes") or 0) if warm else _COLD_FOOTPRINT
        cpu = math.ceil(timeout) + 1
        rlimits = {
            "as": (memory_mb << 20) + footprint,
            "cpu": cpu,
            "fsize": s.max_file_size_mb << 20,
            "nofile": s.max_open_files,
            "nproc": s.max_processes if self.mode != "restricted" else self._restricted_nproc(z),
            "core": 0,
        }
        cgroup = {"memory_bytes": (memory_mb + 2 * s.tmpfs_mb + 64) << 20, "pids": s.max_processes, "zero": 0}
        return timeout, rlimits, cgroup, warm, notes

    def _payload(self, req: RunCodeRequest) -> tuple[bytes, bytes, str]:
        files = {path: content for path, content in req.files.items()}
        total = 0
        for path, content in files.items():
            size = (len(content) * 3) // 4 if content else 0
            total += size
            if total > self.settings.tmpfs_mb << 20:
                raise ClientError(
                    f"files exceed the work dir size ({self.settings.tmpfs_mb} MiB) at {path!r}"
                )
        base = "main" if req.language == "python" else "test_main"
        code_name = f"{base}.py"
        n = 0
        while code_name in files:
            n += 1
            code_name = f"{base}_{n}.py"
        payload = {
            "code_name": code_name,
            "files": files,
            "stdin": req.stdin,
            "language": req.language,
            "args": list(req.args),
            "fetch_files": list(req.fetch_files),
            "max_fetch_bytes": self.settings.max_fetch_bytes,
        }
        return json.dumps(payload).encode(), req.code.encode("utf-8", "surrogatepass"), code_name

    # ------------------------------------------------------------------------------------------- run

    async def execute(self, req: RunCodeRequest) -> Outcome:
        # Code that uses pytest goes to the zygote that has it loaded; everything else forks the lighter one.
        z = self._pick("pytest" if req.language == "pytest" or "pytest" in req.code else "python")
        timeout, rlimits, cgroup, warm, notes = self._limits(req, z)
        invalid = req.invalid_files()
        try:
            if invalid:
                raise ClientError(invalid)
            payload, code, code_name = self._payload(req)
        except ClientError as err:
            return client_error(str(err))
        outcome = await self._execute(req, z, timeout, rlimits, cgroup, warm, payload, code, code_name)
        if notes:
            resp = outcome.response
            resp.message = "; ".join([*notes, *([resp.message] if resp.message else [])])
        return outcome

    async def _execute(
        self,
        req: RunCodeRequest,
        z: Zygote,
        timeout: float,
        rlimits: dict[str, Any],
        cgroup: dict[str, Any],
        warm: bool,
        payload: bytes,
        code: bytes,
        code_name: str,
    ) -> Outcome:
        code_hash = hashlib.sha256(code_name.encode() + b"\0" + code).hexdigest()
        compile_hint = False
        if warm and len(code) <= _CACHE_MAX_SOURCE and code_hash not in z.code_cached:
            seen = z.code_seen.get(code_hash, 0) + 1
            if len(z.code_seen) > 4096:
                z.code_seen.clear()
            z.code_seen[code_hash] = seen
            if seen >= 2:
                compile_hint = True
                z.code_cached.add(code_hash)
        msg = {
            "timeout": timeout,
            "limits": rlimits,
            "cgroup": cgroup,
            "warm": warm,
            "tmpfs_mb": self.settings.tmpfs_mb,
            "code_hash": code_hash,
            "code_name": code_name,
            "compile": compile_hint,
            "fetch": bool(req.fetch_files),  # needs a trusted parent of the program (the zygote's pid 1 path)
        }
        loop = asyncio.get_running_loop()
        cap = self.settings.max_output_bytes
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        payload_fd = _memfd("payload", payload)
        code_fd = _memfd("code", code)
        # pid 1 of the execution writes fetch_files here (any size up to max_fetch_bytes; never through the
        # zygote's control socket, whose messages are small).
        files_fd = os.memfd_create("files", os.MFD_CLOEXEC)
        send_fds = [payload_fd, code_fd, out_w, err_w, files_fd]
        streams = [_Stream(out_r, cap), _Stream(err_r, cap)]
        job_id: int | None = None
        try:
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            killed_for_output = asyncio.Event()

            def on_readable(stream: _Stream) -> None:
                stream.read_available()
                if stream.eof or stream.exceeded:
                    loop.remove_reader(stream.fd)
                if stream.exceeded and not killed_for_output.is_set():
                    killed_for_output.set()
                    if job_id is not None:
                        loop.create_task(z.kill(job_id))

            started = time.monotonic()
            job_id, fut = await z.submit(msg, send_fds)
            for fd in send_fds:
                if fd != files_fd:
                    os.close(fd)
            send_fds = []
            for stream in streams:
                loop.add_reader(stream.fd, on_readable, stream)
            try:
                report = await asyncio.wait_for(asyncio.shield(fut), timeout + _REPORT_GRACE_S)
            except TimeoutError:
                await z.kill(job_id)
                z.forget(job_id)
                return _sandbox_error("the sandbox did not report the execution in time", streams)
            except ZygoteDied as err:
                return _sandbox_error(str(err), streams)
            for stream in streams:
                loop.remove_reader(stream.fd)
                stream.read_available()
            LOG.debug("execution %s done in %.3fs: %s", job_id, time.monotonic() - started, report)
            files = _read_files(files_fd, self.settings.max_fetch_bytes) if req.fetch_files else {}
            return self._response(report, streams, killed_for_output.is_set(), files)
        except asyncio.CancelledError:
            if job_id is not None:
                z.forget(job_id)
                await asyncio.shield(z.kill(job_id))
            raise
        finally:
            for stream in streams:
                loop.remove_reader(stream.fd)
                os.close(stream.fd)
            for fd in send_fds:
                if fd != files_fd:
                    os.close(fd)
            os.close(files_fd)

    def _response(
        self, report: dict[str, Any], streams: list[_Stream], output_killed: bool, files: dict[str, str]
    ) -> Outcome:
        out, err = streams
        stdout, stderr = out.text(), err.text()
        if report.get("error") and not report.get("killed"):
            if report.get("client_error"):
                return client_error(str(report["error"]))
            return _sandbox_error(str(report["error"]), streams)
        exec_time = report.get("time")
        if report.get("timed_out"):
            run = RunResult(
                status=CommandRunStatus.TimeLimitExceeded,
                execution_time=exec_time,
                stdout=stdout,
                stderr=stderr,
            )
            return Outcome(RunCodeResponse(status=RunStatus.Failed, message="", run_result=run), "timeout")
        if report.get("signal") is not None:
            code = -int(report["signal"])
        elif report.get("exit") is not None:
            code = int(report["exit"])
        else:
            code = -9
        if output_killed or out.exceeded or err.exceeded:
            which = "stdout" if out.exceeded else "stderr"
            message = (
                f"{which} exceeded the {self.settings.max_output_bytes}-byte output limit; "
                "the execution was killed and its output truncated"
            )
            run = RunResult(
                status=CommandRunStatus.Finished,
                execution_time=exec_time,
                return_code=code if code != 0 else -9,
                stdout=stdout,
                stderr=stderr,
            )
            return Outcome(
                RunCodeResponse(status=RunStatus.Failed, message=message, run_result=run, files=files),
                "output_limit",
            )
        run = RunResult(
            status=CommandRunStatus.Finished,
            execution_time=exec_time,
            return_code=code,
            stdout=stdout,
            stderr=stderr,
        )
        status = RunStatus.Success if code == 0 else RunStatus.Failed
        label = "success" if code == 0 else "failed"
        return Outcome(RunCodeResponse(status=status, message="", run_result=run, files=files), label)


def client_error(message: str) -> Outcome:
    """What the request itself made impossible (files that do not fit, invalid base64): a 200 whose status says
    so, as SandboxFusion clients expect, counted as the client's error (`outcome="client_error"`), not the
    sandbox's."""
    run = RunResult(status=CommandRunStatus.Error, stdout="", stderr=message)
    return Outcome(RunCodeResponse(status=RunStatus.Failed, message=message, run_result=run), "client_error")


def _sandbox_error(message: str, streams: list[_Stream]) -> Outcome:
    run = RunResult(status=CommandRunStatus.Error, stdout=streams[0].text(), stderr=streams[1].text())
    return Outcome(
        RunCodeResponse(status=RunStatus.SandboxError, message=message, run_result=run), "sandbox_error"
    )


def _read_files(fd: int, max_fetch_bytes: int) -> dict[str, str]:
    """The fetched files pid 1 wrote (JSON: path -> base64); {} when it was killed before it finished."""
    limit = (max_fetch_bytes * 4) // 3 + (1 << 20)  # base64 of the budget + the names and JSON syntax
    size = os.fstat(fd).st_size
    if size == 0 or size > limit:
        return {}
    data = os.pread(fd, size, 0)
    try:
        files = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return fd
