"""What the oracles take (`Sample`) and give back (`Score`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OracleName = Literal["correctness", "codesec", "general-safety", "noreject"]
ORACLE_NAMES: tuple[str, ...] = ("correctness", "codesec", "general-safety", "noreject")
REWARD_VALUES: tuple[float, ...] = (0.0, 0.8, 1.0)


class Sample(BaseModel):
    """One response to score: the prompt it answers, the response text, and the one oracle that scores it."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[dict[str, str]] | str = Field(
        default="", description="The conversation (role/content messages) or the prompt text."
    )
    response: str
    oracle: OracleName
    ground_truth: dict[str, Any] = Field(default_factory=dict)
    task_id: str = ""

    @field_validator("prompt", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if isinstance(value, list):
            out = []
            for i, m in enumerate(value):
                if hasattr(m, "model_dump"):
                    m = m.model_dump()
                if not isinstance(m, dict) or "content" not in m:
                    raise ValueError(
                        f"prompt[{i}]: expected a {{'role', 'content'}} message, got {type(m).__name__}"
                    )
                out.append({"role": str(m.get("role", "user")), "content": str(m["content"])})
            return out
        return value

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages."""
        if isinstance(self.prompt, str):
            return [{"role": "user", "content": self.prompt}] if self.prompt else []
        return list(self.prompt)

    @classmethod
    def from_row(cls, row: Any, response: str) -> Sample:
        """From a `purpcode.data.schema.TaskRow` (or its dict) and a generated response."""
        data = row.model_dump() if hasattr(row, "model_dump") else dict(row)
        return cls(
            prompt=data.get("messages") or "",
            response=response,
            oracle=data["oracle"],
            ground_truth=data.get("ground_truth") or {},
            task_id=str(data.get("task_id", "")),
        )


class Score(BaseModel):
    """The reward of one sample and what led to it (finding ids, test outcome, verdict) for logs and metrics."""

    model_config = ConfigDict(extra="forbid")

    reward: float
    oracle: str
    format_ok: bool
    details: dict[str, Any] = Field(default_factory=dict)
    task_id: str = ""
    latency_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Full reward (1.0)."""
        return self.reward >= 1.0

    @property
    def outcome(self) -> str:
        """A short label for counters: format_fail, pass, partial, fail."""
        if not self.format_ok:
            return "format_fail"
        if self.reward >= 1.0:
            return "pass"
        return "partial" if self.reward > 0 else "fail"
