"""Hostile code against the real service: each run is contained, the service keeps serving, nothing is left.

Every test ends with `sandbox.assert_serving_and_clean()`: a trivial run still succeeds, /healthz is 200 and the
service has no process left from the hostile run (its whole pid namespace is gone).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
from sandbox_util import SECRET, Sandbox, descendants, proc_status

from purpcode.sandbox import server as server_module
from purpcode.sandbox.client import SandboxClientError
from purpcode.sandbox.jail import interpreter_paths, kept_binds
from purpcode.sandbox.models import RunCodeResponse


@pytest.fixture(autouse=True)
def _after(sandbox: Sandbox):
    yield
    sandbox.assert_serving_and_clean()


def test_identity_and_privileges(sandbox: Sandbox) -> None:
    code = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(os.getuid(), os.getgid(), os.getpid(), os.getcwd())
print(status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip(), status["Seccomp"].strip())
try:
    procs = sorted(os.listdir("/proc"))[:3]
except OSError as err:
    procs = type(err).__name__
try:
    sys_visible = bool(os.listdir("/sys"))
except OSError:
    sys_visible = False
print(procs, sys_visible, sorted(os.environ))
print(status["TracerPid"].strip(), open("/proc/self/oom_score_adj").read().strip())
"""
    r = sandbox.run(code)
    assert r.status == "Success", r
    lines = r.run_result.stdout.splitlines()
    cap_eff, cap_bnd, no_new_privs, seccomp = lines[1].split()
    assert (cap_eff, no_new_privs, seccomp) == ("0000000000000000", "1", "2")  # no capability, filter on
    assert "PURPCODE_TEST_SECRET" not in lines[2] and "TMPDIR" in lines[2]
    if sandbox.mode == "namespaces":
        assert lines[0] == "65534 65534 2 /sandbox"  # pid 1 of its namespace is its parent (see zygote.py)
        assert cap_bnd == "0000000000000000"
        assert lines[2].startswith("['1', '2', 'self'")  # only its own pid ns
        assert "False" in lines[2]
    else:
        uid, gid, pid, cwd = lines[0].split()
        assert (uid, gid) == ("65534", "65534") and pid != "1"  # the pod's uid, no pid namespace
        assert cwd.startswith(sandbox.health()["isolation"]["work_root"] + "/")
        assert lines[2].startswith("PermissionError False")  # Landlock: no /proc listing, no /sys
        assert lines[3] == "0 1000"  # not traced; the OOM killer takes executions before the service


def test_fork_bomb(sandbox: Sandbox) -> None:
    code = """
import os
n = 0
while True:
    try:
        if os.fork() == 0:
            while True:
                pass
        n += 1
    except OSError:
        pass
"""
    started = time.monotonic()
    r = sandbox.run(code, run_timeout=2)
    assert r.run_result.status == "TimeLimitExceeded"
    assert time.monotonic() - started < 15


def test_process_limit_is_enforced(sandbox: Sandbox) -> None:
    code = """
import os, time
pids = []
try:
    for _ in range(200):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as err:
    print("limited", len(pids), err.errno)
"""
    r = sandbox.run(code.replace("range(200)", "range(400)"), run_timeout=10)
    assert r.status == "Success", r
    assert r.run_result.stdout.startswith("limited")
    assert int(r.run_result.stdout.split()[1]) < sandbox.max_tasks()


def test_thread_bomb(sandbox: Sandbox) -> None:
    code = """
import threading, time
threads = []
try:
    while True:
        t = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        t.start()
        threads.append(t)
except (RuntimeError, MemoryError) as err:
    print("limited", len(threads))
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Success", r
    assert r.run_result.stdout.startswith("limited")
    assert int(r.run_result.stdout.split()[1]) < sandbox.max_tasks()


def test_memory_bomb(sandbox: Sandbox) -> None:
    r = sandbox.run("x = bytearray(8 << 30)\n", run_timeout=10)
    assert r.status == "Failed" and "MemoryError" in r.run_result.stderr
    code = """
