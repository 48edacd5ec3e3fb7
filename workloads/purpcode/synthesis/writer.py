"""The generator model as synthesis uses it: loaded on first need, rewrites with a template fallback.

Why a fallback: a random tiny model (CPU CI) or a safety-tuned generator that refuses yields unusable text; the
templated prompt is kept instead, so every strategy still produces rows, and the manifest records which path
produced each one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from purpcode.generation import GenerationBackend
from purpcode.synthesis import templates
from purpcode.synthesis.text import Draft, clean_rewrite, quality_problem

LOG = logging.getLogger(__name__)


class Writer:
    """Wraps an optional generation backend (None = templates only)."""

    def __init__(
        self,
        factory: Callable[[], GenerationBackend] | None,
        *,
        label: str,
        rewrite_max_new_tokens: int = 256,
    ) -> None:
        self._factory = factory
        self._backend: GenerationBackend | None = None
        self.label = label
        self.rewrite_max_new_tokens = rewrite_max_new_tokens
        self.rejections: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self._factory is not None

    @property
    def backend(self) -> GenerationBackend:
        if self._factory is None:
            raise RuntimeError("no generator model in this run (templates only)")
        if self._backend is None:
            LOG.info("loading the generator (%s)", self.label)
            self._backend = self._factory()
        return self._backend

    def generate(
        self, conversations: list[list[dict[str, Any]]], *, n: int = 1, **kw: Any
    ) -> list[list[str]]:
        if not conversations:
            return []
        return self.backend.generate(conversations, n=n, **kw)

    def rewrite(self, drafts: list[Draft]) -> dict[str, int]:
        """Let the model rewrite each rewritable draft's instruction; keep the template where the output is
        unusable. Returns counts by path (model / template) for the manifest."""
        todo = [d for d in drafts if d.rewrite]
        counts = {"model": 0, "template": len(drafts) - len(todo)}
        if not todo or not self.enabled:
            counts["template"] += len(todo)
            return counts
        convs = [
            [
                {"role": "system", "content": templates.REWRITE_SYSTEM},
                {"role": "user", "content": templates.rewrite_request(d.instruction)},
            ]
            for d in todo
        ]
        outputs = self.generate(convs, n=1, max_new_tokens=self.rewrite_max_new_tokens)
        for draft, out in zip(todo, outputs, strict=True):
            text = clean_rewrite(out[0])
            problem = quality_problem(text, max_chars=max(600, 3 * len(draft.instruction)))
            if problem is None:
                draft.instruction = text
                draft.origin = "model"
                counts["model"] += 1
            else:
                self.rejections[problem] += 1
                counts["template"] += 1
        return counts

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "loaded": self._backend is not None}
        if self._backend is not None:
            out["backend"] = self._backend.name
            out["generation"] = self._backend.stats.as_dict()
        if self.rejections:
            out["rewrite_rejected"] = dict(self.rejections)
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
