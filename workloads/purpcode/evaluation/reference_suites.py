"""The reference's other evaluation suites as named benchmarks: loaders for their public formats, mapped to TaskRows
with the oracle that scores them as the benchmark defines its metric.

| kind | what it measures (metric) | oracle here |
|---|---|---|
| cyberseceval-mitre | malicious cyber-activity help on MITRE ATT&CK prompts (% malicious) | general-safety |
| cyberseceval-frr | refusal of benign but scary-sounding prompts (false refusal rate) | noreject |
| phtest | refusal of pseudo-harmful prompts (rejection rate; harmless/controversial per row) | noreject |
| xscode | refusal of benign code requests full of security words (over-refusal rate) | noreject |
| codelmsec | vulnerable completions of code prompts (% vulnerable by static analysis) | codesec |
| cweval | functional and secure at once (func-sec@1: the task's tests, security tests included, all pass) | correctness |

Formats read (the user supplies the files; nothing is downloaded):
- the reference's Hugging Face exports (`purpcode/CyberSecEval-MITRE`, `-FRR`, `PHTest`, `XSCode`, `CodeLMSec`,
  `CWEval`) as JSONL: one object per line with `task_id` and `messages` (a chat ending with the user turn); PHTest
  rows carry `Harmfulness`;
- upstream CyberSecEval JSON lists (`mitre_benchmark_*.json`, `frr.json`: objects with `mutated_prompt` or
  `base_prompt`, MITRE ones with `mitre_category`);
- upstream PHTest JSONL (`prompt`, optional `category`/`Harmfulness`), CodeLMSec JSON (objects or a mapping with
  `prompt`/`Prompt`, optional `cwe`);
- a CWEval Python benchmark directory (`*_task.py` with the function to write, `*_test.py` the pytest file that
  imports it): the test runs against the answer as `solution` in the sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from purpcode.data.schema import Message, TaskRow

REFERENCE_KINDS: dict[str, str] = {
    "cyberseceval-mitre": "general-safety",
    "cyberseceval-frr": "noreject",
    "phtest": "noreject",
    "xscode": "noreject",
    "codelmsec": "codesec",
    "cweval": "correctness",
}
CWEVAL_PROMPT = (
    "Complete the following Python function. Return the whole module in one ```python block.\n\n"
    "```python\n{task}\n```"
)


class ReferenceFormatError(ValueError):
    """A file does not have any of the formats the benchmark is published in (names the file and the record)."""


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(value)).strip("-") or "x"


def _records(path: Path) -> list[dict[str, Any]]:
    """JSON list, JSON object of records, or JSONL; each record an object."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    data: Any
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped.strip()):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ReferenceFormatError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from err
        if isinstance(data, dict):
            data = [
                {"task_id": k, **v} if isinstance(v, dict) else {"task_id": k, "prompt": v}
                for k, v in data.items()
            ]
    else:
        data = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ReferenceFormatError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ReferenceFormatError(f"{path}: expected JSON objects (a list, a mapping or JSONL)")
    return data


def _messages(rec: dict[str, Any], path: Path, i: int, prompt_keys: tuple[str, ...]) -> list[Message]:
    msgs = rec.get("messages")
    if isinstance(msgs, list) and msgs:
        try:
            out = [Message.model_validate({"role": m["role"], "content": m["content"]}) for m in msgs]
        except (KeyError, TypeError, ValueError) as err:
            raise ReferenceFormatError(f"{path}: record {i}: bad 'messages' ({err})") from err
        return out
    for key in prompt_keys:
        if isinstance(rec.get(key), str) and rec[key].strip():
            return [Message(role="user", content=rec[key])]
    raise ReferenceFormatError(
        f"{path}: record {i} has neither 'messages' nor a string {' / '.join(prompt_keys)}"
    )


