"""The local runner: the operator's plan for one PurpCodeRun, executed on this machine as subprocesses.

Work directory (default `./runs/<run name>`):
    artifacts/   the artifact layout the Jobs use (model/, synthesis/, rule_learning/, rl/, evaluation/, report/)
    configs/     one StageConfig JSON per stage (what the operator puts in each Job's pod annotation)
    logs/        one log per stage and per service
    state.json   per-stage status, timings and exit codes of the latest invocation

Resume: a stage whose `_SUCCESS` marker exists is skipped; any other stage is started again and resumes from its own
checkpoints. The report step re-runs whenever an earlier stage ran.

Ownership (purpcode.runner.owned): every stage and service dies with the runner, however it dies, and the work
directory's lock is held until the last of them is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from purpcode.data.schema import write_json_atomic
from purpcode.runner.owned import (
    MARKER_ENV,
    Guard,
    die_with_parent,
    run_processes,
    settle_state,
    stop_run_processes,
)
from purpcode.runner.progress import (
    Display,
    MetricsTail,
    StageView,
    fmt_seconds,
    infer_progress,
    make_display,
)
from purpcode.runner.services import (
    Service,
    ServiceError,
    judge_service,
    log_tail,
    sandbox_service,
    stop_process_group,
)
from purpcode.training.settings_guard import (
    GUARDED_STAGES,
    describe_changes,
    record_settings,
    settings_differences,
)
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.layout import SUCCESS_MARKER, Layout
from purpcode_operator.plan import (
    JUDGE_API_KEY_ENV,
    STAGE_SLUGS,
    RunPlan,
    ServiceEndpoints,
    StagePlan,
    build_plan,
)

LOG = logging.getLogger("purpcode.runner")
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
POLL_S = 0.5
STATE_FILE = "state.json"


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit)\b.*)$", re.MULTILINE)


def cause_of(log_tail_text: str) -> str:
    """': <the last exception line>' of a stage's log tail (e.g. the path and 'No space left on device'), or ''."""
    found = _ERROR_LINE.findall(log_tail_text)
    return f": {found[-1].strip()[:300]}" if found else ""


class StageFailed(RuntimeError):
    """A stage exited non-zero (or without its marker); the message names the log."""


class WorkdirBusy(RuntimeError):
    """Another run (or processes an earlier run left) still uses the work directory."""


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OS error the path it was about (a failed write() or fsync() names none)."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise


def os_error_line(err: OSError) -> str:
    """One line for an OS error: the path and the cause (e.g. 'No space left on device'), no traceback."""
    where = err.filename if err.filename is not None else ""
    cause = err.strerror or str(err)
    return f"{where}: {cause}" if where else cause


