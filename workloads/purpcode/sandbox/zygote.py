# mypy: ignore-errors
# (Runs as a standalone program with the jail's interpreter; it rebinds interpreter internals on purpose.)
"""The warm fork-server that runs inside the bubblewrap jail (stdlib only, Linux only).

It is *not* imported by the service: `jail.py` reads this file and runs it with the jail's interpreter as
`python -I -c <source> <config json>`, because the project's own files are not visible inside the jail.

Why a fork-server: a fresh interpreter costs ~10-40 ms to start; forking an initialised one costs ~1 ms. Each
execution is one forked process in a fresh pid namespace (namespaces mode, x86_64):

    zygote (jail: user ns A where it is uid 0 with capabilities in A only; no network; read-only root)
      ├─ pid 1 of the execution's pid namespace: a few machine instructions in a CLONE_VM clone of the zygote
      │  (`clone_init`: no fd, every signal ignored, orphans reaped by the kernel, sleeps until killed)
      └─ the program = pid 2 of that namespace (fork after unshare(CLONE_NEWPID) and the clone)
           1. with the jail's capabilities: unshare(mount, ipc[, net]); /proc of its own pid namespace
              only (subset=pid); private tmpfs work dir, /tmp and /dev/shm; its own cgroup where delegated;
              writes the request's files
           2. unshare(user): uid 65534 in a fresh user ns B; every capability dropped; no_new_privs; seccomp;
              rlimits; new session; scrubbed environment; cwd = the work dir
           3. runs the code (warm: in this already initialised interpreter; or execve of a fresh one)

Both are made ahead of their request while the zygote is idle (a "spare", step 1's mounts done). The zygote reaps
the program with wait4 (exit status and rusage come from the kernel, not from the program), then kills pid 1:
the kernel kills every process left in the pid namespace, and the mount namespace, with its tmpfs work dir,
disappears: nothing outlives an execution. Executions cannot see each other's files (private mounts) or processes
(own pid namespace and /proc). With fetch_files, on other architectures and with `tiny_init: false`, pid 1 is a
forked interpreter instead that forks the program, stays as its trusted parent and reports its exit status.

Protocol (SOCK_SEQPACKET with the service, JSON messages, fds by SCM_RIGHTS):
    zygote -> service  {"op": "ready", ...features}
    service -> zygote  {"op": "run", "id", "timeout", "limits", "code_hash", "compile": bool}
                       + fds [payload memfd (JSON), code memfd, stdout pipe, stderr pipe, files memfd]
    service -> zygote  {"op": "kill", "id"}
    zygote -> service  {"op": "done", "id", "exit", "signal", "time", "cpu", "maxrss_kb", "timed_out", "killed",
                        "error"}
(`fetch_files` come back in the files memfd, which pid 1 fills after the program ends: the control socket carries
only small messages.)

Compile cache: untrusted source is never compiled (nor read) by the zygote itself: CPython's constant folding makes
compile time and memory superlinear in the source (`"a"*4096 + "a"*4096 + ...`: ~18 KB of source, ~30 s), and the
zygote's loop enforces every execution's deadline. Code worth caching is compiled by a short-lived child under CPU,
memory and wall limits, which writes it marshalled into a memfd; the zygote loads it into its cache (GC-frozen, so
`gc.get_objects()` in an execution does not list it). Before user code runs, an execution takes its own entry and
drops its references to the others (without freeing them: that would copy every page they touch), so other
programs' cached code is not reachable from Python objects (frames, gc); only reading raw memory (ctypes) finds it.

Why one file (past 800 lines): it runs as one program from its source text (`python -I -c`) inside a jail
where no other project file is visible, so it cannot import siblings.
"""

import array
import base64
import ctypes
import errno
import gc
import json
import marshal
import os
import resource
import selectors
import signal
import socket
import stat
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
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

MAX_MSG = 1 << 16

# Caching compiled code (see the module docstring): limits of the compile child and of the cache.
COMPILE_TIMEOUT_S = 5.0
COMPILE_MEMORY_BYTES = 512 << 20  # address space on top of the zygote's own
COMPILE_MAX_SOURCE = 512 << 10
COMPILE_MAX_BYTES = 1 << 20  # marshalled code object (the harness runtime: ~40 KB)
COMPILE_PARALLEL = 2
CACHE_MAX_ENTRIES = 64
# Marshalled bytes of all entries: every fork inherits the cache, and the address-space limit of an execution counts
# the zygote's size at start only.
CACHE_MAX_BYTES = 8 << 20

# Landlock scopes (ABI >= 6, Linux 6.12): an execution cannot connect to abstract unix sockets, or signal
# processes, of anything outside its own Landlock domain (other executions, the zygote, pid 1 while it fetches).
_NR_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64
_NR_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1
LANDLOCK_SCOPE_SIGNAL = 2


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes import util  # slower import (subprocess, ...): only where the soname differs (musl)

        return ctypes.CDLL(util.find_library("c"), use_errno=True)


libc = _libc()
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.syscall.restype = ctypes.c_long


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
    253: "inotify_init",  # inotify/fanotify on the shared read-only trees would show other executions' opens
    254: "inotify_add_watch",
    272: "unshare",
    294: "inotify_init1",
    298: "perf_event_open",
    300: "fanotify_init",
    301: "fanotify_mark",
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
    26: "inotify_init1",
    27: "inotify_add_watch",
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
    262: "fanotify_init",
    263: "fanotify_mark",
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
    arch = _ARCH.get(os.uname().machine)
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


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def compile_seccomp(prog):
    """Pack the filter once in the zygote; every execution installs the same bytes."""
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    return buf, _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))


def compile_raw_seccomp(raw):
    """A filter already compiled to classic BPF by the service (libseccomp, restricted mode)."""
    buf = ctypes.create_string_buffer(raw, len(raw))
    return buf, _SockFprog(len(raw) // 8, ctypes.cast(buf, ctypes.c_void_p))


def install_seccomp(compiled):
    _check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(compiled[1])), "seccomp")


# ------------------------------------------------------------------------------------------- tiny pid 1

