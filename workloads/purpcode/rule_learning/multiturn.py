"""Turn-by-turn distillation of multi-turn conversations that hold user turns only (the released multi-turn sets).

The reference answers the first user turn, appends the reply, answers the second with it in context, and so on;
each prefix (conversation up to a user turn, plus its reply) is verified by the oracles as a sample of its own. Here
each of the N samples of a prompt is one such chain: turn 1 is sampled N times at once, each later turn once per
chain with that chain's earlier replies in context. RL then answers the whole conversation with the replies of the
chain rule learning chose as context (`contexts_file`), so it trains on what SFT taught, not on consecutive user
messages with no replies between them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from purpcode.data.schema import Message, TaskRow

CONTEXTS_FILE = "multiturn_contexts.json"

GenerateFn = Callable[[list[list[dict[str, str]]], int], list[list[str]]]


def user_turns(row: TaskRow) -> list[str] | None:
    """The user turns of a conversation made of user turns only (2 or more); None for any other row."""
    turns = [m for m in row.messages if m.role != "system"]
    if len(turns) < 2 or any(m.role != "user" for m in turns):
        return None
    return [m.content for m in turns]


def interleave(users: Sequence[str], replies: Sequence[str]) -> list[dict[str, str]]:
    """user 1, reply 1, ..., user k (k = len(replies) + 1): the conversation a reply to user turn k answers."""
    if len(replies) >= len(users):
        raise ValueError("interleave needs fewer replies than user turns (the last turn is the user's)")
    out: list[dict[str, str]] = []
    for i, text in enumerate(users[: len(replies) + 1]):
        out.append({"role": "user", "content": text})
        if i < len(replies):
            out.append({"role": "assistant", "content": replies[i]})
    return out


def prefix_row(row: TaskRow, users: Sequence[str], replies: Sequence[str]) -> TaskRow:
    """The row as of user turn len(replies) + 1, with those replies in context (what the oracle judges)."""
    msgs = [Message.model_validate(m) for m in interleave(users, replies)]
    return row.model_copy(update={"messages": msgs})


def sample_chains(
    conversations: Sequence[Sequence[str]],
    n: int,
    generate: GenerateFn,
    conversation_for: Callable[[list[dict[str, str]]], list[dict[str, str]]],
    normalize: Callable[[str], str],
) -> list[list[list[tuple[str, str]]]]:
    """For each conversation (its user turns), n chains of (raw, normalised) replies, one per user turn.

    `conversation_for` turns a plain conversation into what the generator answers (the teacher prompt); a chain's
    earlier replies go in context normalised (the format the trained model writes).
    """
    if not conversations:
        return []
    first = generate([conversation_for(interleave(users, [])) for users in conversations], n)
    chains = [[[(raw, normalize(raw))] for raw in outs] for outs in first]
    longest = max(len(users) for users in conversations)
    for k in range(1, longest):
        slots = [(c, i) for c, users in enumerate(conversations) if len(users) > k for i in range(n)]
        if not slots:
            break
        convs = [
            conversation_for(interleave(conversations[c], [norm for _, norm in chains[c][i]]))
            for c, i in slots
        ]
        outs = generate(convs, 1)
        for (c, i), texts in zip(slots, outs, strict=True):
            chains[c][i].append((texts[0], normalize(texts[0])))
    return chains


def write_contexts(path: str | os.PathLike[str], contexts: dict[str, list[str]]) -> None:
    from purpcode.data.schema import write_json_atomic

    write_json_atomic(path, {"contexts": contexts})


def read_contexts(path: str | os.PathLike[str] | None) -> dict[str, list[str]]:
    """task id -> the earlier replies RL puts between the user turns ({} when the file does not exist)."""
    if path is None or not Path(path).is_file():
        return {}
    data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    contexts = data.get("contexts") if isinstance(data, dict) else None
    if not isinstance(contexts, dict):
        raise ValueError(f"{path}: expected {{'contexts': {{task_id: [reply, ...]}}}}")
    return {str(k): [str(x) for x in v] for k, v in contexts.items()}
