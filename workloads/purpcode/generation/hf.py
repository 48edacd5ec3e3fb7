"""The transformers backend: batched, left-padded `generate` on CPU or one GPU (the fallback when vLLM is absent)."""

from __future__ import annotations

import logging
import os
from typing import Any

from purpcode.generation.base import (
    Conversation,
    GenerationBackend,
    GenerationError,
    SamplingParams,
    batch_seed,
)

LOG = logging.getLogger(__name__)
SMALL_MODEL_PARAMS = 50_000_000


def render_plain(conversation: Conversation) -> str:
    """A minimal prompt for tokenizers without a chat template (base models): role-tagged turns."""
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
    return "\n\n".join(parts) + "\n\nAssistant:"


class TransformersBackend(GenerationBackend):
    """`AutoModelForCausalLM.generate` over left-padded batches, seeded per batch.

    Sampling is reproducible: each batch seeds torch from the run seed and the batch's content (see `batch_seed`).
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str,
        *,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        batch_size: int = 64,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
            torch_dtype: Any = (
                getattr(torch, dtype)
                if dtype
                else (torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
            )
            loaded: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        except (OSError, ValueError) as err:
            raise GenerationError(f"cannot load model from {model_path!r}: {err}") from err
        self.model: Any = loaded.to(self.device)
        self.model.eval()
        self._limit_cpu_threads()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if not self._has_template:
            LOG.warning("tokenizer of %s has no chat template: using plain role-tagged prompts", model_path)

    def _limit_cpu_threads(self) -> None:
        """One intra-op thread for small models on CPU unless OMP_NUM_THREADS says otherwise.

        Why: the matrices of a model this small are too small to split across threads, and on a busy node (the local
        runner puts the stage, the judge and the sandbox on the same few cores) spinning worker threads made
        generation several times slower in wall time and CPU time alike.
        """
        if not self.device.startswith("cpu") or os.environ.get("OMP_NUM_THREADS"):
            return
        params = sum(p.numel() for p in self.model.parameters())
        if params < SMALL_MODEL_PARAMS and self._torch.get_num_threads() > 1:
            LOG.info("small model on CPU (%d parameters): generating with one thread", params)
            self._torch.set_num_threads(1)

    def render(self, conversation: Conversation) -> str:
        """The prompt text for one conversation (the model's chat template with the generation prompt)."""
        if self._has_template:
            text = self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return render_plain(conversation)

    def _generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[str]]:
        torch = self._torch
        out: list[list[str]] = []
        for start in range(0, len(conversations), self.batch_size):
            batch = conversations[start : start + self.batch_size]
            texts = [self.render(c) for c in batch]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                self.device
            )
            # Greedy decoding gives one answer per prompt: generate it once and repeat it n times.
            per_prompt = 1 if params.greedy else params.n
            kwargs: dict[str, Any] = {
                "max_new_tokens": params.max_new_tokens,
                "num_return_sequences": per_prompt,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if params.greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            torch.manual_seed(batch_seed(self.seed, batch))
            with torch.inference_mode():
                gen = self.model.generate(**enc, **kwargs)
            new_tokens = gen[:, enc["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i in range(len(batch)):
                texts_i = decoded[i * per_prompt : (i + 1) * per_prompt]
                out.append(texts_i * params.n if params.greedy else texts_i)
            self._progress(len(out), len(conversations))
        return out

    def close(self) -> None:
        super().close()
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
