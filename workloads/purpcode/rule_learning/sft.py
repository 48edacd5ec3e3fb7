"""SFT on the chosen samples with TRL's SFTTrainer: packing, loss on the last assistant turn only, DeepSpeed.

Loss masking: each example is a conversational prompt-completion pair (prompt = system prompt + conversation,
completion = the chosen answer), so TRL's completion-only loss puts labels on the last assistant turn only; earlier
assistant turns of multi-turn prompts stay context. When the chat template has `{% generation %}` markers TRL's
assistant mask is applied as well, which trims the completion to exactly the answer and its end-of-turn token.
TRL builds the labels before packing, so packing keeps the masks (tests assert both on the labels).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from purpcode.prompts import SYSTEM_PROMPT, template_with_default_system
from purpcode_operator.api import SFTSpec

if TYPE_CHECKING:
    from purpcode.metrics import StageMetrics

log = logging.getLogger(__name__)

_GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")


def has_generation_markers(tokenizer: Any) -> bool:
    """True when the tokenizer's chat template marks assistant text with `{% generation %}`."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # named templates
        template = template.get("default", "") or ""
    return bool(_GENERATION_MARKER.search(str(template)))


def prompt_completion(messages: Sequence[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Split an SFT conversation into TRL's conversational prompt-completion form."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("an SFT conversation must end with the assistant turn to train on")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {"prompt": clean[:-1], "completion": clean[-1:]}


def token_length(tokenizer: Any, messages: Sequence[dict[str, str]]) -> int:
    """Tokens of a whole conversation as the chat template renders it."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_to_length(
    records: Sequence[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[dict[str, Any]], int]:
    """(records that fit in `max_length` tokens, how many were dropped).

    Why drop instead of truncate: truncation keeps the start, so an over-long example would train on an answer cut
    off before its end-of-turn token (or on no answer token at all); the reference's trainer drops them too.
    """
    keep = [r for r in records if token_length(tokenizer, r["messages"]) <= max_length]
    dropped = len(records) - len(keep)
    if dropped:
        log.warning("dropped %d of %d SFT examples longer than %d tokens", dropped, len(records), max_length)
    if records and not keep:
        raise ValueError(
            f"every SFT example is longer than sft.maxSeqLength={max_length} tokens: raise sft.maxSeqLength"
        )
    return keep, dropped


def build_dataset(records: Sequence[dict[str, Any]]) -> Any:
    """A `datasets.Dataset` of prompt-completion pairs from sft.jsonl records (each with `messages`)."""
    from datasets import Dataset

    if not records:
        raise ValueError("no SFT examples: rejection sampling kept no sample (see samples.jsonl)")
    return Dataset.from_list([prompt_completion(r["messages"]) for r in records])


def sft_config(
    spec: SFTSpec,
    *,
    output_dir: str | Path,
    seed: int,
    deepspeed: dict[str, Any] | None,
    assistant_masks: bool,
    gpu: bool | None = None,
    logging_steps: int = 1,
) -> Any:
    """The `trl.SFTConfig` for a spec (checkpoints every `save_steps`, no external reporters).

    Train with `sft_callbacks(...)`: with save_strategy "steps" the Trainer alone would also write a full
    checkpoint at the last step, which the stage does not need (it saves the final model).
    """
    from trl import SFTConfig

    from purpcode.training.hf import model_init_kwargs, precision_kwargs

    precision = precision_kwargs(spec.bf16, gpu=gpu)
    on_gpu = not precision.get("use_cpu", False)
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns).
    ckpt_field = (
        "activation_checkpointing"
        if "activation_checkpointing" in SFTConfig.__dataclass_fields__
        else "gradient_checkpointing"
    )
    extra: dict[str, Any] = {ckpt_field: spec.gradient_checkpointing, **precision}
    return SFTConfig(
        output_dir=str(output_dir),
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_steps,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        max_length=spec.max_seq_length,
        packing=spec.packing,
        per_device_train_batch_size=spec.per_device_batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        max_grad_norm=spec.max_grad_norm,
        weight_decay=spec.weight_decay,
        # REX is not an HF scheduler name: the trainer class of `build_trainer` builds it from this marker.
        lr_scheduler_type="linear" if spec.lr_scheduler == "rex" else spec.lr_scheduler,
        lr_scheduler_kwargs={REX_MARKER: "rex"} if spec.lr_scheduler == "rex" else {},
        save_strategy="steps",
        save_steps=spec.save_steps,
        logging_steps=logging_steps,
        report_to=[],
        seed=seed,
        data_seed=seed,
        completion_only_loss=True,
        assistant_only_loss=assistant_masks,
        deepspeed=deepspeed,
        model_init_kwargs=model_init_kwargs(spec.bf16, deepspeed=deepspeed is not None, gpu=on_gpu),
        dataloader_num_workers=0,
        disable_tqdm=True,
        **extra,
    )


def sft_callbacks(metrics: StageMetrics | None, *, extra: dict[str, Any] | None = None) -> list[Any]:
    """The callbacks the stage trains with (the bench uses the same list).

    `MetricsCallback` feeds StageMetrics (`metrics` is None off the main rank); `SkipFinalCheckpoint` drops the
    Trainer's full checkpoint at the last step, since the stage saves the final model right after.
    """
    from purpcode.training.callbacks import MetricsCallback, SkipFinalCheckpoint

    return [MetricsCallback(metrics, extra=extra), SkipFinalCheckpoint()]


def build_trainer(
    model_path: str | Path,
    tokenizer: Any,
    dataset: Any,
    config: Any,
    *,
    callbacks: Sequence[Any] = (),
) -> Any:
    """An SFTTrainer for a model directory (loaded by TRL, so ZeRO-3 partitions it while loading)."""
    return sft_trainer_class()(
        model=str(model_path),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


REX_MARKER = "purpcode_schedule"


def sft_trainer_class() -> Any:
    """TRL's SFTTrainer whose `create_scheduler` builds REX when the config asks for it (`REX_MARKER`).

    Why a subclass of this one hook rather than a fork: everything else (DeepSpeed, which calls `create_scheduler`
    too, resume, logging) stays the Trainer's own.
    """
    from trl import SFTTrainer

    from purpcode.rule_learning.schedule import get_rex_schedule_with_warmup

    class PurpCodeSFTTrainer(SFTTrainer):  # type: ignore[misc]
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            raw = self.args.lr_scheduler_kwargs
            kwargs: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
            if self.lr_scheduler is None and kwargs.pop(REX_MARKER, None) == "rex":
                self.lr_scheduler = get_rex_schedule_with_warmup(
                    optimizer if optimizer is not None else self.optimizer,
                    num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                    num_training_steps=num_training_steps,
                    **kwargs,
                )
                self._created_lr_scheduler = True
                return self.lr_scheduler
            return super().create_scheduler(num_training_steps, optimizer)

    return PurpCodeSFTTrainer


def load_tokenizer(model_path: str | Path, *, default_system: str | None = SYSTEM_PROMPT) -> Any:
    """The model's tokenizer with a pad token (the end-of-text token when it has none).

    With `default_system` its chat template gets that text as the default system turn (the reference's SFT chat
    template does this), so the saved model, given no system turn, sees the prompt it was trained under.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    template = getattr(tok, "chat_template", None)
    if default_system is not None and isinstance(template, str) and template:
        tok.chat_template = template_with_default_system(template, default_system)
    return tok