chunks = []
while True:
    chunks.append(bytearray(16 << 20))
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Failed"
    assert "MemoryError" in r.run_result.stderr or r.run_result.return_code == -9


def test_disk_fill(sandbox: Sandbox) -> None:
    code = """
import os
written = 0
for target in ("big.bin", "/tmp/big.bin"):
    try:
        with open(target, "wb") as fh:
            while True:
                fh.write(b"x" * (1 << 20))
                written += 1
    except OSError as err:
        print(target, "stopped", err.errno)
print("MiB", written)
"""
    r = sandbox.run(code, run_timeout=20)
    assert r.status == "Success", r
    out = r.run_result.stdout
    assert "big.bin stopped" in out and "/tmp/big.bin stopped" in out
    assert int(out.split("MiB")[1]) <= 2 * 16  # tmpfs of 16 MiB each, file size limit 8 MiB


def test_hundred_megabytes_of_output(sandbox: Sandbox) -> None:
    started = time.monotonic()
    r = sandbox.run(
        "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n", run_timeout=30
    )
    assert r.status == "Failed"
    assert "output limit" in r.message
    assert len(r.run_result.stdout) == 1 << 20  # capped, never buffered beyond the limit
    assert time.monotonic() - started < 20


def test_infinite_loop(sandbox: Sandbox) -> None:
    started = time.monotonic()
    r = sandbox.run("while True:\n    pass\n", run_timeout=1)
    assert r.status == "Failed" and r.run_result.status == "TimeLimitExceeded"
    assert time.monotonic() - started < 10


def test_sleep_past_the_timeout(sandbox: Sandbox) -> None:
    started = time.monotonic()
    r = sandbox.run("import time\nprint('before', flush=True)\ntime.sleep(60)\n", run_timeout=1)
    assert r.run_result.status == "TimeLimitExceeded"
    assert r.run_result.stdout == "before\n"
    assert time.monotonic() - started < 10


def test_sigterm_trapped(sandbox: Sandbox) -> None:
    code = """
import os, signal, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
if os.fork() == 0:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        time.sleep(0.1)
while True:
    time.sleep(0.1)
"""
    r = sandbox.run(code, run_timeout=1)
    assert r.run_result.status == "TimeLimitExceeded"


def test_orphans_and_zombies_are_reaped(sandbox: Sandbox) -> None:
    code = """
import os, time
for _ in range(5):
    if os.fork() == 0:          # a zombie: exits, never waited for
        os._exit(0)
for _ in range(3):
    if os.fork() == 0:          # a daemon: double fork, new session, outlives its parent
        os.setsid()
        if os.fork() == 0:
            time.sleep(300)
        os._exit(0)
time.sleep(0.2)
print("main exits")
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Success" and r.run_result.stdout == "main exits\n"
    # assert_serving_and_clean (autouse) checks that none of the 8 processes survives.


def test_orphans_are_reaped_while_the_program_runs(sandbox: Sandbox) -> None:
    """Orphans end up with pid 1 of the execution's namespace (namespaces mode: the zygote's machine-code init,
    which leaves SIGCHLD ignored so the kernel reaps them at once). Unreaped they would stay zombies and count
    against the execution's process limit (32 here), so 96 short-lived orphans in a row would run out of it."""
    code = """
import os, time
failed = 0
for i in range(96):
    pid = os.fork()
    if pid == 0:
        try:
            if os.fork() == 0:  # the grandchild: orphaned when its parent exits, then exits itself
                time.sleep(0.005)
                os._exit(0)
        except OSError:         # EAGAIN: the process limit, full of unreaped orphans
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
time.sleep(0.05)
print("forked", i + 1, "failed", failed)
"""
    r = sandbox.run(code, run_timeout=20)
    assert r.status == "Success" and r.run_result.stdout == "forked 96 failed 0\n", r