def accelerator_devices() -> list[str]:
    """GPU device nodes on this machine (NVIDIA, AMD), without importing torch."""
    dev = Path("/dev")
    return [str(p) for pattern in ("nvidia[0-9]*", "kfd") for p in dev.glob(pattern)]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of stage and service processes.

    OMP_WAIT_POLICY=PASSIVE: with the default spin-waiting, torch's OpenMP threads burn the CPU the other processes
    of the run (judge, sandbox) need; on a busy 2-core machine that made CPU generation ~10x slower.
    """
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not accelerator_devices():
        # DeepSpeed (imported by transformers when installed) otherwise warns in every process that it fell back to
        # the CPU: on a machine without GPU device nodes that is the expected case, not a warning.
        env.setdefault("DS_ACCELERATOR", "cpu")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[int]:
    """One runner per work directory at a time (two would race on the same stage outputs); yields the lock's fd.

    The runner passes that fd to its guard and its stages: the lock is held while any of them lives, so a rerun
    cannot start a second copy of a stage that is still running. The file holds the runner's pid for the message.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    lock = workdir / ".lock"
    fh = lock.open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            pids = run_processes(workdir)
            alive = holder.isdigit() and Path(f"/proc/{holder}").exists()
            who = f"`purpcode run` (pid {holder})" if alive else "`purpcode run`"
            procs = f"; its processes: {' '.join(map(str, pids))}" if pids else ""
            stop = (
                f"kill {holder}: its children stop with it" if alive else f"kill {' '.join(map(str, pids))}"
            )
            raise WorkdirBusy(
                f"another {who} is using {workdir} (lock {lock}){procs}. Wait for it, or stop it ({stop})"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield fh.fileno()
    finally:
        fh.close()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (e.g. `kill`, a CI timeout) and SIGHUP (the terminal or SSH session closed) like Ctrl-C: stop
    children cleanly, leave a resumable state."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def max_steps_of(stage: StagePlan) -> int | None:
    """The step cap a stage's spec sets (for a determinate progress bar), if any."""
    params = stage.config.params
    if stage.name == "rl":
        v = params.get("maxSteps", -1)
    elif stage.name == "ruleLearning":
        v = params.get("sft", {}).get("maxSteps", -1)
    else:
        return None
    return int(v) if isinstance(v, int) and v > 0 else None


class LocalRun:
    """Executes one run's plan in a work directory."""

    def __init__(
        self,
        run: PurpCodeRun,
        workdir: Path,
        *,
        display: Display,
        judge_backend: str = "auto",
        metrics_port: int | None = None,
        spec_path: str = "",
        lock_fd: int | None = None,
    ) -> None:
        self.run = run
        self.workdir = workdir.resolve()
        self.artifacts = self.workdir / "artifacts"
        self.configs = self.workdir / "configs"
        self.logs = self.workdir / "logs"
        self.layout = Layout(str(self.artifacts))
        self.display = display
        self.judge_backend = judge_backend
        self.metrics_port = metrics_port
        self.spec_path = spec_path
        self.services: dict[str, Service] = {}
        self.views: dict[str, StageView] = {}
        self.current: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}
        self.started = time.monotonic()
        self._error = ""
        self.lock_fd = lock_fd

    def child_env(self) -> dict[str, str]:
        """child_env() plus the run's marker: how leftovers of this run are found again (purpcode.runner.owned)."""
        return child_env({MARKER_ENV: str(self.workdir)})

    # ------------------------------------------------------------------ plan and services

    def marker(self, stage: str) -> Path:
        return Path(self.layout.success_marker(stage))

    def _make_services(self, needed: Collection[str]) -> ServiceEndpoints:
        """Create (not start) the services the remaining stages need; return the endpoints stages will use."""
        spec = self.run.spec
        judge = spec.services.judge
        sandbox_url = judge_url = None
        if "sandbox" in needed:
            svc = sandbox_service(self.logs, spec.services.sandbox.concurrency)
            svc.env.update(self.child_env())
            self.services["sandbox"] = svc
            sandbox_url = svc.url
        key_env = None
        if "judge" in needed:
            if judge.deploy is not None:
                backend = self.judge_backend
                if backend == "auto" and judge.deploy.gpus == 0:
                    backend = "transformers"  # the spec asks for a CPU judge
                local = Path(self.layout.judge_model)
                model = str(local) if (local / "config.json").exists() else judge.deploy.model
                from purpcode.judge_server.engine import is_local_path

                if is_local_path(model) and not Path(model).expanduser().is_dir():
                    raise RuntimeError(
                        f"services.judge.deploy.model: the local path {model} does not exist (give an existing "
                        "model directory, or a Hub id such as Qwen/Qwen2.5-32B-Instruct)"
                    )
                svc = judge_service(
                    model=model,
                    served_name=judge.model_name(),
                    logs=self.logs,
                    cache_dir=self.workdir / "cache",
                    max_model_len=judge.deploy.max_model_len,
                    tensor_parallel_size=judge.deploy.tensor_parallel_size or max(judge.deploy.gpus, 1),
                    backend=backend,
                )
                svc.env.update(self.child_env())
                self.services["judge"] = svc
                judge_url = svc.url
            else:
                judge_url = judge.url
                if judge.api_key_secret_ref is not None:
                    key_env = JUDGE_API_KEY_ENV
                    if not os.environ.get(JUDGE_API_KEY_ENV):
                        raise RuntimeError(
                            f"services.judge.apiKeySecretRef is set: export the judge's API key as "
                            f"{JUDGE_API_KEY_ENV} for a local run (the cluster reads the Secret)"
                        )
        return ServiceEndpoints(
            sandbox_url=sandbox_url,
            judge_url=judge_url,
            judge_model=judge.model_name(),
            judge_api_key_env=key_env,
            judge_max_tokens=judge.max_tokens,
            judge_concurrency=judge.concurrency,
            analyzer=spec.services.analyzer,
            sandbox_limits=spec.services.sandbox.limits,
        )

    def _ensure_services(self, names: Sequence[str]) -> None:
        """Start the stage's services if they are not running (first use, or a crash since), then wait for them."""
        starting = []
        for name in names:
            svc = self.services.get(name)
            if svc is None or svc.alive():
                continue
            if svc.proc is not None:
                self.display.message(f"[{name}] exited (status {svc.proc.returncode}): restarting it")
            svc.start()
            assert svc.proc is not None
            self.state.setdefault("services", {})[name] = {
                "pid": svc.proc.pid,
                "url": svc.url,
                "log": str(svc.log_path),
            }
            self._save_state()
            starting.append(svc)
        for svc in starting:
            svc.wait_ready()
            self.display.message(f"service {svc.name} ready at {svc.url}")

    def _stop_services(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()

    # ------------------------------------------------------------------ stages

    def _write_config(self, stage: StagePlan) -> Path:
        cfg = stage.config.model_copy(update={"metrics_port": self.metrics_port})
        path = self.configs / f"{stage.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with naming(path):
            write_json_atomic(path, json.loads(cfg.to_json()))
        return path

    def _summary(self, plan: RunPlan, view: StageView) -> str:
        idx = [s.name for s in plan.stages].index(view.name) + 1
        pct = f" {view.fraction * 100:.0f}%" if view.fraction is not None else ""
        detail = f" · {view.detail}" if view.detail else ""
        return (
            f"{self.run.metadata.name}: stage {idx}/{len(plan.stages)} {view.name}{pct}{detail}"
            f" · stage {fmt_seconds(view.seconds)} · total {fmt_seconds(time.monotonic() - self.started)}"
        )

    def changed_settings(self, plan: RunPlan) -> str | None:
        """Why the work directory cannot be reused under this spec, or None.

        A stage that finished (or started) under other result settings would be skipped (or resumed) silently: the
        message names the changed fields and the `--rerun` that redoes the earliest such stage and every later one.
        A stage from before settings were recorded adopts the current ones.
        """
        changes: dict[str, list[str]] = {}
        for stage in plan.stages:
            if stage.name not in GUARDED_STAGES:
                continue
            out = stage.config.paths.out
            changed = settings_differences(out, stage.config)
            if changed:
                changes[stage.name] = changed
            elif changed is None and self.marker(stage.name).exists():
                record_settings(out, stage.config)
        if not changes:
            return None
        first = next(iter(changes))
        lines = [f"{name}: {describe_changes(c)}" for name, c in changes.items()]
        return (
            f"settings changed since the work in {self.workdir} was done ({' | '.join(lines)}). Reusing it would "
            f"mix both. Run again with `--rerun {first}` to redo {first} and every later stage, or restore the "
            "settings."
        )

    def _run_stage(self, plan: RunPlan, stage: StagePlan, view: StageView) -> None:
        if stage.name in GUARDED_STAGES:
            record_settings(stage.config.paths.out, stage.config)
        config_path = self._write_config(stage)
        argv = stage.argv(str(config_path), python=sys.executable)
        log_path = self.logs / f"{stage.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tail = MetricsTail(Path(stage.config.paths.out) / "metrics.jsonl")
        max_steps = max_steps_of(stage)
        needed = [self.services[n] for n in stage.needs if n in self.services]
        with log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self.current = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.child_env(),
                start_new_session=True,
                preexec_fn=die_with_parent(),
                # The stage holds the workdir lock too: no rerun starts while it lives, even if the runner is gone.
                pass_fds=(self.lock_fd,) if self.lock_fd is not None else (),
                cwd=str(self.workdir),
            )
        proc = self.current
        self.state["stages"][stage.name]["pid"] = proc.pid
        self._save_state()
        view.status, view.started, view.ended = "running", time.monotonic(), None
        self.display.event(view)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                view.fraction, view.detail = infer_progress(tail.poll(), max_steps)
                self.display.refresh(self._summary(plan, view))
                dead = [s for s in needed if not s.alive()]
                if dead:
                    raise StageFailed(
                        f"service {dead[0].name} died while {stage.name} ran (log {dead[0].log_path}):\n"
                        f"{log_tail(dead[0].log_path, 1500)}"
                    )
        except BaseException:
            # Ctrl-C, SIGTERM or a dead service: the stage's whole process group goes before anything else.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                stop_process_group(proc)
            finally:
                signal.signal(signal.SIGINT, previous)
            raise
        finally:
            self.current = None
        view.ended = time.monotonic()
        self.state["stages"][stage.name].update(exit_code=rc, log=str(log_path))
        if rc != 0:
            last = log_tail(log_path)
            raise StageFailed(
                f"stage {stage.name} failed with exit status {rc}{cause_of(last)} (log {log_path}):\n{last}"
            )
        if not self.marker(stage.name).exists():
            raise StageFailed(
                f"stage {stage.name} exited 0 but wrote no {SUCCESS_MARKER} in {stage.config.paths.out} "
                f"(log {log_path})"
            )

    def _save_state(self) -> None:
        self.state["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.state["wall_seconds"] = round(time.monotonic() - self.started, 1)
        with naming(self.workdir / STATE_FILE):
            write_json_atomic(self.workdir / STATE_FILE, self.state)

    def _record(self, view: StageView) -> None:
        entry = self.state["stages"].setdefault(view.name, {})
        entry["status"] = view.status
        if view.started is not None:
            entry["seconds"] = round(view.seconds, 1)
        self._save_state()

    # ------------------------------------------------------------------ the run

    def rerun_from(self, stage: str) -> list[str]:
        """Clear the directories of `stage` and every later stage, so they run again from scratch; returns the
        stages reset.

        Why the whole directory and not just the marker: a stage resumes from what it finds (samples, checkpoints),
        and refuses to when the spec changed since (purpcode.training.settings_guard). A rerun means "again".
        """
        names = [s.name for s in build_plan(self.run, artifacts_root=str(self.artifacts)).stages]
        if stage not in names:
            raise ValueError(f"--rerun {stage!r}: the plan's stages are {', '.join(names)}")
        reset = names[names.index(stage) :]
        for name in reset:
            self.marker(name).unlink(missing_ok=True)  # first: a crash while clearing still reruns the stage
            shutil.rmtree(self.layout.stage_dir(name), ignore_errors=True)
        return reset

    def execute(self) -> int:
        name = self.run.metadata.name
        earlier: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            earlier = json.loads((self.workdir / STATE_FILE).read_text(encoding="utf-8")).get("stages", {})
        self.state = {"run": name, "spec": self.spec_path, "workdir": str(self.workdir), "stages": earlier}
        draft = build_plan(self.run, artifacts_root=str(self.artifacts))
        for s in draft.stages:  # finished is finished, whatever the last (maybe interrupted) state save said
            entry = earlier.get(s.name)
            if isinstance(entry, dict) and entry.get("status") != "done" and self.marker(s.name).exists():
                entry.update(status="done")
                entry.pop("pid", None)
        changed = self.changed_settings(draft)
        if changed:
            self.display.message(f"purpcode run: {changed}")
            return EXIT_INVALID
        remaining = [s for s in draft.stages if not self.marker(s.name).exists()]
        if any(s.name != "report" for s in remaining):
            self.marker("report").unlink(missing_ok=True)  # the report must reflect what runs now
            if all(s.name != "report" for s in remaining):
                remaining.append(draft.stage("report"))
        needed = {svc for s in remaining for svc in s.needs}
        try:
            endpoints = self._make_services(needed)
        except RuntimeError as err:
            self.display.message(f"purpcode run: {err}")
            return EXIT_INVALID
        plan = build_plan(self.run, artifacts_root=str(self.artifacts), endpoints=endpoints)
        self.views = {s.name: StageView(s.name) for s in plan.stages}
        pending = {s.name for s in remaining}
        for v in self.views.values():
            if v.name not in pending:
                v.status = "skipped"
        title = (
            f"purpcode run {name}: {len(plan.stages)} steps, {len(plan.stages) - len(pending)} already done · "
            f"workdir {self.workdir}"
        )
        self.display.start(list(self.views.values()), title)
        code = EXIT_OK
        current: StageView | None = None
        try:
            for stage in plan.stages:
                view = self.views[stage.name]
                if view.status == "skipped":
                    continue
                current = view
                self._ensure_services(stage.needs)
                self.state["stages"][stage.name] = {"status": "running", "slug": STAGE_SLUGS[stage.name]}
                self._run_stage(plan, stage, view)
                view.status = "done"
                self.display.event(view)
                self._record(view)
                current = None
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
            if self.current is not None:
                stop_process_group(self.current)
            if current is not None:
                current.status, current.ended = "interrupted", time.monotonic()
                self.display.event(current)
                self._record(current)
        except (StageFailed, ServiceError, OSError) as err:
            code = EXIT_FAILED
            self._error = os_error_line(err) if isinstance(err, OSError) else str(err)
            if current is not None:
                current.status, current.ended = "failed", time.monotonic()
                with contextlib.suppress(OSError):  # the disk may still be full: the error above says so
                    self.display.event(current)
                    self._record(current)
        finally:
            # A second Ctrl-C (or a SIGTERM/SIGHUP) must not cut the clean-up short and leave services behind.
            previous = {
                sig: signal.signal(sig, signal.SIG_IGN)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            }
            try:
                if self.current is not None:
                    stop_process_group(self.current)
                self._stop_services()
                # Whatever left its process group (a fork-server's children in their own sessions) goes too.
                stop_run_processes(self.workdir)
                with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) must not stop the clean-up
                    self.display.stop()
                try:
                    self._save_state()
                except OSError as err:
                    if code == EXIT_OK:
                        code, self._error = EXIT_FAILED, os_error_line(err)
            finally:
                for sig, old in previous.items():
                    signal.signal(sig, old)
        with contextlib.suppress(OSError):
            self._final_message(code)
        return code

    def _final_message(self, code: int) -> None:
        total = fmt_seconds(time.monotonic() - self.started)
        report = Path(self.layout.stage_dir("report")) / "report.md"
        if code == EXIT_OK:
            self.display.message(f"run {self.run.metadata.name} finished in {total}. Report: {report}")
        elif code == EXIT_INTERRUPTED:
            self.display.message(
                f"interrupted after {total}: children and services stopped. Run the same command again to resume "
                "(finished stages are skipped)."
            )
        else:
            self.display.message(f"run {self.run.metadata.name} failed after {total}: {self._error}")
            self.display.message("Fix the cause and run the same command again: finished stages are skipped.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="purpcode run",
        description="Run a PurpCodeRun spec locally: services plus every stage as a subprocess, resumable.",
    )
    p.add_argument(
        "spec", metavar="SPEC", help="A PurpCodeRun YAML/JSON file (e.g. manifests/samples/tiny-cpu.yaml)."
    )
    p.add_argument("--workdir", default=None, help="Work directory (default: ./runs/<run name>).")
    p.add_argument(
        "--plain", action="store_true", help="Plain progress lines (default when stdout is no terminal)."
    )
    p.add_argument(
        "--judge-backend",
        choices=["auto", "vllm", "transformers"],
        default="auto",
        help="Local judge server: auto = vLLM with a GPU and vLLM (and judge gpus > 0), else transformers.",
    )
    p.add_argument(
        "--metrics-port", type=int, default=None, help="Serve each stage's Prometheus metrics here."
    )
    p.add_argument(
        "--rerun",
        metavar="STAGE",
        default=None,
        help="Run STAGE and every later stage again from scratch (their artifact directories are cleared first).",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from purpcode_operator.validate import SpecError, load_run

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run = load_run(args.spec)
    except SpecError as err:
        for problem in err.problems:
            print(f"{args.spec}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as err:
        print(f"purpcode run: cannot read {args.spec}: {err}", file=sys.stderr)
        return EXIT_INVALID
    workdir = Path(args.workdir) if args.workdir else Path("runs") / run.metadata.name
    display = make_display(True if args.plain else None)
    runner = LocalRun(
        run,
        workdir,
        display=display,
        judge_backend=args.judge_backend,
        metrics_port=args.metrics_port,
        spec_path=str(args.spec),
    )
    guard: Guard | None = None
    try:
        with workdir_lock(workdir) as lock_fd, sigterm_as_interrupt():
            runner.lock_fd = lock_fd
            leftovers = stop_run_processes(workdir)
            if leftovers:
                display.message(
                    f"stopped {len(leftovers)} process(es) an earlier run on {workdir} left behind: "
                    + " ".join(map(str, leftovers))
                )
            settle_state(workdir, "no process ran this stage any more when the next run started")
            guard = Guard(runner.workdir, lock_fd)
            if args.rerun:
                try:
                    reset = runner.rerun_from(args.rerun)
                except ValueError as err:
                    print(f"purpcode run: {err}", file=sys.stderr)
                    return EXIT_INVALID
                display.message(f"re-running: {', '.join(reset)}")
            return runner.execute()
    except OSError as err:
        print(f"purpcode run: {os_error_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # before or after the stages (execute() handles it while they run)
        with contextlib.suppress(OSError):
            print("purpcode run: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as err:
        print(f"purpcode run: {err}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        if guard is not None:
            guard.goodbye()
