"""The REX learning-rate schedule (reflected exponential; Chen et al., "REX: Revisiting Budgeted Training with an
Improved Schedule", 2021), which the reference trains rule learning with, on top of the HF scheduler API.

After a linear warmup the multiplier is (1 - p) / (1 - p / 2) for training progress p in [0, 1]: it stays close to
the peak longer than linear decay and falls to 0 at the last step. Built as a `LambdaLR`, like transformers'
`get_linear_schedule_with_warmup`, so checkpoints save and resume it the same way.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch.optim.lr_scheduler import LambdaLR


def rex_multiplier(
    step: int, *, num_warmup_steps: int, num_training_steps: int, min_ratio: float = 0.0
) -> float:
    """The REX factor on the peak learning rate at `step` (0-based, as LambdaLR counts)."""
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    span = max(1, num_training_steps - num_warmup_steps)
    progress = min(1.0, max(0.0, (step - num_warmup_steps) / span))
    rex = (1.0 - progress) / (1.0 - 0.5 * progress)
    return min_ratio + (1.0 - min_ratio) * rex


def get_rex_schedule_with_warmup(
    optimizer: Any,
    num_warmup_steps: int,
    num_training_steps: int,
    min_ratio: float = 0.0,
    last_epoch: int = -1,
) -> LambdaLR:
    """A `LambdaLR` with linear warmup to the optimizer's learning rate, then REX decay to `min_ratio` x it."""
    if num_training_steps < 1:
        raise ValueError(f"num_training_steps={num_training_steps}: REX needs the run's length (>= 1 step)")
    fn = partial(
        rex_multiplier,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        min_ratio=min_ratio,
    )
    return LambdaLR(optimizer, fn, last_epoch)
