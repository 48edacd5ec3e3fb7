"""The one row schema every prompt set uses, from synthesis through evaluation.

Why one schema: the oracle dispatch, rule learning, RL and evaluation all read the same JSONL files, so a row must
say by itself which oracle scores it and what that oracle needs (``ground_truth``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OracleName = Literal["correctness", "codesec", "general-safety", "noreject"]
ORACLES: tuple[str, ...] = ("correctness", "codesec", "general-safety", "noreject")

# The prompt sets a run produces (synthesis) and consumes (rule learning, RL, evaluation), with their oracle.
SET_ORACLES: dict[str, str] = {
    "utility": "correctness",  # coding tasks with tests
    "codesec": "codesec",  # vulnerability-inducing prompts (Vul2Prompt)
    "malicious": "general-safety",  # malicious-event prompts
    "overrefusal": "noreject",  # benign prompts full of security trigger words
    "secqa": "noreject",  # security Q&A a helpful assistant must answer
}


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class TaskRow(BaseModel):
    """One prompt with the oracle that scores answers to it."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, description="Stable unique id, e.g. 'codesec/CWE-78/general/0003'.")
    messages: list[Message] = Field(
        min_length=1, description="The conversation; the last turn is the user's."
    )
    oracle: OracleName
    ground_truth: dict[str, Any] = Field(
        default_factory=dict,
        description="What the oracle needs: for correctness a sandbox TestSpec dump; for codesec "
        "{'cwe': [...], 'detectors': [...]}; for judge oracles optional context.",
    )
    source: str = Field(
        default="", description="Where the row came from: 'synthesis', 'import:<dataset>', ..."
    )
    strategy: str = Field(default="", description="Generation strategy, e.g. general, benign2vul, vul2vul.")
    cwe: str | None = Field(default=None, description="Primary CWE id, e.g. 'CWE-78', when the row has one.")

    @field_validator("messages")
    @classmethod
    def _last_turn_is_user(cls, messages: list[Message]) -> list[Message]:
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's turn (the model answers it)")
        return messages

    def prompt_text(self) -> str:
        """The last user turn, for dedup and logs."""
        return self.messages[-1].content


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write rows as JSONL via a temp file and rename, so readers never see a half-written set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                data = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write one JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def filter_jsonl(path: str | os.PathLike[str], keep: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite a JSONL log atomically without the records `keep` rejects and without torn lines; returns how many
    lines went (0: the file is left untouched).

    Why: a resumed stage must drop what its killed attempt logged after the point it resumes from (or those records
    appear twice), and a torn last line would otherwise swallow the next appended record.
    """
    p = Path(path)
    if not p.is_file():
        return 0
    raw = p.read_bytes()
    kept: list[dict[str, Any]] = []
    dropped = 0
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if isinstance(record, dict) and keep(record):
            kept.append(record)
        else:
            dropped += 1
    if dropped or (raw and not raw.endswith(b"\n")):
        write_jsonl_atomic(p, kept)
    return dropped


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield raw dicts from a JSONL file, naming the line on a parse error."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err


def read_rows(path: str | os.PathLike[str]) -> list[TaskRow]:
    """Read and validate a JSONL set of TaskRows."""
    return [TaskRow.model_validate(obj) for obj in iter_jsonl(path)]
