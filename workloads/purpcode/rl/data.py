"""RL prompts: the synthesis sets minus rule learning's easy prompts, a capped held-out validation split, a
fixed-seed shuffle, and a resumable prompt stream.

Why multi-turn prompts stay: the reference skips them, so the RL policy never practises the "foot in the door"
conversations its safety oracle judges. Here the whole conversation is the prompt; when it is longer than
maxPromptLength tokens, the oldest turns go first (the system prompt and the last user turn are kept), and a row
that still does not fit is left out and counted (the reference drops over-long prompts too).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from purpcode.data.schema import TaskRow, read_rows
from purpcode.prompts import SYSTEM_PROMPT, model_conversation
from purpcode.rule_learning.multiturn import prefix_row, user_turns

log = logging.getLogger(__name__)

# The recipe's RL mix: coding tasks with tests, vulnerability-inducing prompts, security Q&A, malicious events.
# (The over-refusal probes are an evaluation set, not RL data.)
RL_SETS: tuple[str, ...] = ("utility", "codesec", "secqa", "malicious")


@dataclass(frozen=True)
class RLExample:
    """One RL prompt: the chat the policy answers and the oracle that scores the answers."""

    task_id: str
    set_name: str
    oracle: str
    prompt: list[dict[str, str]]
    ground_truth: dict[str, Any] = field(default_factory=dict)

    def reward_row(self) -> dict[str, Any]:
        """The columns the reward function reads (TRL passes them as keyword lists)."""
        return {
            "prompt": self.prompt,
            "oracle": self.oracle,
            "ground_truth": self.ground_truth,
            "task_id": self.task_id,
        }


class DataSummary(BaseModel):
    """Counts per set, written next to the model and logged at start."""

    model_config = ConfigDict(extra="forbid")

    train: dict[str, int] = Field(default_factory=dict)
    validation: dict[str, int] = Field(default_factory=dict)
    easy_removed: dict[str, int] = Field(default_factory=dict)
    too_long: dict[str, int] = Field(default_factory=dict)
    turns_trimmed: dict[str, int] = Field(default_factory=dict)
    multi_turn: dict[str, int] = Field(default_factory=dict)
    overlap_removed: dict[str, int] = Field(default_factory=dict)
    with_context: dict[str, int] = Field(
        default_factory=dict,
        description="Multi-turn prompts given rule learning's replies between the user turns.",
    )
    missing_files: list[str] = Field(default_factory=list)


@dataclass
class RLData:
    train: list[RLExample]
    validation: list[RLExample]
    summary: DataSummary


def load_easy_ids(path: str | os.PathLike[str] | None) -> set[str]:
    """Task ids rule learning found easy (>= easyThreshold of its samples passed); RL skips them.

    Accepts a JSON list of ids, or an object with the ids under "easy", "easy_ids" or "task_ids" (a list, or a
    mapping id -> pass rate). None (RL without the SFT stage) means no ids.
    """
    if path is None:
        return set()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"easy ids file {p} does not exist: rule learning writes it; run that stage first, or disable "
            "ruleLearning to train RL from the base model without it"
        )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"easy ids file {p}: not valid JSON ({err.msg})") from err
    if isinstance(data, dict):
        for key in ("easy", "easy_ids", "task_ids"):
            if key in data:
                data = data[key]
                break
        else:
            raise ValueError(
                f"easy ids file {p}: expected a list or an object with key 'easy' (got {sorted(data)})"
            )
    if isinstance(data, dict):
        return {str(k) for k in data}
    if not isinstance(data, list):
        raise ValueError(f"easy ids file {p}: expected a list of task ids, got {type(data).__name__}")
    return {str(x["task_id"]) if isinstance(x, dict) else str(x) for x in data}


def fit_prompt(
    messages: list[dict[str, str]], count_tokens: Callable[[list[dict[str, str]]], int], max_tokens: int
) -> tuple[list[dict[str, str]] | None, int]:
    """Drop the oldest turns (whole exchanges, up to the next user turn) until the prompt fits `max_tokens`.

    Returns (messages or None when even system + last user turn is too long, number of turns dropped).
    """
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while True:
        candidate = system + turns
        if count_tokens(candidate) <= max_tokens:
            return candidate, dropped
        # Next user turn after the first one: everything before it is the oldest exchange.
        nxt = next((i for i in range(1, len(turns)) if turns[i]["role"] == "user"), None)
        if nxt is None:
            return None, dropped
        dropped += nxt
        turns = turns[nxt:]


def rl_prompt(row: TaskRow, system_prompt: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The chat the policy answers: the trained system prompt (replacing any the row has, as the reference
    does), then the row's turns with earlier assistant turns cropped to their answers (as in SFT data)."""
    return model_conversation([m.model_dump() for m in row.messages], system_prompt)


