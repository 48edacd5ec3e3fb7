"""Stage 3 of the PurpCode recipe: GRPO with the oracles as reward and single-step dynamic sampling.

Entry point: `python -m purpcode.rl --config CONFIG --data DIR --model DIR --out DIR`. Kept import-light: torch,
transformers and TRL are imported by the submodules that need them.
"""
