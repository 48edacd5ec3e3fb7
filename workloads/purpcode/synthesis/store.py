"""Step checkpoints: each finished step leaves `steps/<name>.jsonl` and `steps/<name>.done.json`.

Why: a synthesis Job that dies (preemption, OOM, a judge outage) is retried by the operator; the retry must pick up
finished steps instead of paying for the generator again. A step is reused only when its fingerprint (its
parameters and the fingerprints of the steps it reads) matches, so changing the spec redoes what it affects.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from purpcode.data.schema import iter_jsonl, write_json_atomic, write_jsonl_atomic


def fingerprint(*parts: Any) -> str:
    data = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class StepStore:
    """Checkpointed outputs of the synthesis steps under `<out>/steps/`."""

    def __init__(self, out: str | Path) -> None:
        self.dir = Path(out) / "steps"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resumed: list[str] = []

    def _marker(self, name: str) -> Path:
        return self.dir / f"{name}.done.json"

    def _data(self, name: str) -> Path:
        return self.dir / f"{name}.jsonl"

    def is_done(self, name: str, fp: str) -> bool:
        marker = self._marker(name)
        if not marker.is_file() or not self._data(name).is_file():
            return False
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return bool(info.get("fingerprint") == fp)

    def load(self, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        info = json.loads(self._marker(name).read_text(encoding="utf-8"))
        self.resumed.append(name)
        return list(iter_jsonl(self._data(name))), info.get("stats", {})

    def save(
        self, name: str, fp: str, records: list[dict[str, Any]], stats: dict[str, Any], seconds: float
    ) -> None:
        # Data first, marker last: a crash in between leaves no marker, so the step reruns.
        self._marker(name).unlink(missing_ok=True)
        write_jsonl_atomic(self._data(name), records)
        write_json_atomic(
            self._marker(name),
            {
                "fingerprint": fp,
                "count": len(records),
                "stats": stats,
                "seconds": round(seconds, 3),
                "finished_at": time.time(),
            },
        )

    def seconds(self, name: str) -> float:
        try:
            return float(json.loads(self._marker(name).read_text(encoding="utf-8")).get("seconds", 0.0))
        except (OSError, json.JSONDecodeError, ValueError):
            return 0.0
