"""TRL's GRPOTrainer with the recipe's dynamic sampling, a resumable prompt stream and validation.

How it hooks into TRL 1.16 (read `trl/trainer/grpo_trainer.py`): TRL generates once per optimizer step inside
`_prepare_inputs` -> `_generate_and_score_completions`, then splits the batch into `steps_per_generation`
micro-batches. This subclass replaces that one step:

1. Rollouts: prompts come from our `PromptStream` (a variable count per step), `self._generate` produces the
   completions (vLLM or `model.generate`), `self._calculate_rewards` scores them with the oracles (gathered over
   ranks). Done once per round; single-step mode has exactly one round.
2. Selection: `sampling.select_step` picks the groups with reward variance (or all, or a refill batch) over all
   ranks; groups move between ranks (`purpcode.rl.exchange`) so no informative group is dropped to equalise
   them, and a rank left one short runs a masked filler group.
3. Training batch: TRL's own `_generate_and_score_completions` runs again on the kept groups only, with generation
   and rewards served from step 1's cache, so reference log-probs, advantages and the loss normaliser are computed
   on exactly the rows the loss sees; dropped groups never reach `compute_loss`.
4. The variable batch is split into `steps_per_generation` micro-batches of unequal size. A micro-batch with no
   row is skipped without a backward pass (AdamW leaves parameters without gradients untouched, so a step where
   every group was dropped changes nothing); under DeepSpeed it runs as a fully masked row instead, since the
   engine counts backward calls.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from trl import GRPOTrainer
from trl.trainer.utils import shuffle_sequence_dict

from purpcode.data.schema import write_json_atomic
from purpcode.metrics import StageMetrics
from purpcode.rl.data import PromptStream, RLExample
from purpcode.rl.exchange import exchange_groups
from purpcode.rl.sampling import (
    GroupRef,
    GroupSelection,
    Mode,
    SamplingState,
    filter_groups,
    plan_prompt_count,
    refill_done,
)
from purpcode.rl.sampling import select_step as select_groups

log = logging.getLogger(__name__)

STATE_FILE = "purpcode_rl_state.json"
ORACLE_IDS: tuple[str, ...] = ("correctness", "codesec", "general-safety", "noreject")
LIVE_KEY = "purpcode_live"  # 1 for a row that trains, 0 for a masked filler row
ROW_KEY = "purpcode_row"  # index of the row's prompt in the training examples (for logs and tests)


@dataclass
class _Round:
    """One generation round: what was generated and how it scored."""

    examples: list[int]  # this rank's prompt indices
    examples_all: list[int]  # every rank's prompt indices, rank after rank (per_rank each)
    inputs: list[dict[str, Any]]  # this rank's reward rows, num_generations per prompt
    generation: tuple[Any, ...]  # `GRPOTrainer._generate`'s 8-tuple, this rank's rows
    rewards_all: torch.Tensor  # (world * rows, n_funcs), every rank's rows in rank order
    per_rank: int  # prompts per rank in this round
    selections: list[GroupSelection]  # one per rank
    scores: list[Any]  # this rank's Score objects


def _take_rows(generation: tuple[Any, ...], rows: list[int]) -> list[Any]:
    """Select rows from each per-row list of a `_generate` result (None and dict entries pass through)."""
    prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, images, tool_images = generation

    def pick(values: Any) -> Any:
        return None if values is None else [values[i] for i in rows]

    return [
        pick(prompt_ids),
        pick(completion_ids),
        pick(tool_mask),
        pick(completions),
        pick(logprobs),
        extra,
        pick(images),
        pick(tool_images) if tool_images else tool_images,
    ]


def split_micro_batches(batch: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
    """Split a training batch into `chunks` micro-batches along rows, sizes as equal as possible.

    With fewer rows than chunks the leading chunks are filler rows (copies of row 0, loss mask and advantage
    zeroed, `purpcode_live` 0) and the real rows come last: the last micro-step is where DDP synchronises
    gradients, so it must never be the one that is skipped.
    """
    rows = int(batch[LIVE_KEY].shape[0])
    if rows == 0:
        raise ValueError("split_micro_batches needs at least one row")
    if rows >= chunks:
        bounds = [round(i * rows / chunks) for i in range(chunks + 1)]
        spans = [(bounds[i], bounds[i + 1]) for i in range(chunks)]
    else:
        spans = [(-1, -1)] * (chunks - rows) + [(i, i + 1) for i in range(rows)]
    out = []
    for lo, hi in spans:
        chunk: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                chunk[key] = value
            elif isinstance(value, torch.Tensor | list):
                chunk[key] = value[lo:hi] if lo >= 0 else value[0:1]
            else:
                chunk[key] = value
        if lo < 0:
            chunk = _filler(chunk)
        out.append(chunk)
    return out


def _filler(chunk: dict[str, Any]) -> dict[str, Any]:
    """A copy of a one-row chunk that contributes nothing: loss mask, advantage and liveness zeroed."""
    out = dict(chunk)
    for key in ("completion_mask", "advantages", LIVE_KEY):
        if isinstance(out.get(key), torch.Tensor):
            out[key] = torch.zeros_like(out[key])
    if isinstance(out.get("tool_mask"), torch.Tensor):
        out["tool_mask"] = torch.zeros_like(out["tool_mask"])
    return out


class PurpCodeGRPOTrainer(GRPOTrainer):
    """GRPO with single-step dynamic sampling (or refill / none), oracle metrics and resumable sampling state."""

    def __init__(
        self,
        *args: Any,
        examples: Sequence[RLExample],
        stream: PromptStream,
        sampling_mode: Mode = "single-step",
        max_oversample: float = 4.0,
        zero_variance_std: float = 1e-5,
        stage_metrics: StageMetrics | None = None,
        scores_of: Callable[[], list[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.num_iterations != 1:
            raise ValueError("the RL stage makes one policy update per generation (num_iterations=1)")
        self.examples = list(examples)
        self.stream = stream
        self.sampling_mode: Mode = sampling_mode
        self.max_oversample = max_oversample
        self.zero_variance_std = zero_variance_std
        self.stage_metrics = stage_metrics
        self.scores_of = scores_of
        self.sampling = SamplingState()
        self.last_selection: Any = None
        self._cached_generation: list[Any] | None = None
        self._cached_rewards: torch.Tensor | None = None
        self._prepared: tuple[int, dict[str, Any]] | None = None
        self.trained_rows = 0  # rows that reached the loss (live rows), over the run

    # ------------------------------------------------------------------ sizes

    @property
    def group_size(self) -> int:
        return int(self.num_generations or 0)

    @property
    def policy(self) -> Any:
        """The model being trained (typed loosely: the Trainer's attribute may be a wrapper)."""
        return self.model

    @property
    def prompts_per_step(self) -> int:
        """Prompts per rank per optimizer step (the recipe's batch, before dynamic sampling)."""
        args: Any = self.args
        return int(args.per_device_train_batch_size * args.steps_per_generation) // self.group_size

    # ------------------------------------------------------------------ TRL hooks

    def _generate(self, prompts: list[Any]) -> Any:
        if self._cached_generation is not None:
            cached, self._cached_generation = self._cached_generation, None
            return tuple(cached)
        return super()._generate(prompts)

    def _calculate_rewards(
        self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any
    ) -> Any:
        if self._cached_rewards is not None:
            cached, self._cached_rewards = self._cached_rewards, None
            return cached
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        if not self.policy.training:
            return super()._prepare_inputs(generation_batch)  # type: ignore[no-any-return]
        # HF's training_step calls this again after our own training_step did: same step, same micro-batch.
        if self._prepared is not None and self._prepared[0] == self._step:
            return self._prepared[1]
        spg = int(getattr(self.args, "steps_per_generation", 1))
        buffered: Any = self._buffered_inputs
        if self._step % spg == 0 or buffered is None:
            batch = shuffle_sequence_dict(self._dynamic_step())
            buffered = split_micro_batches(batch, spg)
            self._buffered_inputs = buffered
        inputs = buffered[self._step % spg]
        self._prepared = (self._step, inputs)
        return inputs  # type: ignore[no-any-return]

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        model.train()
        prepared = self._prepare_inputs(inputs)
        live = int(prepared[LIVE_KEY].sum().item())
        self.trained_rows += live
        if live == 0 and not self.is_deepspeed_enabled:
            # Nothing to learn from in this micro-batch: no forward, no backward, no gradient.
            self._step += 1
            return torch.zeros((), device=self.accelerator.device)
        return super().training_step(model, inputs, num_items_in_batch)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ one step of dynamic sampling

    def _generate_round(self, n_prompts: int) -> _Round | None:
        world = self.accelerator.num_processes
        rank = self.accelerator.process_index
        drawn = self.stream.take(n_prompts * world)
        per = len(drawn) // world
        if per == 0:
            return None
        mine = drawn[rank * per : (rank + 1) * per]
        g = self.group_size
        inputs = [self.examples[i].reward_row() for i in mine for _ in range(g)]
        prompts = [x["prompt"] for x in inputs]

        started = time.perf_counter()
        generation = super()._generate(prompts)
        gen_seconds = time.perf_counter() - started
        completion_ids = generation[1]
        started = time.perf_counter()
        rewards_all = super()._calculate_rewards(inputs, prompts, generation[3], completion_ids)
        reward_seconds = time.perf_counter() - started
        scores = self.scores_of() if self.scores_of is not None else []

        total = self._total_reward(rewards_all)
        rows = per * g
        selections = [
            filter_groups(total[k * rows : (k + 1) * rows].tolist(), g, self.zero_variance_std)
            for k in range(world)
        ]
        self._round_metrics(inputs, completion_ids, total, scores, gen_seconds, reward_seconds)
        return _Round(mine, drawn[: per * world], inputs, generation, rewards_all, per, selections, scores)

    def _total_reward(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        total = (rewards_per_func * weights).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return total

    def _dynamic_step(self) -> dict[str, Any]:
        batch = self.prompts_per_step
        g = self.group_size
        if self.sampling_mode == "single-step":
            first = plan_prompt_count(batch, self.sampling.last_ratio, self.max_oversample)
        else:
            first = batch
        max_rounds = max(1, math.ceil(self.max_oversample)) if self.sampling_mode == "refill" else 1
        rounds: list[_Round] = []
        while len(rounds) < max_rounds:
            rnd = self._generate_round(first if not rounds else batch)
            if rnd is None:
                break
            rounds.append(rnd)
            if self.sampling_mode != "refill" or refill_done([r.selections for r in rounds], batch):
                break
        if not rounds:
            raise RuntimeError(
                "the prompt stream is exhausted: training should have stopped at the end of the last step"
            )
        selection = select_groups([r.selections for r in rounds], self.sampling_mode, batch)
        self.last_selection = selection
        self.sampling.update(selection)
        self._count_selection(rounds, selection)

        rank = self.accelerator.process_index
        world = self.accelerator.num_processes

        def group_rows(g_idx: int) -> list[int]:
            return list(range(g_idx * g, (g_idx + 1) * g))

        # Groups generated here but trained on another rank travel there (collective: every rank calls it).
        received = (
            exchange_groups(
                selection.kept, rank, lambda ref: _take_rows(rounds[ref[0]].generation, group_rows(ref[2]))
            )
            if selection.groups_moved
            else {}
        )
        # Every rank runs the same number of slots: its kept groups, then masked fillers (one when nothing is kept).
        slots_per_rank = max(1, max(len(k) for k in selection.kept) if selection.kept else 0)

        def slots(k: int) -> list[tuple[GroupRef, bool]]:
            real = [(ref, True) for ref in selection.kept[k]]
            return real + [((0, k, 0), False)] * (slots_per_rank - len(real))

        generation_parts: list[list[Any]] = []
        inputs: list[dict[str, Any]] = []
        row_ids: list[int] = []
        live: list[int] = []
        for (r, src, grp), is_live in slots(rank):
            rnd = rounds[r]
            if src == rank:
                generation_parts.append(_take_rows(rnd.generation, group_rows(grp)))
            else:
                generation_parts.append(list(received[(r, src, grp)]))
            example = rnd.examples_all[src * rnd.per_rank + grp]
            inputs.extend(self.examples[example].reward_row() for _ in range(g))
            row_ids.extend([example] * g)
            live.extend([1 if is_live else 0] * g)
        generation = self._concat_generation(generation_parts)
        # Every rank's slots in rank order: the layout TRL's gathered rewards have.
        reward_rows = []
        for k in range(world):
            for (r, src, grp), _ in slots(k):
                base = src * rounds[r].per_rank * g + grp * g
                reward_rows.append(rounds[r].rewards_all[base : base + g])
        self._cached_generation = generation
        self._cached_rewards = torch.cat(reward_rows, dim=0)
        try:
            out = super()._generate_and_score_completions(inputs)
        finally:
            self._cached_generation = None
            self._cached_rewards = None
        device = out["completion_ids"].device
        live_t = torch.tensor(live, dtype=torch.long, device=device)
        out[ROW_KEY] = torch.tensor(row_ids, dtype=torch.long, device=device)
        out[LIVE_KEY] = live_t
        # Filler rows contribute nothing: no loss tokens, no advantage, and not in the loss normaliser (which TRL
        # summed over every rank's rows, fillers included, so it is summed again; a collective on every rank).
        out["completion_mask"] = out["completion_mask"] * live_t.unsqueeze(1).to(out["completion_mask"].dtype)
        out["advantages"] = out["advantages"] * live_t.to(out["advantages"].dtype)
        loss_mask = out["completion_mask"]
        if isinstance(out.get("tool_mask"), torch.Tensor):
            loss_mask = loss_mask * out["tool_mask"]
        total_items = self.accelerator.gather(loss_mask.sum().reshape(1)).sum()
        out["num_items_in_batch"] = total_items.to(out["num_items_in_batch"].dtype).reshape(
            out["num_items_in_batch"].shape
        )
        return out

    @staticmethod
    def _concat_generation(parts: list[list[Any]]) -> list[Any]:
        out: list[Any] = []
        for field in range(8):
            values = [p[field] for p in parts]
            if field == 5:  # extra_fields: a dict (empty without rollout_func)
                out.append(values[0])
            elif all(v is None for v in values):
                out.append(None)
            else:
                out.append([x for v in values for x in (v or [])])
        return out

    # ------------------------------------------------------------------ metrics

    def _round_metrics(
        self,
        inputs: list[dict[str, Any]],
        completion_ids: list[list[int]],
        total: torch.Tensor,
        scores: list[Any],
        gen_seconds: float,
        reward_seconds: float,
    ) -> None:
        device = self.accelerator.device
        oracle_idx = torch.tensor([ORACLE_IDS.index(x["oracle"]) for x in inputs], device=device)
        lengths = torch.tensor([len(c) for c in completion_ids], dtype=torch.float32, device=device)
        fmt = torch.tensor(
            [1.0 if getattr(s, "format_ok", False) else 0.0 for s in scores]
            if len(scores) == len(inputs)
            else [math.nan] * len(inputs),
            device=device,
        )
        oracle_all = self.accelerator.gather(oracle_idx)
        lengths_all = self.accelerator.gather(lengths)
        fmt_all = self.accelerator.gather(fmt)
        m = self._metrics["train"]
        valid = ~torch.isnan(total)
        m["reward_mean"].append(total[valid].mean().item() if valid.any() else math.nan)
        for i, name in enumerate(ORACLE_IDS):
            sel = (oracle_all == i) & valid
            if sel.any():
                values = total[sel]
                m[f"reward/{name}"].append(values.mean().item())
                m[f"pass_rate/{name}"].append((values >= 1.0).float().mean().item())
        if not torch.isnan(fmt_all).all():
            m["format_pass_rate"].append(torch.nanmean(fmt_all).item())
        m["response_length"].append(lengths_all.mean().item())
        m["generation_seconds"].append(gen_seconds)
        m["reward_seconds"].append(reward_seconds)
        if gen_seconds > 0:
            m["generation_tokens_per_second"].append(lengths_all.sum().item() / gen_seconds)

    def _count_selection(self, rounds: list[_Round], sel: Any) -> None:
        m = self._metrics["train"]
        # Sums over the step's rounds; TRL averages list entries at log time, so log once per step.
        m["prompts_generated"].append(float(sel.groups_generated))
        m["groups_kept"].append(float(sel.groups_kept))
        m["groups_dropped"].append(float(sel.groups_dropped))
        m["groups_moved"].append(float(sel.groups_moved))
        m["zero_variance_groups"].append(float(sel.zero_variance_groups))
        m["groups_dropped_fraction"].append(
            sel.groups_dropped / sel.groups_generated if sel.groups_generated else 0.0
        )
        m["wasted_samples"].append(float(sel.samples_wasted))
        m["generation_rounds"].append(float(sel.rounds))
        m["variance_ratio"].append(sel.variance_ratio)
        m["groups_kept_total"].append(float(self.sampling.groups_kept))
        m["groups_dropped_total"].append(float(self.sampling.groups_dropped))
        m["wasted_samples_total"].append(float(self.sampling.samples_wasted))
        # "reward_seconds" is a per-round entry; fold it into one per-step sum.
        for key in ("reward_seconds", "generation_seconds"):
            if len(m[key]) > 1:
                m[key] = [sum(m[key])]
        sm = self.stage_metrics
        if sm is not None and self.accelerator.is_main_process:
            sm.groups.labels(sm.run, sm.stage, "kept").inc(sel.groups_kept)
            sm.groups.labels(sm.run, sm.stage, "dropped").inc(sel.groups_dropped)
            sm.wasted.labels(sm.run, sm.stage).inc(sel.samples_wasted)
            for rnd in rounds:
                for ex in rnd.examples:
                    sm.count(self.examples[ex].oracle, "generated", self.group_size)

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # Written before the Trainer's own files: trainer_state.json comes last and marks the checkpoint complete,
        # so a complete checkpoint always has the sampling state too.
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            out = (
                Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            write_json_atomic(out / STATE_FILE, self.rl_state())
        super()._save_checkpoint(model, trial)

    def rl_state(self) -> dict[str, Any]:
        return {"sampling": self.sampling.model_dump(), "stream": self.stream.state_dict()}

    def _load_optimizer_and_scheduler(self, checkpoint: Any) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = Path(checkpoint) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: this checkpoint was not written by the RL stage; delete {checkpoint} to start "
                "over"
            )
        state = json.loads(path.read_text(encoding="utf-8"))
        self.sampling = SamplingState.model_validate(state["sampling"])
        self.stream.load_state_dict(state["stream"])
        log.info("resumed dynamic sampling at step %s: %s", checkpoint, state)

    # ------------------------------------------------------------------ validation

    @contextmanager
    def greedy(self) -> Iterator[None]:
        """Greedy decoding for validation (the reference validates at temperature 0, one sample per prompt)."""
        if self.use_vllm:
            old_t = self.vllm_generation.temperature
            self.vllm_generation.temperature = 0.0
            try:
                yield
            finally:
                self.vllm_generation.temperature = old_t
            return
        old_cfg, old_kwargs = self.generation_config, self.generation_kwargs
        cfg = copy.deepcopy(old_cfg)
        cfg.do_sample, cfg.temperature, cfg.top_p, cfg.top_k, cfg.min_p = False, None, None, None, None
        self.generation_config = cfg
        self.generation_kwargs = {
            **old_kwargs,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "min_p": None,
        }
        try:
            yield
        finally:
            self.generation_config, self.generation_kwargs = old_cfg, old_kwargs

    def generate_validation(self, examples: Sequence[RLExample], batch_rows: int) -> list[tuple[int, str]]:
        """Greedy answers for this rank's share of `examples`: (example index, text) pairs.

        Every rank runs the same number of generation calls (vLLM and the gathers inside are collective), so
        shares are padded with the last example; padding answers are not returned.
        """
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        share = math.ceil(len(examples) / world) if examples else 0
        idx = list(range(rank * share, min(len(examples), (rank + 1) * share)))
        real = len(idx)
        while len(idx) < share:
            idx.append(len(examples) - 1)
        was_training = self.policy.training
        self.policy.eval()
        out: list[tuple[int, str]] = []
        try:
            with self.greedy(), torch.no_grad():
                for lo in range(0, share, max(1, batch_rows)):
                    chunk = idx[lo : lo + batch_rows]
                    generation = super()._generate([examples[i].prompt for i in chunk])
                    for j, (i, completion) in enumerate(zip(chunk, generation[3], strict=True)):
                        if lo + j < real:
                            text = completion if isinstance(completion, str) else completion[0]["content"]
                            out.append((i, text))
        finally:
            self._metrics["eval"].clear()
            if was_training:
                self.policy.train()
        return out


class StopWhenExhausted(TrainerCallback):
    """End training when the prompt stream cannot fill another step (epoch budget spent).

    That step is the last one, so like `SkipFinalCheckpoint` at max_steps it writes no full checkpoint (even at a
    multiple of saveSteps): the stage saves the final model right after. Add it after the default callbacks.
    """

    def __init__(self, trainer: PurpCodeGRPOTrainer) -> None:
        self.trainer = trainer

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        remaining = self.trainer.stream.remaining
        if remaining is not None and remaining < self.trainer.accelerator.num_processes:
            log.info("prompt budget spent after step %d: stopping", state.global_step)
            control.should_training_stop = True
            control.should_save = False


def write_state_snapshot(path: str | os.PathLike[str], trainer: PurpCodeGRPOTrainer) -> None:
    """The final dynamic-sampling counters, next to the model."""
    write_json_atomic(path, trainer.rl_state())
