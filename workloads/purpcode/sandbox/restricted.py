"""What the `restricted` isolation mode needs from the service: the seccomp filter and the Landlock allow-list.

Why a second mode: the namespaces jail needs a pod that may create user namespaces and mount /proc (Pod Security
`privileged`); many clusters enforce `restricted`. This mode uses only what an unprivileged process may do to
itself: each execution installs this seccomp filter (compiled here by libseccomp, through `pyseccomp`, so syscall
numbers and architectures come from the library, not from hand-kept tables) and a Landlock ruleset (built in
`zygote.py` with raw syscalls: no maintained Python binding exposes Landlock ABI 6 scopes, and the zygote must stay
stdlib-only because it runs on the user-code interpreter).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

# Syscalls refused (EPERM) to user code in restricted mode: tracing and reading other processes, every way to
# mount, change root or namespaces, kernel surfaces user code never needs (io_uring, bpf, perf, keys, userfaultfd,
# modules, kexec), file-handle and inotify/fanotify tricks on shared trees, leaving the execution's process group
# (setsid/setpgid: the wall-time kill is a kill of that group), and uid-wide IPC objects (below).
DENIED: tuple[str, ...] = (
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "swapon", "swapoff", "reboot", "acct", "syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup",
    "sethostname", "setdomainname", "iopl", "ioperm", "uselib", "personality",
    "name_to_handle_at", "open_by_handle_at", "inotify_init", "inotify_init1", "inotify_add_watch",
    "fanotify_init", "fanotify_mark",
    "setsid", "setpgid",
    # No IPC namespace per execution here: System V and POSIX message-queue objects outlive their creator and are
    # shared by the uid (a channel between executions, memory that survives them), and memfd pages are not
    # counted by RLIMIT_AS (memory outside every per-execution bound).
    "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semctl",
    "semtimedop", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "memfd_create", "memfd_secret",
)  # fmt: skip
AF_UNIX = 1
PR_SET_DUMPABLE = 4
CLONE_NS_FLAGS = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
# Read-only for every execution (beside the interpreter's own directories); missing paths are skipped.
SYSTEM_RO_PATHS: tuple[str, ...] = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
    "/dev/zero", "/dev/urandom", "/dev/random",
)  # fmt: skip
# Read and written (device files whose writes go nowhere).
SYSTEM_RW_FILES: tuple[str, ...] = ("/dev/null", "/dev/full")


class RestrictedUnavailable(RuntimeError):
    """The restricted mode cannot run here (no libseccomp, no Landlock): the message says what is missing."""


def seccomp_bpf() -> bytes:
    """The restricted filter as classic BPF for this machine's architecture (and x32 on x86_64).

    Default allow; the calls above -> EPERM; sockets of any family but AF_UNIX -> EPERM (no network at all, the
    pod's network namespace is real); clone with namespace flags -> EPERM; clone3 -> ENOSYS (its flags are in
    memory BPF cannot read; libc falls back to clone); prctl(PR_SET_DUMPABLE) -> EPERM (an execution stays not
    dumpable); a foreign architecture -> kill."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as err:  # OSError: libseccomp.so.2 missing
        raise RestrictedUnavailable(
            f"the restricted isolation mode needs libseccomp and pyseccomp ({err}): "
            "pip install pyseccomp; apt-get install libseccomp2"
        ) from err
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    if os.uname().machine == "x86_64":
        flt.add_arch(sc.Arch.X32)  # the same rules for x32 calls (libseccomp would otherwise allow them)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            flt.add_rule(eperm, name)
        except (ValueError, RuntimeError, OSError):
            continue  # not a syscall on this architecture
    flt.add_rule(eperm, "socket", sc.Arg(0, sc.NE, AF_UNIX))
    flt.add_rule(eperm, "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
    for bit in range(32):
        flag = 1 << bit
        if CLONE_NS_FLAGS & flag:
            flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(eperm, "prctl", sc.Arg(0, sc.EQ, PR_SET_DUMPABLE))
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb") as out:
            flt.export_bpf(out)
        with os.fdopen(read_fd, "rb") as src:
            read_fd = -1
            return src.read()
    finally:
        if read_fd >= 0:
            os.close(read_fd)


def ro_paths(interpreter_dirs: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The read-only allow-list: the system trees, the interpreter's directories and any extra paths."""
    seen: list[str] = []
    for path in (*SYSTEM_RO_PATHS, *interpreter_dirs, *extra):
        real = os.path.realpath(path)
        for candidate in (path, real):
            if candidate not in seen and os.path.exists(candidate):
                seen.append(candidate)
    return seen


def default_work_root() -> str:
    """Where the executions' private directories live (the pod's /tmp emptyDir)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(base, f"purpcode-sandbox-{os.getpid()}")


def python_path_dirs(python: str) -> list[str]:
    """Directories on the interpreter's import path (`-I`: no PYTHONPATH, no user site) that lie outside its
    prefix, e.g. a virtualenv's `.pth` entries: user code needs them read-only too."""
    import json
    import subprocess

    probe = "import sys, json; print(json.dumps([p for p in sys.path if p]))"
    try:
        out = subprocess.run(
            [python, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [p for p in json.loads(out.stdout) if os.path.isdir(p) and p != os.path.dirname(sys.argv[0] or "")]