def test_pid1_of_an_execution_is_out_of_reach(sandbox: Sandbox) -> None:
    """Namespaces mode: pid 1 of an execution is a clone of the zygote that shares its memory and runs a few
    machine instructions (`zygote.clone_init`). The program (pid 2) can reach none of it: no fd, no memory, no
    environment, no link, and its signals do not end it (nor the zygote: the next run works)."""
    if sandbox.mode != "namespaces":
        pytest.skip("restricted mode has no pid namespace per execution")
    assert sandbox.health()["isolation"]["pid1"] == "machine code"  # type: ignore[index]
    code = """
import os, signal
print("me", os.getpid(), os.getppid())
print("fds", os.listdir("/proc/1/fd"))
for p in ("mem", "maps", "environ", "stack", "syscall", "auxv", "pagemap"):
    try:
        fd = os.open(f"/proc/1/{p}", os.O_RDWR if p == "mem" else os.O_RDONLY)
        print("OPENED", p, os.read(fd, 16))
    except OSError:
        pass
for p in ("exe", "cwd", "root"):
    try:
        print("LINK", p, os.readlink(f"/proc/1/{p}"))
    except OSError:
        pass
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSEGV, signal.SIGCHLD, signal.SIGSTOP):
    try:
        os.kill(1, sig)
    except OSError:
        pass
print("still here")
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Success", r
    assert r.run_result.stdout == "me 2 0\nfds []\nstill here\n", r.run_result.stdout
    again = sandbox.run("print('next')", run_timeout=10)
    assert again.status == "Success" and again.run_result.stdout == "next\n"
    # The prepared pid 1s (one per zygote): no signal handler (nothing may run on their small stack in the
    # zygote's memory), nothing blocked (signals sent to them are discarded), every signal ignored, no fd.
    # The last execution's pid 1 is killed after its result is sent, so one found in the scan may be gone (or a
    # zombie) by the time it is read: those are skipped, and the scan repeats until a live one was checked.
    checked = 0
    deadline = time.monotonic() + 10
    while not checked and time.monotonic() < deadline:
        for pid in descendants(sandbox.service.proc.pid):
            st = proc_status(pid)
            nspid = (st.get("NSpid") or "").split()
            if len(nspid) < 3 or nspid[-1] != "1" or st.get("State", "Z")[0] in "ZX" or "SigCgt" not in st:
                continue
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except FileNotFoundError:  # ended meanwhile
                continue
            assert (st["SigCgt"], st["SigBlk"], st["SigIgn"]) == ("0" * 16, "0" * 16, "fffffffffffbfeff"), st
            assert fds == []
            checked += 1
        if not checked:
            time.sleep(0.1)
    assert checked, "no live pid 1 of a prepared execution found"


def test_no_network(sandbox: Sandbox) -> None:
    port = int(sandbox.url.rsplit(":", 1)[1])
    code = f"""
import socket
import sys
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80), ("8.8.8.8", 53)):
    try:
        s = socket.socket()
        s.settimeout(2)
        s.connect((host, port))
        print("CONNECTED", host)
    except OSError as err:
        print("refused", host, err.errno)
try:
    print("RESOLVED", socket.getaddrinfo("example.com", 80))
except OSError as err:
    print("no dns", type(err).__name__)
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("8.8.8.8", 53))
    print("SENT")
except OSError as err:
    print("no udp", err.errno)
import os
try:
    print(sorted(os.listdir("/sys/class/net")))
except OSError:
    print("no /sys")
"""
    r = sandbox.run(code, run_timeout=20)
    assert r.status == "Success", r
    out = r.run_result.stdout
    assert "CONNECTED" not in out and "RESOLVED" not in out and "SENT" not in out
    assert out.count("refused") == 3 and "no dns" in out and "no udp" in out


def test_host_files_are_not_visible(sandbox: Sandbox, tmp_path: Path) -> None:
    server_file = Path(server_module.__file__).resolve()
    host_secret = tmp_path / "secret.txt"
    host_secret.write_text(SECRET)
    code = f"""
