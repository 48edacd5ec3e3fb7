"""The warm fork-server that runs inside the bubblewrap jail (stdlib only, Linux only).

It is *not* imported by the service: `jail.py` reads this file and runs it with the jail's interpreter as
`python -I -c <source> <config json>`, because the project's own files are not visible inside the jail.

Why a fork-server: a fresh interpreter costs ~10-40 ms to start; forking an initialised one costs ~1 ms. Each
execution gets, per run:

    zygote (jail: user ns A where it is uid 0 with capabilities in A only; no network; read-only root)
      └─ init  (fork after unshare(CLONE_NEWPID): pid 1 of a fresh pid namespace)
           unshare(mount, ipc[, net]); fresh /proc; private tmpfs work dir, /tmp, /dev/shm; cgroup if delegated
           └─ runner (unshare(user): uid 65534 in a fresh user ns B; no capabilities; seccomp; rlimits;
                      new session; scrubbed env; cwd = the work dir) -> runs the code

When the init process exits the kernel kills every process left in its pid namespace and the mount namespace
(with its tmpfs work dir) disappears: nothing outlives an execution. Executions cannot see each other's files
(private mounts) or processes (own pid namespace and /proc).

Protocol (SOCK_SEQPACKET with the service, JSON messages, fds by SCM_RIGHTS):
    zygote -> service  {"op": "ready", ...features}
    service -> zygote  {"op": "run", "id", "timeout", "limits", "code_hash", "compile": bool}
                       + fds [payload memfd (JSON), code memfd, stdout pipe, stderr pipe]
    service -> zygote  {"op": "kill", "id"}
    zygote -> service  {"op": "done", "id", "exit", "signal", "time", "cpu", "maxrss_kb", "timed_out", "error"}
"""

import array
import ctypes
import ctypes.util
import errno
import gc
import json
import os
import platform
import resource
import selectors
import signal
import socket
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NS_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

MAX_MSG = 1 << 16

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags):
    _check(libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd, nstype):
    _check(libc.setns(fd, nstype), "setns")


def mount(source, target, fstype, flags, data=None):
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return libc.prctl(option, arg2, arg3, arg4, arg5)


# ------------------------------------------------------------------------------------------------ seccomp

# Syscalls user code never needs and that widen the kernel surface or escape the jail's model.
_DENY_X86_64 = {
    101: "ptrace",
    103: "syslog",
    134: "uselib",
    153: "vhangup",
    155: "pivot_root",
    161: "chroot",
    163: "acct",
    165: "mount",
    166: "umount2",
    167: "swapon",
    168: "swapoff",
    169: "reboot",
    170: "sethostname",
    171: "setdomainname",
    172: "iopl",
    173: "ioperm",
    175: "init_module",
    176: "delete_module",
    179: "quotactl",
    212: "lookup_dcookie",
    246: "kexec_load",
    248: "add_key",
    249: "request_key",
    250: "keyctl",
    272: "unshare",
    298: "perf_event_open",
    303: "name_to_handle_at",
    304: "open_by_handle_at",
    308: "setns",
    310: "process_vm_readv",
    311: "process_vm_writev",
    312: "kcmp",
    313: "finit_module",
    320: "kexec_file_load",
    321: "bpf",
    323: "userfaultfd",
    425: "io_uring_setup",
    426: "io_uring_enter",
    427: "io_uring_register",
    428: "open_tree",
    429: "move_mount",
    430: "fsopen",
    431: "fsconfig",
    432: "fsmount",
    433: "fspick",
    438: "pidfd_getfd",
    442: "mount_setattr",
    443: "quotactl_fd",
}
_DENY_AARCH64 = {
    18: "lookup_dcookie",
    39: "umount2",
    40: "mount",
    41: "pivot_root",
    51: "chroot",
    58: "vhangup",
    60: "quotactl",
    89: "acct",
    97: "unshare",
    104: "kexec_load",
    105: "init_module",
    106: "delete_module",
    116: "syslog",
    117: "ptrace",
    142: "reboot",
    161: "sethostname",
    162: "setdomainname",
    217: "add_key",
    218: "request_key",
    219: "keyctl",
    224: "swapon",
    225: "swapoff",
    241: "perf_event_open",
    264: "name_to_handle_at",
    265: "open_by_handle_at",
    268: "setns",
    270: "process_vm_readv",
    271: "process_vm_writev",
    272: "kcmp",
    273: "finit_module",
    280: "bpf",
    282: "userfaultfd",
    294: "kexec_file_load",
    425: "io_uring_setup",
    426: "io_uring_enter",
    427: "io_uring_register",
    428: "open_tree",
    429: "move_mount",
    430: "fsopen",
    431: "fsconfig",
    432: "fsmount",
    433: "fspick",
    438: "pidfd_getfd",
    442: "mount_setattr",
    443: "quotactl_fd",
}
# arch -> (AUDIT_ARCH, deny table, clone nr, clone3 nr)
_ARCH = {
    "x86_64": (0xC000003E, _DENY_X86_64, 56, 435),
    "aarch64": (0xC00000B7, _DENY_AARCH64, 220, 435),
}


