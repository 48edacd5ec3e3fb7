"""Run a command the way a container of a restricted-Pod-Security pod runs: uid/gid 65534, no capabilities,
no_new_privs, and a seccomp filter that refuses to create namespaces (RuntimeDefault refuses `unshare`, `setns`
and `clone` with namespace flags to a process without CAP_SYS_ADMIN; `clone3` gets ENOSYS so libc falls back to
`clone`). A sandbox mode that silently relied on user namespaces fails under it (bubblewrap cannot start).

Usage (as root): python restricted_pod.py COMMAND [ARGS...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

import pyseccomp as sc

UID = 65534
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
PR_SET_NO_NEW_PRIVS = 38


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: restricted_pod.py COMMAND [ARGS...]")
    os.setgroups([])
    os.setresgid(UID, UID, UID)
    os.setresuid(UID, UID, UID)  # a non-root uid: every capability is gone with it
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    flt.add_rule(eperm, "unshare")
    flt.add_rule(eperm, "setns")
    for flag in CLONE_NS_FLAGS:
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.load()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
