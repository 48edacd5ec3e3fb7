"""The recipe's RL settings as a TRL `GRPOConfig` (TRL 1.16 names).

| recipe (verl)                         | RLSpec              | GRPOConfig                                      |
|---------------------------------------|---------------------|-------------------------------------------------|
| rollout.n = 8                         | numGenerations      | num_generations                                 |
| lr 5e-7, constant                     | learningRate        | learning_rate, lr_scheduler_type="constant"     |
| kl_loss_coef 0.001, low_var_kl        | klCoef              | beta (TRL's KL is the same k3 estimator)        |
| clip_ratio 0.2                        | clipRatio           | epsilon                                         |
| entropy_coeff 0.001                   | entropyCoef         | entropy_coef                                    |
| temperature 1.0                       | temperature         | temperature                                     |
| response length 3072                  | maxCompletionLength | max_completion_length                           |
| prompt length 2048                    | maxPromptLength     | (no field: prompts are fitted when loading)     |
| token-mean loss aggregation           | -                   | loss_type="dapo"                                |
| one update per step (mini = batch)    | -                   | num_iterations=1, steps_per_generation = accum  |
| vLLM TP 2, memory 0.6                 | vllm.*              | vllm_tensor_parallel_size, vllm_gpu_memory_...  |

verl's KL loss has no importance weight, so `use_bias_correction_kl` is off. Micro-batches: one optimizer step per
RL step over `promptsPerDevice` prompts; each micro-step holds one group (numGenerations rows) before dynamic
sampling changes the batch, so gradient accumulation = promptsPerDevice.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trl import GRPOConfig

    from purpcode_operator.api import RLSpec
    from purpcode_operator.plan import StageConfig

VLLM_SERVER_URL_ENV = "PURPCODE_VLLM_SERVER_URL"


def plan_max_steps(spec: RLSpec, n_train: int, world_size: int) -> tuple[int, int | None]:
    """(max_steps, prompt budget). maxSteps wins when set (the stream cycles); otherwise the epochs' prompts
    bound the run and max_steps is the most steps they could fill (dynamic sampling may use them up sooner)."""
    per_step = spec.prompts_per_device * world_size
    if spec.max_steps > 0:
        return spec.max_steps, None
    budget = max(1, math.ceil(spec.epochs * n_train))
    if budget < world_size:
        raise ValueError(
            f"{n_train} training prompts x epochs {spec.epochs} = {budget} prompts cannot give each of "
            f"{world_size} ranks one prompt: add data or raise epochs"
        )
    return max(1, math.ceil(budget / per_step)), budget


def use_vllm(cfg: StageConfig, spec: RLSpec, on_gpu: bool) -> bool:
    """vLLM rollouts: the spec's choice, by default on when the stage has GPUs."""
    wanted = spec.use_vllm if spec.use_vllm is not None else cfg.gpus_per_node > 0
    if wanted and not on_gpu:
        raise ValueError(
            "useVllm is on but no GPU is visible: vLLM rollouts need GPUs (set useVllm: false on CPU)"
        )
    return wanted


def build_grpo_config(
    cfg: StageConfig,
    spec: RLSpec,
    out_dir: str | os.PathLike[str],
    *,
    max_steps: int,
    on_gpu: bool,
    deepspeed: dict[str, Any] | None = None,
    report_to: list[str] | None = None,
) -> GRPOConfig:
    """The GRPOConfig for this stage; checkpoints go to `<out>/checkpoints`."""
    from trl import GRPOConfig

    vllm = use_vllm(cfg, spec, on_gpu)
    bf16 = bool(spec.bf16 and on_gpu)
    kwargs: dict[str, Any] = {}
    if vllm:
        kwargs.update(
            use_vllm=True,
            vllm_mode=spec.vllm.mode,
            vllm_tensor_parallel_size=spec.vllm.tensor_parallel_size,
            vllm_gpu_memory_utilization=spec.vllm.gpu_memory_utilization,
            vllm_max_model_length=spec.max_prompt_length + spec.max_completion_length,
        )
        if spec.vllm.mode == "server":
            url = os.environ.get(VLLM_SERVER_URL_ENV)
            if not url:
                raise ValueError(
                    f"vllm.mode 'server' needs the rollout server's URL in ${VLLM_SERVER_URL_ENV} "
                    "(a `trl vllm-serve` process on other GPUs), or use vllm.mode 'colocate'"
                )
            kwargs["vllm_server_base_url"] = url
    return GRPOConfig(
        output_dir=str(Path(out_dir) / "checkpoints"),
        # rollouts
        num_generations=spec.num_generations,
        num_generations_eval=1,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        top_p=1.0,
        # batch: one update per step over promptsPerDevice prompts, one group per micro-step
        per_device_train_batch_size=spec.num_generations,
        gradient_accumulation_steps=spec.prompts_per_device,
        steps_per_generation=spec.prompts_per_device,
        num_iterations=1,
        # objective
        learning_rate=spec.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.01,
        max_grad_norm=1.0,
        beta=spec.kl_coef,
        epsilon=spec.clip_ratio,
        epsilon_high=spec.clip_ratio,  # symmetric clipping, as the recipe (no clip-higher)
        entropy_coef=spec.entropy_coef,
        loss_type="dapo",
        scale_rewards="group",
        use_bias_correction_kl=False,
        mask_truncated_completions=False,
        # schedule
        max_steps=max_steps,
        save_strategy="steps",
        save_steps=spec.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        logging_steps=1,
        logging_first_step=True,
        report_to=report_to or [],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        # hardware
        use_cpu=not on_gpu,
        bf16=bf16,
        activation_checkpointing=spec.gradient_checkpointing,
        model_init_kwargs={"dtype": "bfloat16" if bf16 else "float32"},
        deepspeed=deepspeed,
        dataloader_num_workers=0,
        **kwargs,
    )
