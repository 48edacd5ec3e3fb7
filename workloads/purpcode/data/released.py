"""The reference's released prompt sets (Hugging Face org `purpcode` by default): fetching them once, reading the
files, and mapping their rows to our TaskRow schema.

Two shapes exist: the Vul2Prompt / malicious-event sets carry `task_id` and `messages`; the RL sets (rl-*,
code-r1-*) use verl's columns (`prompt` as messages, `reward_model.ground_truth` as a JSON string, `extra_info`).
The mapper reads either, defensively, and names the set and its columns when a row has neither.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from purpcode.data.schema import SET_ORACLES, TaskRow

LOG = logging.getLogger(__name__)
COMPLETE_MARKER = ".purpcode-complete"

# Released set -> (our set, strategy). None as strategy: take it from the row where it says.
RELEASED_SETS: dict[str, tuple[str, str | None]] = {
    "vul2prompt-general-oss-26k": ("codesec", "general"),
    "vul2prompt-benign2vul-oss-21k": ("codesec", "benign2vul"),
    "vul2prompt-vul2vul-oss-21k": ("codesec", "vul2vul"),
    "vul2prompt-jailbreaking-oss-11k": ("codesec", "jailbreak"),
    "vul2prompt-multi-oss-5k": ("codesec", "multi-turn"),
    "mal-event-seed-attack-oss-24k": ("malicious", "direct"),
    "mal-event-jailbreak-single-oss-16k": ("malicious", "jailbreak"),
    "mal-event-fitd-multi-turn-oss-2k": ("malicious", "multi-turn"),
    "rl-codesec-78k": ("codesec", None),
    "rl-secqa-11k": ("secqa", "secqa"),
    "rl-safety-8k-single-turn": ("malicious", None),
    "code-r1-46k-leetcode2k-kodcode": ("utility", "coding"),
}
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


class ImportFormatError(ValueError):
    """A released set's rows do not have the columns the mapper knows."""


def released_dir(artifacts: str | os.PathLike[str], name: str) -> Path:
    return Path(artifacts) / "imports" / name


def is_fetched(dest: str | os.PathLike[str], org: str, name: str) -> bool:
    """Whether `dest` holds `<org>/<name>`: its marker names that repo, or says only "ok" (files pre-loaded by
    hand, or fetched before the marker named its origin: used as they are). A marker naming another organisation
    (the run's `importOrg` changed) does not count: those files are another org's set of the same name."""
    marker = Path(dest) / COMPLETE_MARKER
    if not marker.is_file():
        return False
    origin = marker.read_text(encoding="utf-8").strip()
    return origin in ("", "ok") or origin == f"{org}/{name}"


def fetch_released_set(
    org: str, name: str, dest: str | os.PathLike[str], *, token: str | None = None
) -> Path:
    """Download `<org>/<name>` (a hub dataset repo) into `dest` once; its marker file (naming the repo) makes later
    calls for the same repo no-ops, and a folder fetched from another organisation is replaced."""
    dest = Path(dest)
    if is_fetched(dest, org, name):
        return dest
    if (dest / COMPLETE_MARKER).is_file():
        LOG.warning("%s holds another organisation's %s: fetching %s/%s instead", dest, name, org, name)
        shutil.rmtree(dest)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError as err:  # pragma: no cover - huggingface_hub ships with transformers
        raise RuntimeError("importing released sets needs huggingface_hub (the 'training' extra)") from err
    dest.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            repo_id=f"{org}/{name}",
            repo_type="dataset",
            local_dir=str(dest),
            token=token,
            allow_patterns=["*.parquet", "*.jsonl", "*.json", "README.md"],
        )
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError, ValueError) as err:
        raise RuntimeError(
            f"cannot fetch the released set {org}/{name} from the Hugging Face hub ({type(err).__name__}: {err}); "
            "the cluster must reach huggingface.co (or pre-load the files into "
            f"{dest} and create {COMPLETE_MARKER} there), or use synthesis.source: generate"
        ) from err
    (dest / COMPLETE_MARKER).write_text(f"{org}/{name}\n", encoding="utf-8")
    return dest