import os
paths = ["/etc/shadow", {str(server_file)!r}, {str(host_secret)!r}, "/root/.bashrc", "/proc/self/root/etc/shadow",
         "/proc/1/root/etc/shadow", "/var/run/secrets/kubernetes.io/serviceaccount/token",
         "/proc/1/root" + {str(server_file)!r}]
for p in paths:
    try:
        with open(p) as fh:
            print("READ", p, fh.read(40))
    except OSError as err:
        print("denied", p, type(err).__name__)
env = repr(dict(os.environ))
for p in ("/proc/1/environ", "/proc/self/environ"):
    try:
        env += open(p).read()
    except OSError:
        env += "unreadable"
print("secret in env:", {SECRET!r} in env)
try:
    print(sorted(os.listdir("/proc/self/root")))
except OSError as err:
    print("denied /proc/self/root", type(err).__name__)
os.symlink("/etc", "etc_link")
os.symlink({str(server_file.parent)!r}, "src_link")
for p in ("etc_link/shadow", "src_link/server.py"):
    try:
        print("READ", p, open(p).read(20))
    except OSError as err:
        print("denied", p, type(err).__name__)
"""
    r = sandbox.run(code, run_timeout=10, fetch_files=["etc_link/passwd", "src_link/server.py"])
    assert r.status == "Success", r
    out = r.run_result.stdout
    assert "READ" not in out, out
    assert "secret in env: False" in out
    assert SECRET not in out
    assert r.files == {}  # fetch_files never follows a link out of the work dir
    listing = out.splitlines()[-3]
    assert "home" not in listing and "boot" not in listing


def kept_in_tmp() -> list[str]:
    """What a fresh /tmp holds: nothing but the read-only interpreter binds that live under /tmp on this host (a
    virtualenv in a checkout under /tmp)."""
    return sorted({path.split("/")[2] for _, path in kept_binds(interpreter_paths(sys.executable))})


def test_writing_outside_the_work_dir_fails(sandbox: Sandbox) -> None:
    code = """
import os
import glob
import tempfile
targets = ["/usr/evil", "/etc/passwd", "/evil", "/bin/evil", "/proc/sys/kernel/hostname", "/dev/evil", "/dev/shm/../evil"]
if tempfile.gettempdir() != "/tmp":
    targets += ["/tmp/evil", "/dev/shm/evil", os.path.dirname(os.getcwd()) + "/evil"]
targets += glob.glob("/cgroup/*/*/*.limit_in_bytes") + glob.glob("/cgroup/*/*/pids.max") + glob.glob("/cgroup/*/cgroup.procs")
print("cgroup tree visible:", os.listdir("/cgroup") if os.path.isdir("/cgroup") else None)
for p in targets:
    try:
        with open(p, "a") as fh:
            fh.write("x")
        print("WROTE", p)
    except OSError as err:
        print("denied", p, err.errno)
with open(os.path.join(tempfile.gettempdir(), "private-marker"), "w") as fh:
    fh.write("mine")
print("tmp ok")
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Success", r
    assert "WROTE" not in r.run_result.stdout and "tmp ok" in r.run_result.stdout
    assert (
        "cgroup tree visible: []" in r.run_result.stdout or "cgroup tree visible: None" in r.run_result.stdout
    )
    later = sandbox.run(
        "import os, tempfile\nprint(sorted(os.listdir(tempfile.gettempdir())), os.listdir('.'))\n"
    )
    # A fresh, private work dir and temporary dir (in restricted mode the temporary dir is the work dir).
    tmp = kept_in_tmp() if sandbox.mode == "namespaces" else ["main.py"]
    assert later.run_result.stdout == f"{tmp} ['main.py']\n"


def test_killing_the_parent_and_pid_1(sandbox: Sandbox) -> None:
    code = """
import os, signal
print("pid", os.getpid(), "ppid", os.getppid())
for target in (1, os.getppid() or 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as err:
        print("kill failed", err.errno)
try:
    os.kill(-1, signal.SIGKILL)   # everything this process may signal: nothing outside its own namespace
except OSError as err:
    print("kill -1 failed", err.errno)
print("still alive")
"""
    r = sandbox.run(code, run_timeout=10)
    assert "still alive" in r.run_result.stdout or r.run_result.return_code == -9
    assert r.status in ("Success", "Failed")