# Namespaces mode: pid 1 of each execution's pid namespace is this machine code, not a copy of the zygote. It
# starts as a clone of the zygote that shares its memory (CLONE_VM: no page tables to copy, no copy-on-write
# faults, nothing to unmap at exit) and, for its first instruction only, its fd table (CLONE_FILES), with every
# signal blocked (the zygote blocks them around the clone, so no handler of the interpreter can run there). It
# makes these system calls and then sleeps until the zygote's SIGKILL ends it and its namespace:
#     close_range(0, ~0U, CLOSE_RANGE_UNSHARE)      an fd table of its own, empty: it holds nothing open
#     rt_sigaction(1..64, {SIG_IGN}, NULL, 8)       no handler at all (so nothing ever runs on its small stack);
#                                                   SIGCHLD ignored: the namespace's orphans are reaped at once
#     rt_sigprocmask(SIG_SETMASK, {}, NULL, 8)      unblocked and ignored: signals sent to it are discarded
#     prctl(PR_SET_PDEATHSIG, SIGKILL)              gone with the zygote
#     loop: pause()
# The program is forked by the zygote into that namespace (pid 2), so the zygote reaps it and reads its exit
# status from the kernel, and the program can signal itself like `python3` (it is not init). pid 1's memory is
# the zygote's, but nothing in an execution can reach it: signals to it are discarded; /proc/1/mem and the like
# are refused (the kernel's capability check: pid 1 holds the jail's capabilities, the program none; the zygote's
# memory is not dumpable; the program's Landlock domain); ptrace and process_vm_* are refused by seccomp.
# Assembled from (x86_64, GNU as, Intel syntax):
#     mov eax,436; xor edi,edi; mov esi,-1; mov edx,2; syscall
#     mov ebx,1
#   2: mov eax,13; mov edi,ebx; lea rsi,[rip+act]; xor edx,edx; mov r10d,8; syscall
#     inc ebx; cmp ebx,65; jne 2b
#     mov eax,14; mov edi,2; lea rsi,[rip+act+8]; xor edx,edx; mov r10d,8; syscall
#     mov eax,157; mov edi,1; mov esi,9; syscall
#   1: mov eax,34; syscall; jmp 1b
#     .p2align 3; act: .quad 1,0,0,0
# Other architectures keep pid 1 a forked interpreter (`spare_main` with leader=False), as `tiny_init: false` does.
_INIT_CODE = {
    "x86_64": bytes.fromhex(
        "b8b401000031ffbeffffffffba020000000f05bb01000000b80d00000089df488d354a00000031d241ba080000000f05"
        "ffc383fb4175e1b80e000000bf02000000488d353000000031d241ba080000000f05b89d000000bf01000000be090000"
        "000f05b8220000000f05ebf70f1f4000" + "0100000000000000" + "00" * 24
    ),
}
# sigset_t buffers for pthread_sigmask (raw: the signal module's version builds a set of enums per call).
_SIGSET_ALL = (ctypes.c_ulong * 16)(*([~0 & ((1 << (8 * ctypes.sizeof(ctypes.c_ulong))) - 1)] * 16))
_SIGSET_OLD = (ctypes.c_ulong * 16)()
CLONE_VM = 0x00000100
CLONE_FILES = 0x00000400
_INIT_STACK = 4096


