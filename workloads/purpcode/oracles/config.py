"""Oracle settings: the recipe's numbers as defaults, mapped from the run spec (`OracleSpec`/`JudgeSpec`) by the lead.

Why our own models: the oracles run in stage pods that must not import the operator package.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class OracleConfig(BaseModel):
    """Reward definition: format gate numbers, codesec and correctness settings, judge limits."""

    model_config = ConfigDict(extra="forbid")

    # Format gate (recipe: `## Analysis` >= 16 chars, `## Answer` >= 8 chars, no 32-char substring 8+ times).
    analysis_min_chars: int = Field(default=16, ge=0)
    answer_min_chars: int = Field(default=8, ge=0)
    repeat_substring_length: int = Field(default=32, ge=4)
    repeat_max_count: int = Field(
        default=8, ge=2, description="A substring seen this many times fails the gate."
    )
    analysis_prefilled: bool = Field(
        default=True,
        description="Accept a response that lacks the leading '## Analysis' header, as when the generation prompt "
        "prefilled it (the reference does this).",
    )

    # codesec
    codesec_no_code_reward: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Reward for a safe answer without a Python block (0 = hard ablation).",
    )
    codesec_min_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    codesec_unparseable: Literal["fail", "ignore"] = Field(
        default="fail",
        description="A Python-tagged block the analyzer cannot parse: 'fail' scores 0 (code the analyzer cannot "
        "read is not known to be safe, and broken syntax must not be a way around it); 'ignore' skips the block.",
    )

    # correctness
    correctness_timeout_s: float = Field(default=15.0, gt=0, le=600)
    correctness_code_blocks: Literal["all", "python"] = Field(
        default="all",
        description="What correctness runs: all = every fenced block joined in document order (the reference; a "
        "non-Python block makes the run fail); python = the Python blocks only (all blocks when none is Python).",
    )
    correctness_concurrency: int = Field(
        default=32,
        ge=1,
        description="Sandbox requests in flight from this process. The service runs about 2 x its CPUs at once (the "
        "recipe's ~1.5 x CPU) and queues the rest, so this only has to keep its queue fed: about 2 x the sandbox's "
        "total execution slots (more in flight only costs client CPU).",
    )
    correctness_cache_size: int = Field(
        default=100_000,
        ge=0,
        description="Verdicts remembered by (code, tests) hash: identical answers run once (0 = off). Timeouts and "
        "sandbox errors are never remembered.",
    )

    # judge (general-safety, noreject)
    judge_max_tokens: int = Field(default=256, ge=1, le=4096)
    judge_concurrency: int = Field(default=1024, ge=1, le=65536)

    def format_rule(self) -> str:
        """The gate in words, for logs and error messages."""
        return (
            f"'## Analysis' (>= {self.analysis_min_chars} chars) then '## Answer' (>= {self.answer_min_chars} chars), "
            f"no {self.repeat_substring_length}-char substring repeated {self.repeat_max_count}+ times"
        )


class JudgeConfig(BaseModel):
    """How to reach the LLM judge: any OpenAI-compatible endpoint (vLLM's server in the cluster).

    `max_tokens`/`concurrency` left unset take the `OracleConfig` values (judge_max_tokens/judge_concurrency).
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="Endpoint root, e.g. http://judge:8000/v1 (a missing /v1 is added).")
    model: str = Field(default="", description="Model name; empty = the first model the server lists.")
    api_key: SecretStr = Field(default=SecretStr(""), description="Bearer token; never logged.")
    max_tokens: int = Field(default=256, ge=1, le=4096)
    concurrency: int = Field(default=1024, ge=1, le=65536)
    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    retries: int = Field(default=5, ge=0, le=20, description="Retries on 429/5xx/connection errors.")
    backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles each retry (with jitter)."
    )
    max_backoff_s: float = Field(default=30.0, ge=0)
    early_stop: Literal["stop", "stream", "none"] = Field(
        default="stop",
        description="How to stop on a TRUE verdict: 'stop' sequences (server side), 'stream' (read tokens and "
        "close the stream once a TRUE verdict is parsed), 'none'.",
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    extra_body: dict[str, object] = Field(
        default_factory=dict,
        description="Extra request fields, e.g. {'include_stop_str_in_output': true} for vLLM.",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"judge base_url={value!r}: must start with http:// or https://")
        if not value.endswith("/v1"):
            value += "/v1"
        return value

    @classmethod
    def from_env(
        cls, base_url: str, model: str = "", api_key_env: str | None = None, **kw: object
    ) -> JudgeConfig:
        """Build from a URL and the *name* of the env var holding the key (the stage config carries the name)."""
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        return cls(base_url=base_url, model=model, api_key=SecretStr(key), **kw)  # type: ignore[arg-type]
