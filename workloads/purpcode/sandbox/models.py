"""Request and response models of `POST /run_code`, wire-compatible with SandboxFusion.

Why mirror SandboxFusion: verl's and the PurpCode reference's reward code already speak this JSON, so they work
pointed at our service unchanged. Field names, defaults and status strings are SandboxFusion's; we add limits
checking (a clear 4xx instead of a silent clamp) and nothing a SandboxFusion client would trip over.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Language = Literal["python", "pytest"]
LANGUAGES: tuple[str, ...] = ("python", "pytest")


class RunStatus(StrEnum):
    """Top-level outcome: every process finished with 0, one did not, or the sandbox itself failed."""

    Success = "Success"
    Failed = "Failed"
    SandboxError = "SandboxError"


class CommandRunStatus(StrEnum):
    """Outcome of one command (compile or run)."""

    Finished = "Finished"
    Error = "Error"
    TimeLimitExceeded = "TimeLimitExceeded"


class RunResult(BaseModel):
    """What one run of the program did (SandboxFusion's `CommandRunResult`)."""

    status: CommandRunStatus
    execution_time: float | None = Field(default=None, description="Wall seconds the program ran.")
    return_code: int | None = Field(
        default=None, description="Exit status; negative = killed by that signal (like subprocess)."
    )
    stdout: str | None = None
    stderr: str | None = None


class RunCodeRequest(BaseModel):
    """One execution. Unknown fields are ignored (SandboxFusion clients send e.g. `fetch_files`, `timeout`)."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(description="The program (python) or the test file (pytest).")
    language: Language = Field(
        description="'python' runs the code as a script; 'pytest' runs it as a test file."
    )
    stdin: str | None = Field(default=None, description="Text fed to the program's standard input.")
    compile_timeout: float = Field(
        default=10, description="Accepted for compatibility; Python is not compiled."
    )
    run_timeout: float = Field(
        default=10,
        description="Wall-clock seconds before the whole process tree is killed; <= 0 or above the service's "
        "maximum is clamped (the response's message says so), as SandboxFusion accepts such values.",
    )
    memory_limit_MB: int = Field(
        default=-1,
        description="Address-space limit per process in MiB; -1 (or <= 0) = the server's default (set by the "
        "operator from spec.services.sandbox.limits.memoryLimitMB); clamped into [16, maximum].",
    )
    files: dict[str, str | None] = Field(
        default_factory=dict,
        description="Relative path -> base64 content, written into the work dir first (null: an empty file). "
        "Invalid base64 is answered with a 200 whose status is Failed (SandboxFusion's way), not a 4xx.",
    )
    fetch_files: list[str] = Field(
        default_factory=list, description="Relative paths to return (base64) from the work dir after the run."
    )
    args: list[str] = Field(default_factory=list, description="Extra pytest arguments (language 'pytest').")

    @field_validator("run_timeout", "compile_timeout")
    @classmethod
    def _finite_timeout(cls, value: float) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number of seconds")
        return value

    @field_validator("files", mode="before")
    @classmethod
    def _files_null(cls, files: object) -> object:
        return {} if files is None else files

    @field_validator("fetch_files", "args", mode="before")
    @classmethod
    def _list_null(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("files")
    @classmethod
    def _files(cls, files: dict[str, str | None]) -> dict[str, str | None]:
        for path in files:
            check_relative_path(path)  # absolute or '..' paths stay refused: they would leave the work dir
        return files

    def invalid_files(self) -> str | None:
        """The first `files` entry that is not valid base64 (the service answers it with a 200, status Failed)."""
        for path, content in self.files.items():
            if content is not None:
                try:
                    base64.b64decode(content, validate=True)
                except (binascii.Error, ValueError) as err:
                    return f"files[{path!r}] is not valid base64 ({err})"
        return None

    @field_validator("fetch_files")
    @classmethod
    def _fetch(cls, paths: list[str]) -> list[str]:
        for path in paths:
            check_relative_path(path)
        return paths


class RunCodeResponse(BaseModel):
    """SandboxFusion's response: `status` is Success only when the program exited 0 within its limits."""

    status: RunStatus
    message: str = ""
    compile_result: RunResult | None = None
    run_result: RunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


def check_relative_path(path: str) -> str:
    """A work-dir path must be relative and stay inside the work dir (no '..', no absolute, no NUL)."""
    if not path or path.startswith("/") or "\x00" in path:
        raise ValueError(f"file path {path!r} must be a non-empty relative path")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"file path {path!r} must not contain '', '.' or '..' components")
    if len(path) > 255:
        raise ValueError(f"file path {path!r} is longer than 255 characters")
    return path