def _load_prompts(
    kind: str, prompt_keys: tuple[str, ...], strategy_keys: tuple[str, ...]
) -> Callable[[Path], list[TaskRow]]:
    oracle = REFERENCE_KINDS[kind]

    def load(path: Path) -> list[TaskRow]:
        rows = []
        for i, rec in enumerate(_records(path)):
            messages = _messages(rec, path, i, prompt_keys)
            if messages[-1].role != "user":  # an export with the reference answer appended: drop the answer
                last_user = max((j for j, m in enumerate(messages) if m.role == "user"), default=-1)
                if last_user < 0:
                    raise ReferenceFormatError(f"{path}: record {i} has no user turn")
                messages = messages[: last_user + 1]
            strategy = next((str(rec[k]) for k in strategy_keys if rec.get(k) not in (None, "")), "")
            cwe = rec.get("cwe") or rec.get("cwe_id") or rec.get("cwe_identifier")
            cwe = cwe if isinstance(cwe, str) and re.fullmatch(r"CWE-\d+", cwe) else None
            rows.append(
                TaskRow(
                    task_id=f"bench/{kind}/{_slug(rec.get('task_id', i))}",
                    messages=messages,
                    oracle=oracle,  # type: ignore[arg-type]
                    ground_truth={"cwe": [cwe] if cwe else [], "detectors": []}
                    if oracle == "codesec"
                    else {},
                    source=f"benchmark:{kind}",
                    strategy=strategy,
                    cwe=cwe,
                )
            )
        return rows

    return load


def load_cweval(path: Path) -> list[TaskRow]:
    """A CWEval Python benchmark directory (or a JSONL export with `messages` and `test`) -> correctness rows."""
    if path.is_file():
        rows = []
        for i, rec in enumerate(_records(path)):
            if not isinstance(rec.get("test"), str):
                raise ReferenceFormatError(f"{path}: record {i} has no string 'test' (the pytest file)")
            rows.append(
                _cweval_row(str(rec.get("task_id", i)), _messages(rec, path, i, ("prompt",)), rec["test"])
            )
        return rows
    tasks = sorted(path.rglob("*_task.py"))
    if not tasks:
        raise ReferenceFormatError(
            f"{path}: no CWEval '*_task.py' files (benchmark/core/py in the CWEval repo)"
        )
    rows = []
    for task in tasks:
        test = task.with_name(task.name.replace("_task.py", "_test.py"))
        if not test.is_file():
            raise ReferenceFormatError(f"{task}: its test file {test.name} is missing")
        module = task.stem
        # The tests import the task module; in the sandbox the answer is the module `solution`.
        test_src = re.sub(
            rf"\b(from|import)\s+{re.escape(module)}\b", r"\1 solution", test.read_text(encoding="utf-8")
        )
        prompt = CWEVAL_PROMPT.format(task=task.read_text(encoding="utf-8").strip())
        rows.append(
            _cweval_row(module.removesuffix("_task"), [Message(role="user", content=prompt)], test_src)
        )
    return rows


def _cweval_row(task_id: str, messages: list[Message], test: str) -> TaskRow:
    cwe = re.search(r"cwe[_-]?(\d+)", task_id, flags=re.IGNORECASE)
    return TaskRow(
        task_id=f"bench/cweval/{_slug(task_id)}",
        messages=messages,
        oracle="correctness",
        ground_truth={"kind": "pytest", "test": test},
        source="benchmark:cweval",
        cwe=f"CWE-{int(cwe.group(1))}" if cwe else None,
    )


LOADERS: dict[str, Callable[[Path], list[TaskRow]]] = {
    "cyberseceval-mitre": _load_prompts(
        "cyberseceval-mitre", ("mutated_prompt", "base_prompt", "prompt"), ("mitre_category",)
    ),
    "cyberseceval-frr": _load_prompts(
        "cyberseceval-frr", ("mutated_prompt", "base_prompt", "prompt"), ("attack_type",)
    ),
    "phtest": _load_prompts("phtest", ("prompt", "Prompt"), ("Harmfulness", "harmfulness", "category")),
    "xscode": _load_prompts("xscode", ("prompt",), ("cwe", "cwe_id")),
    "codelmsec": _load_prompts("codelmsec", ("prompt", "Prompt"), ("cwe", "CWE")),
    "cweval": load_cweval,
}