def chat_token_counter(tokenizer: Any) -> Callable[[list[dict[str, str]]], int]:
    """Prompt length in tokens as the trainer will see it: chat template with the generation prompt."""

    def count(messages: list[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def load_rl_data(
    data_dir: str | os.PathLike[str],
    *,
    easy_ids: set[str] | None = None,
    held_out_per_set: int = 800,
    seed: int = 666,
    count_tokens: Callable[[list[dict[str, str]]], int] | None = None,
    max_prompt_length: int | None = None,
    sets: Sequence[str] = RL_SETS,
    system_prompt: str = SYSTEM_PROMPT,
    easy_sets: Sequence[str] | None = None,
    contexts: dict[str, list[str]] | None = None,
) -> RLData:
    """Read `<set>.train.jsonl` / `<set>.heldout.jsonl` for the RL sets and build the train and validation lists.

    `contexts` (rule learning's `multiturn_contexts.json`): for a conversation of user turns only, the replies put
    between them, so RL answers the conversation SFT trained on.
    Train: easy ids removed (from the sets in `easy_sets`; None = all), over-long prompts trimmed or left out, shuffled with `seed`. Validation: the first
    `held_out_per_set` held-out rows of each set (the reference takes the first 800 of each test split).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: not a directory (expected the synthesis stage's output)")
    easy = easy_ids or set()
    summary = DataSummary()
    train: list[RLExample] = []
    validation: list[RLExample] = []

    def build(row: TaskRow, set_name: str, counts_key: str) -> RLExample | None:
        users = user_turns(row)
        replies = (contexts or {}).get(row.task_id)
        if users is not None and replies is not None and len(replies) == len(users) - 1:
            # The replies rule learning distilled turn by turn go between the user turns (as in its SFT data).
            row = prefix_row(row, users, replies)
            summary.with_context[counts_key] = summary.with_context.get(counts_key, 0) + 1
        prompt = rl_prompt(row, system_prompt)
        if count_tokens is not None and max_prompt_length is not None:
            fitted, dropped = fit_prompt(prompt, count_tokens, max_prompt_length)
            if fitted is None:
                bucket = summary.too_long
                bucket[counts_key] = bucket.get(counts_key, 0) + 1
                return None
            if dropped:
                summary.turns_trimmed[counts_key] = summary.turns_trimmed.get(counts_key, 0) + 1
            prompt = fitted
        return RLExample(row.task_id, set_name, row.oracle, prompt, dict(row.ground_truth))

    for name in sets:
        held_path = root / f"{name}.heldout.jsonl"
        held_ids: set[str] = set()
        if held_path.is_file():
            held_rows = read_rows(held_path)
            for row in held_rows[: max(0, held_out_per_set)]:
                ex = build(row, name, f"{name}.heldout")
                if ex is not None:
                    validation.append(ex)
            held_ids = {r.task_id for r in held_rows}
            summary.validation[name] = sum(1 for e in validation if e.set_name == name)
        train_path = root / f"{name}.train.jsonl"
        if not train_path.is_file():
            summary.missing_files.append(train_path.name)
            log.warning("RL data: %s is missing; set %r contributes no training prompts", train_path, name)
            continue
        kept = 0
        for row in read_rows(train_path):
            if row.task_id in easy and (easy_sets is None or name in easy_sets):
                summary.easy_removed[name] = summary.easy_removed.get(name, 0) + 1
                continue
            if row.task_id in held_ids:
                summary.overlap_removed[name] = summary.overlap_removed.get(name, 0) + 1
                continue
            ex = build(row, name, name)
            if ex is None:
                continue
            if sum(1 for m in ex.prompt if m["role"] == "user") > 1:
                summary.multi_turn[name] = summary.multi_turn.get(name, 0) + 1
            train.append(ex)
            kept += 1
        summary.train[name] = kept
    if not train:
        expected = ", ".join(f"{s}.train.jsonl" for s in sets)
        raise ValueError(
            f"--data {root}: no RL training prompts (expected {expected} from the synthesis stage; "
            f"missing: {summary.missing_files or 'none'}; easy ids removed: {sum(summary.easy_removed.values())}; "
            f"too long: {sum(summary.too_long.values())})"
        )
    random.Random(seed).shuffle(train)
    return RLData(train=train, validation=validation, summary=summary)


class PromptStream:
    """An endless, resumable walk over the training prompts: epoch 0 in dataset order, later epochs reshuffled.

    Why not the Trainer's dataloader: single-step dynamic sampling draws a different number of prompts each step,
    so the stream hands out prompts by count, and its cursor (saved in checkpoints) is exactly where a resumed run
    continues. `budget` is the number of prompts the run may draw (epochs x dataset size).
    """

    def __init__(self, size: int, *, seed: int, budget: int | None = None) -> None:
        if size < 1:
            raise ValueError("PromptStream needs at least one prompt")
        self.size = size
        self.seed = seed
        self.budget = budget
        self.cursor = 0
        self._perm: tuple[int, list[int]] | None = None

    def _order(self, epoch: int) -> list[int]:
        if self._perm is None or self._perm[0] != epoch:
            order = list(range(self.size))
            if epoch:
                random.Random(self.seed + epoch).shuffle(order)
            self._perm = (epoch, order)
        return self._perm[1]

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self.cursor)

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.cursor >= self.budget

    def take(self, count: int) -> list[int]:
        """The next `count` prompt indices (fewer when the budget runs out)."""
        if self.remaining is not None:
            count = min(count, self.remaining)
        out: list[int] = []
        for _ in range(max(0, count)):
            epoch, pos = divmod(self.cursor, self.size)
            out.append(self._order(epoch)[pos])
            self.cursor += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"cursor": self.cursor, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("size", self.size)) != self.size or int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(
                f"checkpoint prompt stream was over {state.get('size')} prompts with seed {state.get('seed')}, "
                f"this run has {self.size} with seed {self.seed}: the RL data changed since the checkpoint; "
                "clear the rl/checkpoints directory to start over"
            )
        self.cursor = int(state["cursor"])
