"""Stage 2 of the PurpCode recipe: rule learning (context distillation with oracle rejection sampling, then SFT).

Entry point: ``python -m purpcode.rule_learning --config CONFIG --data DIR --out DIR``.

1. Prompt mix (`mix`): a share of each safety set's train split (capped per set) plus utility coding tasks.
2. Sampling (`sampling`, `teacher`): the base model answers each prompt N times under the teacher prompt (policy,
   reasoning steps, the relevant weakness rules) through the generation backends (vLLM on GPUs).
3. Rejection (`rejection`): answers normalised to `## Analysis` / `## Answer`, scored by the oracles; keep reward
   >= 0.5; best of N (highest reward, then shortest); prompts with a pass rate >= 0.7 are written to
   `easy_ids.json` for RL to skip.
4. SFT (`sft`): TRL SFTTrainer on the short system prompt + conversation + chosen answer, loss on the last
   assistant turn, packing, bf16 on GPUs, DeepSpeed ZeRO from the spec, checkpoints every N steps, resumed by
   itself from the newest complete checkpoint; final model in safetensors with a model card.

Multi-GPU / multi-node: the operator starts this module under ``torchrun`` (one pod per node of an Indexed Job,
``--nnodes``/``--node-rank``/rendezvous at pod 0). The HF Trainer picks up torchrun's RANK/LOCAL_RANK/WORLD_SIZE/
MASTER_ADDR/MASTER_PORT by itself. Rank 0 samples and selects (vLLM with the spec's tensor parallelism on its
node's GPUs, torchrun's variables hidden from it) while the other ranks wait for `sft.jsonl` on the shared
(ReadWriteMany) volume; then every rank trains. A single process without a launcher also works: DeepSpeed gets a
one-process world (`purpcode.training.distributed.ensure_launcher_env`).

Outputs in --out: prompts.jsonl, samples.jsonl (+ samples.done.json), sft.jsonl, easy_ids.json,
checkpoints/checkpoint-N/, model/ (safetensors, tokenizer, README.md), metrics.jsonl, summary.json, _SUCCESS last.
"""

from purpcode.rule_learning.rejection import read_easy_ids

__all__ = ["read_easy_ids"]