def seccomp_program():
    """A classic-BPF filter: wrong arch -> kill; denied syscalls -> EPERM; clone with namespace flags -> EPERM;
    clone3 -> ENOSYS (its flags live in memory BPF cannot read; libc then falls back to clone)."""
    arch = _ARCH.get(platform.machine())
    if arch is None:
        return None
    audit_arch, deny, nr_clone, nr_clone3 = arch
    ld_abs, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    prog = [(ld_abs, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill), (ld_abs, 0, 0, 0)]
    if audit_arch == 0xC000003E:  # x32 ABI syscalls share the arch value: refuse them
        prog += [(jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]
    for nr in sorted(deny):
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, nr_clone3), (ret, 0, 0, enosys)]
    prog += [(jeq, 0, 3, nr_clone), (ld_abs, 0, 0, 16), (jset, 0, 1, NS_FLAGS), (ret, 0, 0, eperm)]
    prog += [(ret, 0, 0, allow)]
    return prog


def install_seccomp(prog):
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    _check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog)), "seccomp")


# ------------------------------------------------------------------------------------------------ capabilities


def drop_capabilities():
    """Bounding set, ambient, effective/permitted/inheritable: all empty; no way back via execve."""
    for cap in range(64):
        if prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    _check(prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")


# ------------------------------------------------------------------------------------------------ the runner


SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
}

_RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
    "stack": resource.RLIMIT_STACK,
}


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except (OSError, ValueError):
        pass
    return 1


def _fresh_stdio():
    import io

    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="strict"
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _finish(rc):
    """What the interpreter does at exit: join non-daemon threads, atexit hooks, flush; then leave."""
    import threading

    try:
        threading._shutdown()
    except BaseException:  # noqa: BLE001 - user code may have broken threading; exit regardless
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(rc)


def run_python_warm(path, code_obj, source):
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    main.__cached__ = None
    sys.modules["__main__"] = main
    sys.argv = [path]
    rc = 0
    try:
        if code_obj is None:
            code_obj = compile(source, path, "exec")
        exec(code_obj, main.__dict__)
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - report like the interpreter does
        try:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: BLE001
            pass
        rc = 1
    _finish(rc)


def run_pytest_warm(path, args):
    rc = 1
    try:
        import pytest

        sys.argv = ["pytest", path, *args]
        rc = int(pytest.main([path, "-p", "no:cacheprovider", *args]))
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001
        try:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: BLE001
            pass
    _finish(rc)


