"""Settings of the sandbox service: limits, admission control, isolation knobs.

Read from `PURPCODE_SANDBOX_<FIELD>` environment variables (JSON for lists) or the CLI; the chart sets them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LOG = logging.getLogger(__name__)
ENV_PREFIX = "PURPCODE_SANDBOX_"
# Names the operator sets (operator/purpcode_operator/render.py sandbox_env) -> the settings they feed.
_ALIASES: dict[str, tuple[str, ...]] = {
    "CONCURRENCY": ("max_concurrency",),
    "RUN_TIMEOUT_SECONDS": ("max_run_timeout_s",),
    "MEMORY_LIMIT_MB": ("default_memory_mb", "max_memory_mb"),
}
# Imported once in the zygote so executions that use them start warm. Each preloaded module also makes every
# fork and exit dearer (the zygote's private pages are copied-on-write and unmapped per execution), so the
# default zygote keeps to small, near-universal modules and a second zygote flavour holds pytest (~14 MiB).
DEFAULT_PRELOAD: tuple[str, ...] = (
    "bisect", "collections", "functools", "heapq", "itertools", "json", "math", "operator", "random", "re",
    "string", "threading", "typing",
)  # fmt: skip
DEFAULT_PRELOAD_PYTEST: tuple[str, ...] = ("unittest", "pytest")


class SandboxSettings(BaseModel):
    """Service settings. Limits bound every request; a request asking for more gets a 422 naming the field."""

    model_config = ConfigDict(extra="forbid")

    isolation: Literal["auto", "namespaces", "restricted"] = Field(
        default="auto",
        description="namespaces: bubblewrap jail + per-execution namespaces (needs a privileged pod); restricted: "
        "per-execution seccomp + Landlock + rlimits, nothing beyond the restricted Pod Security Standard; auto: "
        "namespaces where the pod allows them, else restricted.",
    )
    allow_weaker_isolation: bool = Field(
        default=False,
        description="Let the restricted mode start on a kernel without Landlock ABI 6 (Linux >= 6.12); /healthz "
        "then lists what is missing.",
    )
    work_root: str = Field(
        default="", description="Restricted mode: parent of the executions' private dirs (default $TMPDIR)."
    )
    python: str = Field(
        default="", description="Interpreter that runs user code (default: the service's own)."
    )
    zygotes: int = Field(default=1, ge=1, le=64, description="Warm fork-servers per flavour (each one jail).")
    warm: bool = Field(
        default=True, description="Fork an initialised interpreter per execution (vs exec a new one)."
    )
    preload: list[str] = Field(default_factory=lambda: list(DEFAULT_PRELOAD))
    preload_pytest: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PRELOAD_PYTEST),
        description="Extra modules of the pytest zygote flavour, which runs code that mentions pytest.",
    )
    max_concurrency: int = Field(
        default=0,
        ge=0,
        description="CPU slots: executions starting or computing at once; 0 = 2 x CPUs (at least 4). An execution "
        "gives its slot back after cpu_slot_s, so sleeping or blocked programs do not hold it.",
    )
    cpu_slot_s: float = Field(
        default=0.25,
        gt=0,
        description="Wall seconds an execution holds its CPU slot (then only a running slot).",
    )
    max_running: int = Field(
        default=0,
        ge=0,
        description="Executions alive at once, sleepers included; 0 = max(64, 16 x CPU slots).",
    )
    queue_size: int = Field(
        default=16384,
        ge=0,
        description="Requests waiting for a slot before the service answers 504 (an RL step's whole batch fits).",
    )
    default_run_timeout_s: float = Field(default=10.0, gt=0)
    max_run_timeout_s: float = Field(default=300.0, gt=0)
    default_memory_mb: int = Field(default=1024, ge=16)
    max_memory_mb: int = Field(default=8192, ge=16)
    max_processes: int = Field(default=64, ge=1, description="Processes + threads per execution.")
    max_open_files: int = Field(default=256, ge=16)
    max_file_size_mb: int = Field(default=32, ge=1, description="Largest file an execution may write.")
    tmpfs_mb: int = Field(default=64, ge=1, description="Size of the work dir and of /tmp (each).")
    max_output_bytes: int = Field(
        default=1 << 20, ge=1024, description="Per stream; the tree is killed beyond."
    )
    max_payload_bytes: int = Field(default=16 << 20, ge=1024, description="Largest request body.")
    max_fetch_bytes: int = Field(default=4 << 20, ge=0, description="Total size of fetch_files returned.")
    netns_per_exec: bool = Field(
        default=False,
        description="A fresh network namespace per execution (~1 ms); by default executions share the jail's "
        "empty one (no interfaces up, no route anywhere).",
    )
    landlock: Literal["auto", "off"] = Field(
        default="auto",
        description="Separate executions' abstract unix sockets and signals with Landlock scopes where the kernel "
        "has them (ABI 6, Linux 6.12); 'off' (or an older kernel) gives each execution its own network namespace. "
        "In restricted mode 'off' means no Landlock at all (refused unless allow_weaker_isolation).",
    )
    seccomp: bool = Field(default=True, description="Refuse ptrace, mount, unshare, bpf, ... in user code.")
    tiny_init: bool = Field(
        default=True,
        description="Namespaces mode: pid 1 of each execution is a few machine instructions in a clone that "
        "shares the zygote's memory (x86_64; ~2 ms of CPU less per execution), the zygote forks the program as "
        "pid 2; false (and other architectures): pid 1 is a forked interpreter that forks the program.",
    )
    cgroups: Literal["auto", "off"] = Field(
        default="auto", description="Per-execution cgroups where delegated."
    )
    sandbox_uid: int = Field(default=65534, ge=1, description="uid user code runs as inside its namespace.")
    host_uid: int | None = Field(
        default=None,
        description="When the service runs as root: run the jail as this host uid (enables RLIMIT_NPROC, which "
        "the kernel ignores for root). The interpreter's files must be readable by it.",
    )
    extra_ro_binds: list[str] = Field(default_factory=list, description="More host paths bound read-only.")

    @model_validator(mode="after")
    def _consistent(self) -> SandboxSettings:
        if self.default_run_timeout_s > self.max_run_timeout_s:
            raise ValueError("default_run_timeout_s must not exceed max_run_timeout_s")
        if self.default_memory_mb > self.max_memory_mb:
            raise ValueError("default_memory_mb must not exceed max_memory_mb")
        return self

    @property
    def concurrency(self) -> int:
        return self.max_concurrency or max(4, 2 * (os.cpu_count() or 1))

    @property
    def running(self) -> int:
        return max(self.max_running or max(64, 16 * self.concurrency), self.concurrency)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSettings:
        """Settings from PURPCODE_SANDBOX_* variables, then `overrides` (e.g. from the CLI).

        The operator's names (PurpCodeRun `spec.services.sandbox.limits`) are accepted too: CONCURRENCY,
        RUN_TIMEOUT_SECONDS (the longest run allowed), MEMORY_LIMIT_MB (default and maximum per run)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for alias, fields in _ALIASES.items():
            raw_alias = env.get(ENV_PREFIX + alias)
            if raw_alias is not None:
                for name in fields:
                    values[name] = raw_alias
        if "max_run_timeout_s" in values and ENV_PREFIX + "DEFAULT_RUN_TIMEOUT_S" not in env:
            try:
                values["default_run_timeout_s"] = min(10.0, float(values["max_run_timeout_s"]))
            except ValueError:
                pass  # validation below names the field
        known = {ENV_PREFIX + name.upper() for name in cls.model_fields} | {ENV_PREFIX + a for a in _ALIASES}
        known.add(ENV_PREFIX + "SETTINGS_JSON")
        for key in env:
            if key.startswith(ENV_PREFIX) and key not in known:
                LOG.warning("ignoring unknown setting %s (known: %s)", key, ", ".join(sorted(known)))
        for name, field in cls.model_fields.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            annotation = str(field.annotation)
            if annotation.startswith("list"):
                try:
                    values[name] = json.loads(raw)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a JSON list: {err}") from err
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ValueError(f"invalid sandbox settings: {err}") from err