def init_code():
    """The pid-1 machine code in an executable page of its own (read-only once written), or None."""
    code = _INIT_CODE.get(os.uname().machine)
    if code is None:
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    prot_read, prot_write, prot_exec, map_private, map_anonymous = 1, 2, 4, 2, 0x20
    page = libc.mmap(None, 4096, prot_read | prot_write, map_private | map_anonymous, -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        return None
    ctypes.memmove(page, code, len(code))
    if libc.mprotect(page, 4096, prot_read | prot_exec) != 0:
        return None
    libc.clone.restype = ctypes.c_int
    libc.clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return page


def clone_init(code):
    """Start the machine-code pid 1 (the caller has unshared CLONE_NEWPID). Returns (pid, its stack): the stack
    (where libc's clone puts the entry point and a return address) must stay allocated while it lives."""
    stack = ctypes.create_string_buffer(_INIT_STACK)
    top = (ctypes.addressof(stack) + _INIT_STACK - 64) & ~15
    _check(
        libc.pthread_sigmask(signal.SIG_BLOCK, ctypes.byref(_SIGSET_ALL), ctypes.byref(_SIGSET_OLD)),
        "sigmask",
    )
    try:
        pid = libc.clone(code, top, CLONE_VM | CLONE_FILES | signal.SIGCHLD, None)
        err = ctypes.get_errno()
    finally:
        libc.pthread_sigmask(signal.SIG_SETMASK, ctypes.byref(_SIGSET_OLD), None)
    if pid < 0:
        raise OSError(err, f"clone of pid 1: {os.strerror(err)}")
    return pid, stack


def _cap_last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 63


CAP_LAST_CAP = _cap_last_cap()
_CAP_HEADER = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
_CAP_EMPTY = (_CapData * 2)()


def drop_capabilities():
    """Bounding set, ambient, effective/permitted/inheritable: all empty; no way back via execve."""
    for cap in range(CAP_LAST_CAP + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _check(libc.capset(ctypes.byref(_CAP_HEADER), ctypes.byref(_CAP_EMPTY)), "capset")
    _check(prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def landlock_abi():
    """The kernel's Landlock ABI version; 0 where Landlock is missing or disabled."""
    abi = libc.syscall(
        ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(abi), 0)


_LANDLOCK_SCOPES = _LandlockRulesetAttr(0, 0, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL)


def landlock_scope():
    """Enter a fresh Landlock domain that only scopes abstract unix sockets and signals (no file rules)."""
    fd = libc.syscall(
        ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET),
        ctypes.byref(_LANDLOCK_SCOPES),
        ctypes.c_size_t(ctypes.sizeof(_LANDLOCK_SCOPES)),
        ctypes.c_uint32(0),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        ret = libc.syscall(ctypes.c_long(_NR_LANDLOCK_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0))
        _check(ret, "landlock_restrict_self")
    finally:
        os.close(fd)


# Landlock filesystem and network rights (restricted mode: each execution builds its own ruleset).
_NR_LANDLOCK_ADD_RULE = 445
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = (
    1 << 8,
    1 << 9,
    1 << 10,
    1 << 11,
    1 << 12,
)
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
RO_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# The execution's own directory: everything but device nodes, sockets (a pathname socket would be reachable by
# other executions of the same uid: Landlock does not check connect()) and device ioctls.
WORK_RIGHTS = (
    FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_READ_DIR | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR
    | FS_MAKE_REG | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE
)  # fmt: skip
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2


class _LandlockPathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_handled_fs(abi):
    return _FS_BY_ABI.get(min(abi, 5), 0)


def landlock_restrict(abi, ro_fds, rw_fds):
    """Enter a fresh Landlock domain: read-only `ro_fds`, read-write `rw_fds` (O_PATH fds: (fd, is_dir)), no TCP,
    and (ABI >= 6) abstract unix sockets and signals scoped to the domain. Everything else is denied."""
    handled = landlock_handled_fs(abi)
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _LandlockRulesetAttr(handled, net, scoped)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    fd = libc.syscall(
        ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for fds, rights in ((ro_fds, RO_RIGHTS), (rw_fds, WORK_RIGHTS)):
            for path_fd, is_dir, extra in fds:
                allowed = (rights | extra) & handled
                if not is_dir:
                    allowed &= _FILE_RIGHTS
                rule = _LandlockPathBeneath(allowed, path_fd)
                ret = libc.syscall(
                    ctypes.c_long(_NR_LANDLOCK_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule), ctypes.c_uint32(0),
                )  # fmt: skip
                _check(ret, "landlock_add_rule")
        ret = libc.syscall(ctypes.c_long(_NR_LANDLOCK_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0))
        _check(ret, "landlock_restrict_self")
    finally:
        os.close(fd)


def open_rule_fds(paths):
    """O_PATH fds of the read-only allow-list, opened once by the zygote (every execution inherits them)."""
    fds = []
    for entry in paths:
        path, extra = entry if isinstance(entry, (list, tuple)) else (entry, 0)
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        fds.append((fd, stat.S_ISDIR(os.fstat(fd).st_mode), extra))
    return fds


def uid_tasks():
    """Tasks (processes + threads) of this real uid: RLIMIT_NPROC counts them all, not one execution's."""
    uid = os.getuid()
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except (OSError, ValueError):
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1"))
    return total


_ST_TO_MS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def remount_readonly(path):
    """Make one mount read-only and keep its other flags (flags locked by the host's mount may not change)."""
    have = os.statvfs(path).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for st_flag, ms_flag in _ST_TO_MS:
        if have & st_flag:
            flags |= ms_flag
    mount(None, path, None, flags)


def device_nodes_readonly(dev="/dev"):
    """bubblewrap's /dev binds the host's own device nodes read-write: where the jail's uid owns them (a service
    running as root), code could chmod the host's /dev/null. Read-only binds keep the devices usable (reads and
    writes go to the driver) but refuse chmod/chown/utime. Done once for the jail; executions inherit it."""
    own = os.stat(dev).st_dev
    for name in sorted(os.listdir(dev)):
        path = os.path.join(dev, name)
        info = os.lstat(path)
        if stat.S_ISCHR(info.st_mode) and info.st_dev != own:  # bound from the host (not the jail's tmpfs)
            remount_readonly(path)


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


_EXIT_NOTICE = {"fd": None, "pid": None}


def _finish(rc, signum=None):
    """What the interpreter does at exit: join non-daemon threads, atexit hooks, flush; then leave.

    The main process also tells the zygote its exit status before leaving, so the response does not wait for
    the kernel to tear the namespaces down (the zygote then kills whatever is left, as it would anyway)."""
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
    if signum is not None:  # the parent sees the signal (the program is never pid 1 of its namespace)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    elif _EXIT_NOTICE["fd"] is not None and os.getpid() == _EXIT_NOTICE["pid"]:
        try:
            os.write(_EXIT_NOTICE["fd"], struct.pack("i", rc))
        except OSError:
            pass
    os._exit(rc)


def _report_uncaught(exc, tb):
    """Print an uncaught exception exactly as `python3 file.py` does: the frames of the program only (this
    module's own frame is cut off), no traceback header for a SyntaxError of the file itself."""
    exc.__traceback__ = tb
    try:
        sys.excepthook(type(exc), exc, tb)
    except BaseException:  # noqa: BLE001
        pass


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
    if code_obj is None:
        try:
            code_obj = compile(source, path, "exec")
        except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
            _report_uncaught(exc, None)
            _finish(1)
    # The program's frames sit below this module's: raise the recursion limit by as many, so recursion goes
    # exactly as deep as under `python3 file.py`.
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    sys.setrecursionlimit(sys.getrecursionlimit() + depth + 1)  # + 1: the exec() call itself
    try:
        exec(code_obj, main.__dict__)
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - report like the interpreter does
        tb = exc.__traceback__
        _report_uncaught(exc, tb.tb_next if tb is not None else None)
        if isinstance(exc, KeyboardInterrupt):
            _finish(
                130, signal.SIGINT
            )  # CPython ends by SIGINT after an uncaught KeyboardInterrupt (status -2)
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


def drop_to_sandbox_user(cfg, job):
    """Become uid `sandbox_uid` in a fresh user namespace with no capabilities, seccomp and rlimits."""
    uid = cfg["sandbox_uid"]
    unshare(CLONE_NEWUSER)
    for name, data in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{uid} 0 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(data)
    drop_capabilities()
    for key, value in job["limits"].items():
        if key in _RLIMITS and value is not None:
            resource.setrlimit(_RLIMITS[key], (value, value))
    if cfg.get("landlock_scope"):
        landlock_scope()
    if cfg.get("seccomp_compiled"):
        install_seccomp(cfg["seccomp_compiled"])
    prctl(PR_SET_DUMPABLE, 1)  # changing credentials cleared it; /proc/self is the program's own again


def restrict_self(cfg, job):
    """Restricted mode (no namespaces, no capabilities): the execution confines itself before any user code.
    Order: rlimits, OOM preference, no_new_privs (Landlock and seccomp need it), Landlock (its own work dir
    read-write, the allow-list read-only, /proc/<own pid>, no TCP, scoped abstract sockets and signals), not
    dumpable (its /proc entries become root's: no other execution can read them), then the seccomp filter
    (which also refuses to make it dumpable again)."""
    for key, value in job["limits"].items():
        if key in _RLIMITS and value is not None:
            resource.setrlimit(_RLIMITS[key], (value, value))
    prctl(PR_SET_DUMPABLE, 1)  # inherited off from the zygote; /proc/self files must be ours for a moment
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")  # the pod's OOM killer takes executions before the service
    except OSError:
        pass
    _check(prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    abi = cfg.get("landlock_abi", 0)
    if abi > 0:
        work = os.open(cfg["work_dir"], os.O_PATH | os.O_CLOEXEC)
        own = os.open("/proc/self", os.O_PATH | os.O_CLOEXEC)  # resolves to /proc/<this pid>
        try:
            landlock_restrict(abi, [*cfg["rule_fds"], (own, True, 0)], [(work, True, 0), *cfg["rw_rule_fds"]])
        finally:
            os.close(work)
            os.close(own)
    for fd, _, _ in (*cfg["rule_fds"], *cfg["rw_rule_fds"]):
        os.close(fd)
    _check(prctl(PR_SET_DUMPABLE, 0), "dumpable")
    if cfg.get("seccomp_compiled"):
        install_seccomp(cfg["seccomp_compiled"])


def run_user_code(cfg, job, payload, code_path, code_obj, source, exit_fd):
    """Turn this (already unprivileged) process into the user program; never returns."""
    _EXIT_NOTICE["fd"], _EXIT_NOTICE["pid"] = exit_fd, os.getpid()
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
    if cfg.get("mode") == "restricted":
        os.environ["TMPDIR"] = cfg["work_dir"]  # the only writable place
    sys.path[:] = [cfg["work_dir"]] + [p for p in sys.path if p]
    if not job.get("warm", True) or "\x00" in source:  # a fresh interpreter reports NUL bytes its own way
        python = cfg["python"]
        if payload["language"] == "python":
            argv = [python, "-I", code_path]
        else:
            argv = [
                python,
                "-I",
                "-m",
                "pytest",
                code_path,
                "-p",
                "no:cacheprovider",
                *payload.get("args", []),
            ]
        os.execve(python, argv, dict(os.environ))
    gc.enable()
    _fresh_stdio()
    if payload["language"] == "pytest":
        run_pytest_warm(code_path, payload.get("args", []))
    run_python_warm(code_path, code_obj, source)


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
    flags = CLONE_NEWNS | CLONE_NEWIPC  # (no uts: the jail's hostname cannot be changed without capabilities)
    if cfg.get("netns_per_exec"):
        flags |= CLONE_NEWNET
    unshare(flags)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    try:
        # Only the process directories: no /proc/sys, /proc/sysrq-trigger, ... at all (kernel >= 5.8).
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid")
    except OSError:
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
    # Read-only binds that lived under /tmp (the interpreter's virtualenv, say) come back over the new /tmp.
    for stash, path in cfg.get("keep_binds", ()):
        os.makedirs(path, mode=0o755, exist_ok=True)
        mount(stash, path, None, MS_BIND | MS_REC)
        mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    # The jail's /dev is one tmpfs for all executions: read-only here (device nodes stay usable), with a
    # private /dev/shm and a private devpts instance, so no file or pty is shared between executions.
    try:
        mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    except OSError:
        mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    if os.path.isdir("/dev/shm"):
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={min(size, 64)}m,mode=1777")
    if os.path.isdir("/dev/pts"):
        try:
            mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
        except OSError:
            pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _cgroup_join(paths, procs_file):
    """Move this init (and so everything it will fork) into the execution's cgroups."""
    for path in paths:
        with open(os.path.join(path, procs_file), "w") as fh:
            fh.write("0")


# Errors of writing the request's own files that the request caused (too big for the work dir, a name too long,
# a path used as both file and directory): the client's error, not the sandbox's.
CLIENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR,
}  # fmt: skip


def spare_main(cfg, sock_fd, code_cache, leader=False):
    """Namespaces mode: an execution's process made ahead of its request, while the zygote is idle (the fork and
    the mounts are off the request's path): the program itself (`leader`: pid 2, under the machine-code pid 1 of
    `clone_init`) or, where that pid 1 is not available, a forked pid 1 that forks the program. It waits for one
    job (the message and its fds) and then runs it like `execution_main`; the zygote's end closing (or the zygote
    dying) ends it."""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.closerange(3, sock_fd)
        os.closerange(sock_fd + 1, cfg["max_fd"])
        _setup_mounts(cfg, {"tmpfs_mb": cfg["tmpfs_mb"]})
        sock = socket.socket(fileno=sock_fd)
        fds = array.array("i")
        msg, ancdata, _, _ = sock.recvmsg(
            MAX_MSG, socket.CMSG_SPACE(16 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        sock.close()
        if not msg or len(fds) != 7:
            os._exit(0)
        job = json.loads(msg)
    except BaseException:  # noqa: BLE001 - the zygote sees it exit unused and stops making spares
        os._exit(125)
    execution_main(cfg, job, tuple(fds), code_cache, prepared=True, leader=leader)
    os._exit(125)


def execution_main(cfg, job, fds, code_cache, prepared=False, leader=False):
    """The leader of one execution: pid 1 of its own pid namespace (namespaces mode) or the leader of its own
    process group (restricted mode). It prepares the work dir and the request's files, then forks the program and
    stays as its trusted parent, or (restricted mode without fetch_files) becomes the program itself.

    Why a separate program process in namespaces mode: the kernel drops the signals pid 1 sends itself, so
    `os.kill(os.getpid(), SIGKILL)` or `os.abort()` would not end the program as they end `python3`. The parent
    waits for the program, copies fetch_files (the program never holds the files memfd) and writes
    b"\x01" + its exit status to the setup pipe. A setup failure is written there as text before anything
    else (prefixed b"\x02" when the request's files caused it); the zygote reads the pipe when it reaps the
    leader. Setup runs with the jail's capabilities (namespaces) and before any confinement (restricted);
    `drop_to_sandbox_user` / `restrict_self` apply before any user code. `leader` (namespaces mode, a spare
    under the machine-code pid 1, never with fetch_files): this process is already pid 2 and becomes the
    program itself; the zygote reaps it and reads its exit status from the kernel."""
    payload_fd, code_fd, out_fd, err_fd, files_fd, setup_fd, exit_fd = fds
    restricted = cfg.get("mode") == "restricted"
    stage = "setup"
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if restricted:
            os.setpgid(0, 0)  # the zygote kills the whole group (setpgid/setsid are refused to the program)
        rule_fds = [fd for fd, _, _ in (*cfg.get("rule_fds", ()), *cfg.get("rw_rule_fds", ()))]
        if not prepared:
            low = 3
            for fd in sorted((*fds, *rule_fds)):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, cfg["max_fd"])
        if restricted:
            cfg["work_dir"] = job["work_dir"]
            os.mkdir(cfg["work_dir"], 0o700)
        else:
            if not prepared:
                _setup_mounts(cfg, job)
            if job.get("cgroup_paths"):
                _cgroup_join(job["cgroup_paths"], cfg["cgroup_procs_file"])
            if os.path.isdir("/cgroup"):
                # The delegated cgroup tree is the zygote's tool, not the program's: cover it before user code.
                mount(
                    "tmpfs",
                    "/cgroup",
                    "tmpfs",
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=4k,mode=0555",
                )
        payload = json.loads(_read_all(payload_fd))
        os.close(payload_fd)
        source = _read_all(code_fd)
        os.close(code_fd)
        code_path = os.path.join(cfg["work_dir"], payload["code_name"])
        stage = "files"
        _write_files(cfg["work_dir"], dict(payload.get("files") or {}))
        fd = os.open(code_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            _write_all(fd, source)
        finally:
            os.close(fd)
        stdin = payload.get("stdin")
        stdin_fd = _memfd_with(stdin.encode("utf-8")) if stdin else os.open("/dev/null", os.O_RDONLY)
        stage = "setup"
        code_obj = cached_code(code_cache, job.get("code_hash"))
        if code_obj is not None and code_obj.co_filename != code_path:
            code_obj = _retarget(code_obj, code_path)  # restricted mode: cached under another work dir
        text = source.decode("utf-8", "replace")
        fetch = payload.get("fetch_files") or []
        if fetch or not (restricted or leader):
            # pid 1 ignores SIGINT (the kernel already drops the other signals the program sends to its
            # namespace's init unless init handles them; in restricted mode Landlock scopes them).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            pid = os.fork()
            if pid == 0:
                # The early exit notice is this trusted parent's to write: a program holding it could claim
                # any exit status (write a 0, then fail its tests).
                os.close(exit_fd)
                exit_fd = None
            else:
                for fd in (stdin_fd, out_fd, err_fd):
                    os.close(fd)
                for fd in rule_fds:
                    os.close(fd)
                while True:
                    try:
                        child, wstatus = os.waitpid(-1, 0)
                    except ChildProcessError:
                        os._exit(125)
                    if child == pid:
                        break
                if fetch:
                    files = _fetch(cfg["work_dir"], fetch, payload.get("max_fetch_bytes", 0))
                    _write_all(files_fd, json.dumps(files).encode())
                if os.WIFSIGNALED(wstatus):
                    result = {"signal": os.WTERMSIG(wstatus)}
                else:
                    result = {"exit": os.WEXITSTATUS(wstatus)}
                _write_all(setup_fd, b"\x01" + json.dumps(result).encode())
                if "exit" in result:  # answer now, before the pid namespace's teardown
                    try:
                        os.write(exit_fd, struct.pack("i", result["exit"]))
                    except OSError:
                        pass
                os._exit(0)
            parent_reports = True
        else:
            parent_reports = False
            os.close(exit_fd)  # the program is the leader here: its own exit (pidfd) is the only status
            exit_fd = None
        os.close(files_fd)
        if not restricted:
            os.setsid()
        os.dup2(stdin_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in (stdin_fd, out_fd, err_fd):
            if fd > 2:
                os.close(fd)
        if restricted:
            restrict_self(cfg, job)
        else:
            drop_to_sandbox_user(cfg, job)
        if not parent_reports:
            _write_all(setup_fd, b"\x01")
        os.close(setup_fd)
    except BaseException as exc:  # noqa: BLE001 - any setup failure is a sandbox error for this execution only
        client = stage == "files" and isinstance(exc, OSError) and exc.errno in CLIENT_ERRNOS
        try:
            _write_all(setup_fd, (b"\x02" if client else b"") + f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(125)
    run_user_code(cfg, job, payload, code_path, code_obj, text, exit_fd)
    os._exit(125)


def _address_space():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def compile_child(code_fd, path, out_fd, max_fd):
    """A forked child of the zygote: compile the source in `code_fd` under CPU and memory limits and write the
    marshalled code object into the memfd `out_fd`; never returns. It runs no user code, so what it writes is
    trusted. (pread: the execution's pid 1 reads the same open code memfd at the same time.)"""
    rc = 1
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        low = 3
        for fd in sorted((code_fd, out_fd)):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, max_fd)
        cpu = int(COMPILE_TIMEOUT_S) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        limit = _address_space() + COMPILE_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        source = os.pread(code_fd, COMPILE_MAX_SOURCE + 1, 0)
        if len(source) <= COMPILE_MAX_SOURCE:
            data = marshal.dumps(compile(source.decode("utf-8", "replace"), path, "exec"))
            if len(data) <= COMPILE_MAX_BYTES:
                _write_all(out_fd, data)
                rc = 0
    except BaseException:  # noqa: BLE001 - not cached; the execution compiles (and reports) it itself
        pass
    os._exit(rc)


def _retarget(code, filename):
    """The code object with every nested code object's file name set to `filename` (what tracebacks show)."""
    consts = tuple(_retarget(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def cached_code(code_cache, code_hash):
    """In an execution, before any user code: its own cached code object (or None); the references to the other
    entries are dropped but their objects are kept alive (one extra reference each), because freeing them would
    copy-on-write every page they touch. Nothing in Python then leads to another program's code."""
    code_obj = code_cache.get(code_hash)
    incref = ctypes.pythonapi.Py_IncRef
    for other in code_cache.values():
        incref(ctypes.py_object(other))
    code_cache.clear()
    return code_obj


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
        self.code_sizes = {}
        self.cache_bytes = 0
        self.compiles = {}  # pidfd -> compile child
        self.cleaners = {}  # pidfd -> pid of a work-dir remover
        self.groups = set()  # restricted mode: process groups of finished executions with members left
        self.spare = None  # namespaces mode: a prepared pid 1 waiting for its job (see spare_main)
        self.spares_ok = cfg.get("mode") != "restricted" and cfg.get("prefork", True)
        # Namespaces mode: the machine-code pid 1 (see clone_init); None keeps pid 1 a forked interpreter.
        self.init_code = init_code() if self.spares_ok and cfg.get("tiny_init", True) else None
        self.inits = {}  # pidfd -> (pid, stack, cgroup paths) of a killed machine-code pid 1 not reaped yet
        self.cg_free = []
        self.cg_written = {}
        self.cg_seq = 0
        self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    @property
    def restricted(self):
        return self.cfg.get("mode") == "restricted"

    def remove_work_dir(self, path):
        """Restricted mode: the execution's private directory goes when the execution does. Small trees inline;
        large ones in a forked child, so a program that made 100k files cannot stall the other deadlines."""
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return
        except OSError:
            entries = None
        if (
            entries is not None
            and len(entries) <= 64
            and all(not e.is_dir(follow_symlinks=False) for e in entries)
        ):
            try:
                for entry in entries:
                    os.unlink(entry.path)
                os.rmdir(path)
                return
            except OSError:
                pass
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            try:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            finally:
                os._exit(0)
        pidfd = os.pidfd_open(pid)
        self.cleaners[pidfd] = pid
        self.by_fd[pidfd] = (pidfd, "cleaner")
        self.sel.register(pidfd, selectors.EVENT_READ)

    def _reap_pidfd(self, pidfd, pid):
        """A watched child ended: stop watching its pidfd and reap it."""
        self.sel.unregister(pidfd)
        del self.by_fd[pidfd]
        os.close(pidfd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def on_cleaner_exit(self, pidfd):
        self._reap_pidfd(pidfd, self.cleaners.pop(pidfd))

    def make_spare(self):
        if not self.spares_ok or self.spare is not None:
            return
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        init = None
        try:
            unshare(CLONE_NEWPID)
            if self.init_code is not None:
                init = clone_init(self.init_code)
            pid = os.fork()
        except OSError:
            parent.close()
            child.close()
            setns(self.pidns_fd, CLONE_NEWPID)
            if init is not None:
                self.end_init({"pid": init[0], "pidfd": os.pidfd_open(init[0]), "stack": init[1]}, wait=True)
            self.spares_ok = False
            return
        if pid == 0:
            parent.close()
            spare_main(self.cfg, child.detach(), self.code_cache, leader=init is not None)
            os._exit(125)
        setns(self.pidns_fd, CLONE_NEWPID)
        child.close()
        pidfd = os.pidfd_open(pid)
        self.spare = {"pid": pid, "pidfd": pidfd, "sock": parent, "init": None}
        if init is not None:
            self.spare["init"] = {"pid": init[0], "pidfd": os.pidfd_open(init[0]), "stack": init[1]}
        self.by_fd[pidfd] = (pidfd, "spare")
        self.sel.register(pidfd, selectors.EVENT_READ)

    def take_spare(self):
        """The prepared pid 1, unregistered (its pidfd becomes the job's), or None."""
        spare, self.spare = self.spare, None
        if spare is not None:
            self.sel.unregister(spare["pidfd"])
            del self.by_fd[spare["pidfd"]]
        return spare

    def on_spare_exit(self, pidfd):
        """A spare died before it got a job (its mounts failed): no more spares, the jobs set up themselves."""
        spare = self.take_spare()
        if spare is None:
            return
        spare["sock"].close()
        os.close(spare["pidfd"])
        try:
            os.waitpid(spare["pid"], 0)
        except ChildProcessError:
            pass
        if spare["init"] is not None:
            self.end_init(spare["init"], wait=True)
        self.spares_ok = False

    def end_init(self, init, wait=False, cgroup_paths=None):
        """SIGKILL a machine-code pid 1, which takes what is left of its pid namespace; reap it now (`wait`: its
        namespace has nothing left the zygote must reap first) or when its pidfd says it is gone."""
        try:
            signal.pidfd_send_signal(init["pidfd"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        if wait:
            os.close(init["pidfd"])
            try:
                os.waitpid(init["pid"], 0)
            except ChildProcessError:
                pass
            return
        self.inits[init["pidfd"]] = (init["pid"], init["stack"], cgroup_paths)
        self.by_fd[init["pidfd"]] = (init["pidfd"], "init")
        self.sel.register(init["pidfd"], selectors.EVENT_READ)

    def on_init_exit(self, pidfd):
        pid, _stack, cgroup_paths = self.inits.pop(pidfd)
        self._reap_pidfd(pidfd, pid)
        self.cgroup_release(cgroup_paths)

    def reap_groups(self):
        """Restricted mode: the zygote is a child subreaper, so what an execution left (killed with its group)
        ends up its child; reap each group until it is empty. A group with a zombie left keeps its id from
        being reused, so a later execution never shares it."""
        for pgid in list(self.groups):
            while True:
                try:
                    info = os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    self.groups.discard(pgid)
                    break
                if info is None:
                    break

    def cgroup_create(self, job_id, msg):
        """Per-execution cgroups (where the service delegated a subtree), limits written before use. Emptied
        cgroups are reused: creating a memory cgroup costs more than the rest of an execution's setup."""
        if not self.cfg.get("cgroups"):
            return []
        if self.cg_free:
            paths = self.cg_free.pop()
        else:
            paths = []
            for ctrl in self.cfg["cgroups"]:
                self.cg_seq += 1
                path = os.path.join(ctrl["path"], f"x{self.cg_seq}")
                os.makedirs(path, exist_ok=True)
                paths.append(path)
        wanted = msg.get("cgroup") or {}
        for ctrl, path in zip(self.cfg["cgroups"], paths, strict=True):
            for name, key in ctrl["files"].items():
                value = wanted.get(key)
                if value is not None and self.cg_written.get((path, name)) != value:
                    with open(os.path.join(path, name), "w") as fh:
                        fh.write(str(value))
                    self.cg_written[(path, name)] = value
        return paths

    def cgroup_release(self, paths):
        if not paths:
            return
        if len(self.cg_free) < 256:
            self.cg_free.append(paths)
            return
        for path in paths:
            try:
                os.rmdir(path)
            except OSError:
                pass

    def send(self, msg):
        self.sock.send(json.dumps(msg).encode())

    def start_compile(self, code_hash, code_name, code_fd):
        """Compile code worth caching in a limited child (see the module docstring); this execution does not wait
        for it (it compiles its own copy), later ones find it in the cache."""
        busy = any(c["hash"] == code_hash for c in self.compiles.values())
        if busy or len(self.compiles) >= COMPILE_PARALLEL or os.fstat(code_fd).st_size > COMPILE_MAX_SOURCE:
            return
        path = os.path.join(self.cfg["work_dir"], code_name)
        out = os.memfd_create("compiled", os.MFD_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:
            os.close(out)
            return
        if pid == 0:
            compile_child(code_fd, path, out, self.cfg["max_fd"])
        pidfd = os.pidfd_open(pid)
        self.compiles[pidfd] = {
            "pid": pid,
            "hash": code_hash,
            "out": out,
            "deadline": time.monotonic() + COMPILE_TIMEOUT_S,
            "killed": False,
        }
        self.by_fd[pidfd] = (pidfd, "compile")
        self.sel.register(pidfd, selectors.EVENT_READ)

    def on_compile_exit(self, pidfd):
        job = self.compiles.pop(pidfd)
        self.sel.unregister(pidfd)
        del self.by_fd[pidfd]
        os.close(pidfd)
        _, wstatus = os.waitpid(job["pid"], 0)
        try:
            size = os.fstat(job["out"]).st_size
            if job["killed"] or wstatus != 0 or not 0 < size <= COMPILE_MAX_BYTES:
                return
            # Written by the child, which ran no user code (and no execution ever holds this memfd).
            code = marshal.loads(os.pread(job["out"], size, 0))
        except (OSError, ValueError, EOFError, TypeError):
            return
        finally:
            os.close(job["out"])
        self.cache_put(job["hash"], code, size)

    def kill_compile(self, pidfd):
        job = self.compiles[pidfd]
        job["killed"] = True
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cache_put(self, code_hash, code, size):
        if code_hash in self.code_cache:
            return
        self.code_cache[code_hash] = code
        self.code_sizes[code_hash] = size
        self.cache_bytes += size
        while len(self.code_cache) > CACHE_MAX_ENTRIES or self.cache_bytes > CACHE_MAX_BYTES:
            oldest = next(iter(self.code_cache))
            del self.code_cache[oldest]
            self.cache_bytes -= self.code_sizes.pop(oldest)
        gc.freeze()  # out of gc.get_objects() in executions (and never scanned: the zygote's GC is off anyway)

    def start_job(self, msg, fds):
        job_id = msg["id"]
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            self.send(
                {"op": "done", "id": job_id, "error": f"expected 5 fds, got {len(fds)}", "timed_out": False}
            )
            return
        if msg.get("compile") and msg.get("code_hash") and msg["code_hash"] not in self.code_cache:
            self.start_compile(msg["code_hash"], msg["code_name"], fds[1])
        try:
            msg["cgroup_paths"] = self.cgroup_create(job_id, msg)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send(
                {"op": "done", "id": job_id, "error": f"cgroup setup failed: {exc}", "timed_out": False}
            )
            return
        setup_r, setup_w = os.pipe2(os.O_CLOEXEC)
        exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
        started = time.monotonic()
        restricted = self.restricted
        if restricted:
            msg["work_dir"] = os.path.join(self.cfg["work_root"], f"x{os.getpid()}-{job_id}")
        spare = self.take_spare() if not (msg.get("fetch") and self.init_code is not None) else None
        if spare is not None:
            try:
                spare["sock"].sendmsg(
                    [json.dumps(msg).encode()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", (*fds, setup_w, exit_w)))],
                )
            except OSError:
                signal.pidfd_send_signal(spare["pidfd"], signal.SIGKILL)
                os.waitpid(spare["pid"], 0)
                os.close(spare["pidfd"])
                if spare["init"] is not None:
                    self.end_init(spare["init"], wait=True)
                spare = None
            else:
                spare["sock"].close()
                for fd in (*fds, setup_w, exit_w):
                    os.close(fd)
                self.register_job(job_id, msg, spare["pid"], spare["pidfd"], setup_r, exit_r, started)
                self.jobs[job_id]["init"] = spare["init"]
                self.make_spare()
                return
        try:
            if not restricted:
                unshare(CLONE_NEWPID)
            pid = os.fork()
        except OSError as exc:
            for fd in (*fds, setup_r, setup_w, exit_r, exit_w):
                os.close(fd)
            if not restricted:
                setns(self.pidns_fd, CLONE_NEWPID)
            self.cgroup_release(msg["cgroup_paths"])
            self.send({"op": "done", "id": job_id, "error": f"fork failed: {exc}", "timed_out": False})
            return
        if pid == 0:
            execution_main(self.cfg, msg, (*fds, setup_w, exit_w), self.code_cache)
            os._exit(125)
        if restricted:
            try:
                os.setpgid(pid, pid)  # also done by the child: whichever runs first, the group exists at once
            except OSError:
                pass
        else:
            setns(self.pidns_fd, CLONE_NEWPID)
        for fd in (*fds, setup_w, exit_w):
            os.close(fd)
        self.register_job(job_id, msg, pid, os.pidfd_open(pid), setup_r, exit_r, started)
        self.make_spare()

    def register_job(self, job_id, msg, pid, pidfd, setup_r, exit_r, started):
        os.set_blocking(setup_r, False)
        self.jobs[job_id] = {
            "pid": pid,
            "pidfd": pidfd,
            "setup_r": setup_r,
            "exit_r": exit_r,
            "started": started,
            "deadline": started + float(msg["timeout"]),
            "timed_out": False,
            "killed": False,
            "reported": False,
            "cgroup_paths": msg["cgroup_paths"],
            "work_dir": msg.get("work_dir"),
            "init": None,
        }
        self.by_fd[pidfd] = (job_id, "pid")
        self.by_fd[exit_r] = (job_id, "exit")
        self.sel.register(pidfd, selectors.EVENT_READ)
        self.sel.register(exit_r, selectors.EVENT_READ)

    def kill(self, job_id, timed_out=False):
        job = self.jobs.get(job_id)
        if job is None or job["killed"]:
            return
        job["timed_out"] = timed_out
        job["killed"] = True
        self.kill_tree(job)

    def kill_tree(self, job):
        """SIGKILL the execution: its pid namespace goes with pid 1 (namespaces mode); its process group, which
        the program cannot leave, in restricted mode. The leader is not reaped yet, so its pid (the group id)
        cannot have been reused."""
        try:
            signal.pidfd_send_signal(job["pidfd"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        if job["init"] is not None:
            try:
                signal.pidfd_send_signal(job["init"]["pidfd"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.restricted:
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except OSError:
                pass

    def _close_exit_pipe(self, job):
        if job["exit_r"] is not None:
            self.sel.unregister(job["exit_r"])
            del self.by_fd[job["exit_r"]]
            os.close(job["exit_r"])
            job["exit_r"] = None

    def on_exit_notice(self, job_id):
        """The program announced its exit status on its way out: report now, then make sure it is gone."""
        job = self.jobs[job_id]
        data = os.read(job["exit_r"], 64)
        self._close_exit_pipe(job)
        if len(data) < 4 or job["killed"] or job["reported"]:
            return
        job["reported"] = True
        self.send(
            {
                "op": "done",
                "id": job_id,
                "timed_out": False,
                "killed": False,
                "exit": struct.unpack("i", data[:4])[0],
                "signal": None,
                "time": time.monotonic() - job["started"],
                "cpu": None,
                "maxrss_kb": None,
                "error": None,
            }
        )
        job["killed"] = True
        self.kill_tree(job)

    def on_exit(self, job_id):
        """Reap pid 1 of the execution (the kernel has killed the rest of its namespace) and report."""
        job = self.jobs.pop(job_id)
        self.sel.unregister(job["pidfd"])
        del self.by_fd[job["pidfd"]]
        if self.restricted:
            self.kill_tree(job)  # whatever the program left in its group, before its leader's pid is freed
        os.close(job["pidfd"])
        self._close_exit_pipe(job)
        try:
            _, wstatus, usage = os.wait4(job["pid"], 0)
        except ChildProcessError:
            wstatus, usage = None, None
        elapsed = time.monotonic() - job["started"]
        setup = b""
        while True:
            try:
                chunk = os.read(job["setup_r"], MAX_MSG)
            except BlockingIOError:
                break
            if not chunk:
                break
            setup += chunk
        os.close(job["setup_r"])
        report = {
            "op": "done",
            "id": job_id,
            "timed_out": job["timed_out"],
            "killed": job["killed"],
            "exit": None,
            "signal": None,
            "time": elapsed,
            "cpu": 0.0,
            "maxrss_kb": 0,
            "error": None,
        }
        if usage is not None:
            report["cpu"] = usage.ru_utime + usage.ru_stime
            report["maxrss_kb"] = usage.ru_maxrss
        if wstatus is not None:
            if os.WIFSIGNALED(wstatus):
                report["signal"] = os.WTERMSIG(wstatus)
            else:
                report["exit"] = os.WEXITSTATUS(wstatus)
        failure, done, result = setup.partition(b"\x01")
        if failure and not job["killed"]:
            if failure[:1] == b"\x02":
                report["client_error"] = True
                report["error"] = "the request's files do not fit the work dir: " + failure[1:].decode(
                    "utf-8", "replace"
                )
            else:
                report["error"] = "sandbox setup failed: " + failure.decode("utf-8", "replace")
        elif done:
            if result:
                try:
                    extra = json.loads(result)
                    report["exit"], report["signal"] = extra.get("exit"), extra.get("signal")
                except ValueError:
                    pass
        elif not job["killed"]:
            report["error"] = "sandbox setup failed: no report"
        if not job["reported"]:
            self.send(report)  # first: the clean-up below is not the response's to wait for
        if job["init"] is not None:
            # The program is reaped: its pid namespace may go; its cgroups are reused once that is empty.
            self.end_init(job["init"], cgroup_paths=job["cgroup_paths"])
        else:
            self.cgroup_release(job["cgroup_paths"])
        if self.restricted:
            self.groups.add(job["pid"])
            self.reap_groups()
        if job["work_dir"]:
            self.remove_work_dir(job["work_dir"])

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
        self.make_spare()
        while True:
            now = time.monotonic()
            timeout = None
            for job_id, job in list(self.jobs.items()):
                if job["reported"]:
                    continue
                if job["deadline"] <= now and not job["killed"]:
                    self.kill(job_id, timed_out=True)
                elif not job["killed"]:
                    left = job["deadline"] - now
                    timeout = left if timeout is None else min(timeout, left)
            for pidfd, job in self.compiles.items():
                if job["killed"]:
                    continue
                if job["deadline"] <= now:
                    self.kill_compile(pidfd)
                else:
                    left = job["deadline"] - now
                    timeout = left if timeout is None else min(timeout, left)
            if self.groups:
                self.reap_groups()
                if self.groups:
                    timeout = 0.05 if timeout is None else min(timeout, 0.05)
            for key, _ in self.sel.select(timeout):
                if key.fileobj is self.sock:
                    self.on_ctrl()
                    continue
                job_id, kind = self.by_fd.get(key.fd, (None, None))
                if kind == "pid":
                    self.on_exit(job_id)
                elif kind == "exit":
                    self.on_exit_notice(job_id)
                elif kind == "compile":
                    self.on_compile_exit(job_id)
                elif kind == "cleaner":
                    self.on_cleaner_exit(job_id)
                elif kind == "spare":
                    self.on_spare_exit(job_id)
                elif kind == "init":
                    self.on_init_exit(job_id)


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
    restricted = cfg.get("mode") == "restricted"
    features = {}
    if restricted:
        # No namespaces: the zygote adopts what executions leave behind, and is not dumpable (its /proc entries
        # are root's, not readable by the programs that share its uid).
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        prctl(PR_SET_DUMPABLE, 0)
        abi = landlock_abi() if cfg.get("landlock", "auto") != "off" else 0
        if abi < cfg.get("landlock_min_abi", 6) and not cfg.get("allow_weaker"):
            sys.stderr.write(
                f"Landlock ABI {abi} on this kernel (needed: {cfg.get('landlock_min_abi', 6)}, Linux >= 6.12): "
                "restricted isolation refuses to start without it (setting allow_weaker_isolation accepts it)\n"
            )
            sys.exit(3)
        cfg["landlock_abi"] = abi
        cfg["landlock_scope"] = abi >= 6
        cfg["rule_fds"] = open_rule_fds(cfg.get("ro_paths", []))
        cfg["rw_rule_fds"] = open_rule_fds([(p, FS_WRITE_FILE) for p in cfg.get("rw_files", [])])
        loaded = _preload(cfg.get("preload", []))
        raw = base64.b64decode(cfg["seccomp_bpf"]) if cfg.get("seccomp_bpf") else b""
        cfg["seccomp_compiled"] = compile_raw_seccomp(raw) if raw else None
        prog = raw or None
        features = {
            "landlock_abi": abi,
            "landlock_rules": len(cfg["rule_fds"]) + len(cfg["rw_rule_fds"]),
            "uid_tasks": uid_tasks(),
            "uid": os.getuid(),
        }
    else:
        # Not dumpable: /proc/<pid>/{mem,environ,...} of the zygote and of the machine-code pid 1s, which share its
        # memory, stay closed to programs even if a kernel let the capability check pass (the programs make
        # their own process dumpable again in drop_to_sandbox_user).
        prctl(PR_SET_DUMPABLE, 0)
        device_nodes_readonly()
        # Abstract unix sockets live in the network namespace: without Landlock scoping, each execution gets its
        # own.
        cfg["landlock_scope"] = cfg.get("landlock", "auto") != "off" and landlock_abi() >= 6
        if not cfg["landlock_scope"]:
            cfg["netns_per_exec"] = True
        loaded = _preload(cfg.get("preload", []))
        prog = seccomp_program() if cfg.get("seccomp", True) else None
        cfg["seccomp_compiled"] = compile_seccomp(prog) if prog else None
    zygote = Zygote(cfg)
    gc.collect()
    gc.freeze()
    gc.disable()  # no collections in the zygote: forked children would copy every page a GC pass touches
    vm = anon = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    vm = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
    except OSError:
        pass
    zygote.send(
        {
            "op": "ready",
            "pid": os.getpid(),
            "preloaded": loaded,
            "seccomp": prog is not None,
            "abstract_unix_sockets": "landlock"
            if cfg["landlock_scope"]
            else ("not separated" if restricted else "netns per execution"),
            "mode": cfg.get("mode", "namespaces"),
            **features,
            "pid1": None if restricted else ("machine code" if zygote.init_code else "forked interpreter"),
            "address_space_bytes": vm,
            "private_bytes": anon,
            "python": sys.version.split()[0],
        }
    )
    try:
        zygote.loop()
    except EOFError:
        # The service closed the control socket (it is stopping): take every running execution with us. In
        # restricted mode nothing else would (no pid namespace: a program's children outlive their leader).
        for job in zygote.jobs.values():
            zygote.kill_tree(job)


if __name__ == "__main__":
    main()