def runner(cfg, job, payload, code_path, code_obj, source, stdin_fd, out_fd, err_fd, ready_fd):
    """The process that becomes the user program (never returns)."""
    os.setsid()
    os.dup2(stdin_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.closerange(3, ready_fd)
    os.closerange(ready_fd + 1, cfg["max_fd"])
    uid = cfg["sandbox_uid"]
    unshare(CLONE_NEWUSER)
    for name, data in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{uid} 0 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(data)
    drop_capabilities()
    limits = job["limits"]
    for key, value in limits.items():
        if key in _RLIMITS and value is not None:
            resource.setrlimit(_RLIMITS[key], (value, value))
    os.chdir(cfg["work_dir"])
    os.umask(0o022)
    for sig in (
        signal.SIGCHLD,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGALRM,
    ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(SANDBOX_ENV)
    os.environ["HOME"] = cfg["work_dir"]
    sys.path[:] = [cfg["work_dir"]] + [p for p in sys.path if p]
    prog = cfg.get("seccomp_prog")
    if prog:
        install_seccomp(prog)
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    if not job.get("warm", True):
        python = cfg["python"]
        argv = (
            [python, "-I", code_path]
            if payload["language"] == "python"
            else [python, "-I", "-m", "pytest", code_path, "-p", "no:cacheprovider", *payload.get("args", [])]
        )
        os.execve(python, argv, dict(os.environ))
    gc.enable()
    _fresh_stdio()
    if payload["language"] == "pytest":
        run_pytest_warm(code_path, payload.get("args", []))
    run_python_warm(code_path, code_obj, source)


# ------------------------------------------------------------------------------------------------ the init


def _write_files(work_dir, files):
    import base64

    for rel, content in files.items():
        full = os.path.join(work_dir, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        data = base64.b64decode(content) if content else b""
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)


def _memfd_with(data):
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_all(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _fetch(work_dir, paths, budget):
    """Regular files inside the work dir (no symlink out), base64, within a total byte budget."""
    import base64
    import stat

    fetched = {}
    root = os.path.realpath(work_dir) + "/"
    for rel in paths:
        full = os.path.join(work_dir, rel)
        if not os.path.realpath(full).startswith(root):
            continue
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > budget:
                continue
            data = _read_all(fd)[:budget]
            budget -= len(data)
            fetched[rel] = base64.b64encode(data).decode("ascii")
        finally:
            os.close(fd)
    return fetched


def _setup_mounts(cfg, job):
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if cfg.get("netns_per_exec"):
        flags |= CLONE_NEWNET
    unshare(flags)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Like bubblewrap: the kernel knobs under /proc stay read-only even for a uid the host calls root.
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"):
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    size = job["tmpfs_mb"]
    opts = f"size={size}m,nr_inodes={cfg['tmpfs_inodes']},mode=0755,uid=0,gid=0"
    mount("tmpfs", cfg["work_dir"], "tmpfs", MS_NOSUID | MS_NODEV, opts)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts.replace("mode=0755", "mode=1777"))
    if os.path.isdir("/dev/shm"):
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={min(size, 64)}m,mode=1777")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _cgroup_join(paths, procs_file):
    """Move this init (and so everything it will fork) into the execution's cgroups."""
    for path in paths:
        with open(os.path.join(path, procs_file), "w") as fh:
            fh.write("0")


def init_main(cfg, job_id, job, fds, code_cache):
    """pid 1 of the execution's pid namespace (never returns)."""
    payload_fd, code_fd, out_fd, err_fd, status_fd = fds
    status = {"exit": None, "signal": None, "time": 0.0, "cpu": 0.0, "maxrss_kb": 0, "error": None}
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        prctl(PR_SET_DUMPABLE, 0)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        keep = sorted(fds)
        low = 3
        for fd in keep:
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, cfg["max_fd"])
        _setup_mounts(cfg, job)
        if job.get("cgroup_paths"):
            _cgroup_join(job["cgroup_paths"], cfg["cgroup_procs_file"])
        payload = json.loads(_read_all(payload_fd))
        os.close(payload_fd)
        source = _read_all(code_fd)
        os.close(code_fd)
        code_path = os.path.join(cfg["work_dir"], payload["code_name"])
        files = dict(payload.get("files") or {})
        _write_files(cfg["work_dir"], files)
        fd = os.open(code_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            _write_all(fd, source)
        finally:
            os.close(fd)
        stdin = payload.get("stdin")
        stdin_fd = _memfd_with(stdin.encode("utf-8")) if stdin else os.open("/dev/null", os.O_RDONLY)
        code_obj = code_cache.get(job.get("code_hash"))
        ready_r, ready_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                os.close(status_fd)
                runner(
                    cfg,
                    job,
                    payload,
                    code_path,
                    code_obj,
                    source.decode("utf-8", "replace"),
                    stdin_fd,
                    out_fd,
                    err_fd,
                    ready_w,
                )
            except BaseException as exc:  # noqa: BLE001 - setup failed: tell the init, which reports it
                try:
                    os.write(2, f"sandbox runner setup failed: {exc!r}\n".encode())
                finally:
                    os._exit(125)
            os._exit(125)
        os.close(ready_w)
        for fd in (stdin_fd, out_fd, err_fd):
            os.close(fd)
        ready = os.read(ready_r, 1)
        os.close(ready_r)
        while True:
            try:
                child, wstatus, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
            if child == pid:
                status["time"] = time.monotonic() - started
                status["cpu"] = usage.ru_utime + usage.ru_stime
                status["maxrss_kb"] = usage.ru_maxrss
                if os.WIFSIGNALED(wstatus):
                    status["signal"] = os.WTERMSIG(wstatus)
                else:
                    status["exit"] = os.WEXITSTATUS(wstatus)
                if not ready:
                    status["error"] = "the runner failed before the program started"
                break
        if payload.get("fetch_files"):
            status["files"] = _fetch(
                cfg["work_dir"], payload["fetch_files"], payload.get("max_fetch_bytes", 0)
            )
    except BaseException as exc:  # noqa: BLE001 - any setup failure is a sandbox error for this execution only
        status["error"] = f"{type(exc).__name__}: {exc}"
    try:
        _write_all(status_fd, json.dumps(status).encode())
    finally:
        os._exit(0)


# ------------------------------------------------------------------------------------------------ the zygote


class Zygote:
    def __init__(self, cfg):
        self.cfg = cfg
        self.sock = socket.socket(fileno=cfg["ctrl_fd"])
        self.sock.setblocking(True)
        self.sel = selectors.DefaultSelector()
        self.jobs = {}  # id -> dict
        self.by_fd = {}  # fd -> (kind, id)
        self.code_cache = {}
        self.stale_cgroups = []
        self.cg_seq = 0
        self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def cgroup_create(self, job_id, msg):
        """Fresh per-execution cgroups (where the service delegated a subtree), limits written before use."""
        paths = []
        for path in self.stale_cgroups[:]:
            try:
                os.rmdir(path)
                self.stale_cgroups.remove(path)
            except OSError:
                pass
        for ctrl in self.cfg.get("cgroups", []):
            self.cg_seq += 1
            path = os.path.join(ctrl["path"], f"x{self.cg_seq}")
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            for name, key in ctrl["files"].items():
                value = (msg.get("cgroup") or {}).get(key)
                if value is not None:
                    with open(os.path.join(path, name), "w") as fh:
                        fh.write(str(value))
            paths.append(path)
        return paths

    def send(self, msg):
        self.sock.send(json.dumps(msg).encode())

    def start_job(self, msg, fds):
        job_id = msg["id"]
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            self.send(
                {"op": "done", "id": job_id, "error": f"expected 4 fds, got {len(fds)}", "timed_out": False}
            )
            return
        if msg.get("compile") and msg.get("code_hash") and msg["code_hash"] not in self.code_cache:
            try:
                source = _read_all(fds[1]).decode("utf-8", "replace")
                path = os.path.join(self.cfg["work_dir"], msg["code_name"])
                if len(self.code_cache) >= 64:
                    self.code_cache.pop(next(iter(self.code_cache)))
                self.code_cache[msg["code_hash"]] = compile(source, path, "exec")
            except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
                pass  # the run itself reports the error
        try:
            msg["cgroup_paths"] = self.cgroup_create(job_id, msg)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send(
                {"op": "done", "id": job_id, "error": f"cgroup setup failed: {exc}", "timed_out": False}
            )
            return
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            unshare(CLONE_NEWPID)
            pid = os.fork()
        except OSError as exc:
            for fd in (*fds, status_r, status_w):
                os.close(fd)
            setns(self.pidns_fd, CLONE_NEWPID)
            self.send({"op": "done", "id": job_id, "error": f"fork failed: {exc}", "timed_out": False})
            return
        if pid == 0:
            init_main(self.cfg, job_id, msg, (*fds, status_w), self.code_cache)
            os._exit(0)
        setns(self.pidns_fd, CLONE_NEWPID)
        for fd in (*fds, status_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        job = {
            "pid": pid,
            "pidfd": pidfd,
            "status_r": status_r,
            "status": None,
            "buf": b"",
            "status_open": True,
            "deadline": time.monotonic() + float(msg["timeout"]),
            "timed_out": False,
            "killed": False,
            "reaped": False,
            "reported": False,
            "cgroup_paths": msg.get("cgroup_paths", []),
        }
        self.jobs[job_id] = job
        self.by_fd[pidfd] = ("pid", job_id)
        self.by_fd[status_r] = ("status", job_id)
        self.sel.register(pidfd, selectors.EVENT_READ)
        self.sel.register(status_r, selectors.EVENT_READ)

    def kill(self, job_id, timed_out=False):
        job = self.jobs.get(job_id)
        if job is None or job["reaped"] or job["killed"]:
            return
        job["timed_out"] = timed_out
        job["killed"] = True
        try:
            signal.pidfd_send_signal(job["pidfd"], signal.SIGKILL)
        except ProcessLookupError:
            pass

    def report(self, job_id):
        job = self.jobs[job_id]
        if job["reported"]:
            return
        job["reported"] = True
        status = job["status"] or {"error": "the execution's init died without a report"}
        if job["killed"]:
            status = {**status, "error": None}
        self.send(
            {"op": "done", "id": job_id, "timed_out": job["timed_out"], "killed": job["killed"], **status}
        )

    def on_status(self, job_id):
        """The init writes its report in one atomic write just before it exits: report as soon as it parses,
        so the namespace teardown that follows is off the response's path."""
        job = self.jobs[job_id]
        chunk = os.read(job["status_r"], MAX_MSG)
        if chunk:
            job["buf"] += chunk
            if job["status"] is None:
                try:
                    job["status"] = json.loads(job["buf"])
                except ValueError:
                    return
                if not job["killed"]:
                    self.report(job_id)
            return
        self.sel.unregister(job["status_r"])
        del self.by_fd[job["status_r"]]
        os.close(job["status_r"])
        job["status_open"] = False
        self.maybe_forget(job_id)

    def on_exit(self, job_id):
        job = self.jobs[job_id]
        try:
            os.waitpid(job["pid"], 0)
        except ChildProcessError:
            pass
        job["reaped"] = True
        self.sel.unregister(job["pidfd"])
        del self.by_fd[job["pidfd"]]
        os.close(job["pidfd"])
        for path in job["cgroup_paths"]:
            try:
                os.rmdir(path)
            except OSError:
                self.stale_cgroups.append(path)
        self.maybe_forget(job_id)

    def maybe_forget(self, job_id):
        job = self.jobs[job_id]
        if job["reaped"] and not job["status_open"]:
            self.report(job_id)
            del self.jobs[job_id]

    def on_ctrl(self):
        fds = array.array("i")
        msg, ancdata, flags, _ = self.sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(16 * fds.itemsize))
        if not msg:
            raise EOFError
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        request = json.loads(msg)
        if request["op"] == "run":
            self.start_job(request, list(fds))
        elif request["op"] == "kill":
            for fd in fds:
                os.close(fd)
            self.kill(request["id"])

    def loop(self):
        self.sel.register(self.sock, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            timeout = None
            for job_id, job in list(self.jobs.items()):
                if job["reaped"]:
                    continue
                if job["deadline"] <= now and not job["killed"]:
                    self.kill(job_id, timed_out=True)
                elif not job["killed"]:
                    left = job["deadline"] - now
                    timeout = left if timeout is None else min(timeout, left)
            for key, _ in self.sel.select(timeout):
                if key.fileobj is self.sock:
                    self.on_ctrl()
                    continue
                kind, job_id = self.by_fd.get(key.fd, (None, None))
                if kind == "status":
                    self.on_status(job_id)
                elif kind == "pid":
                    self.on_exit(job_id)


def _preload(names):
    loaded = []
    for name in names:
        try:
            __import__(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a missing optional module must not stop the zygote
            pass
    return loaded


def main():
    cfg = json.loads(sys.argv[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cfg["max_fd"] = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["max_fd"], hard))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    loaded = _preload(cfg.get("preload", []))
    prog = seccomp_program() if cfg.get("seccomp", True) else None
    cfg["seccomp_prog"] = prog
    zygote = Zygote(cfg)
    gc.collect()
    gc.freeze()
    gc.disable()  # no collections in the zygote: forked children would copy every page a GC pass touches
    vm = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    vm = int(line.split()[1]) * 1024
    except OSError:
        pass
    zygote.send(
        {
            "op": "ready",
            "pid": os.getpid(),
            "preloaded": loaded,
            "seccomp": prog is not None,
            "address_space_bytes": vm,
            "python": sys.version.split()[0],
        }
    )
    try:
        zygote.loop()
    except EOFError:
        pass


if __name__ == "__main__":
    main()