def data_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The data files of a fetched set (parquet / JSONL / JSON), sorted, hidden folders skipped."""
    root = Path(folder)
    out = []
    for p in sorted(root.rglob("*")):
        if (
            p.is_file()
            and p.suffix in DATA_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ):
            if p.name in ("dataset_info.json", "dataset_dict.json", "state.json"):
                continue
            out.append(p)
    return out


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of one data file as dicts."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, list):
            yield from data
        elif isinstance(data, dict) and isinstance(data.get("data"), list):
            yield from data["data"]
        else:
            raise ImportFormatError(f"{path}: a JSON file must hold a list of rows")


# ------------------------------------------------------------------------------------------------ mapping

_ROLES = {"system", "user", "assistant"}


def _as_messages(value: Any) -> list[dict[str, str]] | None:
    if isinstance(value, str) and value.strip():
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        out = []
        for m in value:
            role = str(m.get("role", "")).lower()
            content = m.get("content")
            if role not in _ROLES or not isinstance(content, str):
                return None
            out.append({"role": role, "content": content})
        while out and out[-1]["role"] == "assistant":
            out.pop()  # a trailing answer is not part of the prompt
        return out or None
    return None


def _messages(row: dict[str, Any]) -> list[dict[str, str]] | None:
    for key in ("messages", "prompt", "conversation", "question", "instruction"):
        if key in row:
            msgs = _as_messages(row[key])
            if msgs:
                return msgs
    return None


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra = row.get("extra_info")
    return extra if isinstance(extra, dict) else {}


_CHECK_CALL = re.compile(r"\n\s*check\(\s*([A-Za-z_][\w.()]*)\s*\)\s*$")


def correctness_truth(raw: Any) -> dict[str, Any]:
    """A code task's ground truth (verl JSON string: functional / pytest / inputs+outputs) as a TestSpec dump."""
    from purpcode.sandbox.harness import TestSpec

    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise ImportFormatError("ground_truth is neither a JSON object nor a dict")
    if data.get("functional"):
        test = str(data["functional"]).rstrip()
        m = _CHECK_CALL.search(test)
        entry = m.group(1) if m else None
        if m:
            test = test[: m.start()].rstrip() + "\n"
        return TestSpec(kind="functional", test=test, entry_point=entry).model_dump()
    if data.get("pytest"):
        return TestSpec(kind="pytest", test=str(data["pytest"])).model_dump()
    if data.get("inputs") is not None and data.get("outputs") is not None:
        cases = [
            {
                "stdin": "\n".join(i) if isinstance(i, list) else str(i),
                "expected_stdout": "\n".join(o) if isinstance(o, list) else str(o),
            }
            for i, o in zip(data["inputs"], data["outputs"], strict=True)
        ]
        return TestSpec(kind="stdio", cases=cases).model_dump()  # type: ignore[arg-type]
    raise ImportFormatError(
        f"ground_truth has none of functional / pytest / inputs+outputs (keys: {sorted(data)})"
    )


def map_row(name: str, row: dict[str, Any], index: int) -> TaskRow:
    """One released row as a TaskRow (oracle from the set; ground truth mapped for code tasks)."""
    if name not in RELEASED_SETS:
        raise ImportFormatError(f"{name!r} is not a known released set ({', '.join(RELEASED_SETS)})")
    our_set, strategy = RELEASED_SETS[name]
    msgs = _messages(row)
    if msgs is None:
        raise ImportFormatError(
            f"released set {name}: row {index} has no usable conversation (looked for messages / prompt / "
            f"question / instruction); its columns are {sorted(row)}"
        )
    extra = _extra(row)
    task_id = str(row.get("task_id") or extra.get("task_id") or index)
    cwe = row.get("cwe") or row.get("cwe_id") or extra.get("cwe")
    from purpcode.analyzers.base import cwe_label

    cwe_id = cwe_label(cwe[0] if isinstance(cwe, list) and cwe else cwe) if cwe else None
    oracle = SET_ORACLES[our_set]
    truth: dict[str, Any] = {}
    if our_set == "utility":
        raw = (
            (row.get("reward_model") or {}).get("ground_truth")
            if isinstance(row.get("reward_model"), dict)
            else None
        )
        raw = raw if raw is not None else row.get("ground_truth") or row.get("test")
        if raw is None:
            raise ImportFormatError(
                f"released set {name}: row {index} has no tests (reward_model.ground_truth); columns {sorted(row)}"
            )
        truth = correctness_truth(raw)
    elif our_set == "codesec":
        truth = {"cwe": [cwe_id] if cwe_id else [], "detectors": []}
    row_strategy = strategy or str(
        row.get("strategy")
        or extra.get("strategy")
        or ("multi-turn" if sum(1 for m in msgs if m["role"] == "user") > 1 else "single-turn")
    )
    return TaskRow(
        task_id=f"{our_set}/import/{name}/{task_id}",
        messages=msgs,  # type: ignore[arg-type]
        oracle=oracle,  # type: ignore[arg-type]
        ground_truth=truth,
        source=f"import:{name}",
        strategy=row_strategy,
        cwe=cwe_id,
    )


def load_released_set(
    name: str, folder: str | os.PathLike[str], *, limit: int | None = None
) -> list[TaskRow]:
    """Every row of a fetched set as TaskRows; a clear error when the folder has no data files."""
    files = data_files(folder)
    if not files:
        raise ImportFormatError(
            f"released set {name}: no .parquet/.jsonl/.json files under {folder} (did the initializer fetch it?)"
        )
    rows: list[TaskRow] = []
    index = 0
    for path in files:
        for rec in read_records(path):
            rows.append(map_row(name, rec, index))
            index += 1
            if limit is not None and len(rows) >= limit:
                return rows
    return rows