def test_ptrace_and_namespace_escapes_are_refused(sandbox: Sandbox) -> None:
    code = """
import ctypes, os
libc = ctypes.CDLL("libc.so.6", use_errno=True)
child = os.fork()
if child == 0:
    import time
    time.sleep(30)
    os._exit(0)
print("ptrace", libc.ptrace(16, child, 0, 0), ctypes.get_errno())          # PTRACE_ATTACH
print("traceme", libc.ptrace(0, 0, 0, 0), ctypes.get_errno())               # PTRACE_TRACEME
print("unshare", libc.unshare(0x10000000), ctypes.get_errno())              # CLONE_NEWUSER
print("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
print("chroot", libc.chroot(b"/tmp"), ctypes.get_errno())
os.kill(child, 9)
"""
    r = sandbox.run(code, run_timeout=10)
    assert r.status == "Success", r
    for line in r.run_result.stdout.splitlines():
        name, ret, err = line.split()
        assert ret == "-1" and err == "1", line  # EPERM from the seccomp filter


def test_very_long_source(sandbox: Sandbox) -> None:
    code = "s = '" + "a" * (6 << 20) + "'\nprint(len(s))\n"  # 6 MiB of source in one line
    r = sandbox.run(code, run_timeout=60)
    assert r.status == "Success", r.message
    assert r.run_result.stdout == f"{6 << 20}\n"
    code = "x = 0\n" + "x += 1\n" * 50_000 + "print(x)\n"  # 50k statements
    r = sandbox.run(code, run_timeout=60)
    assert r.status == "Success", r.message
    assert r.run_result.stdout == "50000\n"
    huge = "#" * (20 << 20)  # beyond max_payload_bytes (16 MiB): refused before anything runs
    with pytest.raises(SandboxClientError) as err:
        sandbox.run(huge)
    assert err.value.status_code == 413


def test_executions_cannot_see_each_other(sandbox: Sandbox) -> None:
    """A running execution's files, /proc entries and process are out of reach of a concurrent one."""
    import threading

    holder = """
import os, sys, tempfile, time
open(os.path.join(tempfile.gettempdir(), "held"), "w").write("x")
open("held", "w").write("x")
print(os.getpid(), os.getcwd(), flush=True)
time.sleep(3)
print("holder survived")
"""
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(r=sandbox.run(holder, run_timeout=10)))
    t.start()
    time.sleep(1.0)
    r = sandbox.run(
        "import os, tempfile\nprint(sorted(os.listdir(tempfile.gettempdir())), os.listdir('.'))\n"
        "try:\n    print(sorted(os.listdir('/proc'))[:2])\nexcept OSError as err:\n    print(type(err).__name__)\n"
    )
    t.join()
    held = box["r"]
    assert isinstance(held, RunCodeResponse) and held.run_result is not None
    assert held.run_result.stdout.endswith("holder survived\n"), held
    if sandbox.mode == "namespaces":
        assert r.run_result.stdout == f"{kept_in_tmp()} ['main.py']\n['1', '2']\n"
    else:
        assert r.run_result.stdout == "['main.py'] ['main.py']\nPermissionError\n"


def test_concurrent_execution_cannot_be_reached_by_pid(sandbox: Sandbox) -> None:
    """Restricted mode shares the uid and has no pid namespace: a prober that signals every pid below its own and
    reads their /proc entries reaches nothing (Landlock scopes signals; /proc is its own entry only), and the
    directory that holds all work dirs cannot be listed. A concurrent holder and the service survive it."""
    import threading

    holder = "import time\nopen('held', 'w').write('x')\ntime.sleep(4)\nprint('holder survived')\n"
    box: dict[str, object] = {}
    t = threading.Thread(target=lambda: box.update(r=sandbox.run(holder, run_timeout=10)))
    t.start()
    time.sleep(1.5)
    probe = """
import os, signal
me = os.getpid()
reached = []
for pid in range(max(2, me - 3000), me):
    try:
        os.kill(pid, signal.SIGKILL)
        reached.append(("kill", pid))
    except OSError:
        pass
    for entry in ("status", "environ", "cmdline"):
        try:
            open(f"/proc/{pid}/{entry}").read()
            reached.append((entry, pid))
        except OSError:
            pass
try:
    print("LISTED", os.listdir(os.path.dirname(os.getcwd())))
except OSError as err:
    print("listing refused", type(err).__name__)
print("reached", reached)
"""
    r = sandbox.run(probe, run_timeout=30)
    t.join()
    held = box["r"]
    assert isinstance(held, RunCodeResponse) and held.run_result is not None
    assert held.run_result.stdout == "holder survived\n", held
    assert r.status == "Success", r
    assert "reached []" in r.run_result.stdout, r.run_result.stdout
    if sandbox.mode == "restricted":
        assert "listing refused PermissionError" in r.run_result.stdout


def test_sandbox_code_cannot_reach_the_host_socket(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    try:
        code = f"""
import socket
import sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({str(path)!r})
    print("CONNECTED")
except OSError as err:
    print("refused", type(err).__name__)
"""
        r = sandbox.run(code, run_timeout=10)
        assert "refused" in r.run_result.stdout
    finally:
        srv.close()
        os.unlink(path)


def test_ipc_objects_do_not_cross_executions(sandbox: Sandbox) -> None:
    """System V shared memory and message queues outlive their creator: one execution could leave data (or hold
    memory) for the next. Namespaces mode gives each execution its own IPC namespace; restricted mode (one IPC
    namespace for the pod) refuses them, and memfd, whose pages no address-space limit counts."""
    key = 0x5EC0DE
    writer = f"""
import ctypes, os
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget({key}, 4096, 0o1666)          # IPC_CREAT | 0666
print("shmget", shm if shm < 0 else "ok", ctypes.get_errno() if shm < 0 else 0)
if shm >= 0:
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, b"left-behind", 11)
q = libc.msgget({key}, 0o1666)
print("msgget", q if q < 0 else "ok", ctypes.get_errno() if q < 0 else 0)
try:
    os.memfd_create("x")
    print("memfd ok")
except OSError as err:
    print("memfd refused", err.errno)
"""
    r = sandbox.run(writer, run_timeout=10)
    assert r.status == "Success", r
    if sandbox.mode == "restricted":
        assert r.run_result.stdout == "shmget -1 1\nmsgget -1 1\nmemfd refused 1\n"
    else:
        assert r.run_result.stdout == "shmget ok 0\nmsgget ok 0\nmemfd ok\n"
    reader = f"""
import ctypes
libc = ctypes.CDLL("libc.so.6", use_errno=True)
print(libc.shmget({key}, 0, 0), libc.msgget({key}, 0))
"""
    r = sandbox.run(reader, run_timeout=10)
    assert r.run_result.stdout == "-1 -1\n", r  # nothing the writer made is there


def test_pathname_sockets_and_subprocesses(sandbox: Sandbox) -> None:
    """Restricted mode: Landlock does not check connect() on pathname unix sockets, so an execution may not create
    one at all (no MAKE_SOCK right): another execution of the same uid could otherwise connect to it. FIFOs and
    child processes (fork, exec of the interpreter, a pipe between them) keep working in both modes."""
    code = """
import os, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.bind("sock")
    print("bound")
except OSError as err:
    print("bind refused", type(err).__name__)
os.mkfifo("fifo")
out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True).stdout
print("child", out.strip())
"""
    r = sandbox.run(code, run_timeout=20)
    assert r.status == "Success", r
    first = "bind refused PermissionError" if sandbox.mode == "restricted" else "bound"
    assert r.run_result.stdout == f"{first}\nchild 42\n"
