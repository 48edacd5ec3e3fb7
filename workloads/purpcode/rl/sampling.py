"""Dynamic sampling as pure functions: how many prompts to generate for, and which GRPO groups to train on.

Why pure: the selection rule decides what the policy learns from, so it is tested on constructed reward groups
without a model. The trainer only feeds rewards in and indexes tensors with what comes out.

Modes (RLSpec.dynamicSampling):
- single-step (the recipe): generate once for min(maxOversample x batch, batch / last non-zero-variance ratio)
  prompts, drop groups whose reward std <= zeroVarianceStd, train on what remains (a variable batch), never
  regenerate.
- refill (DAPO-style ablation): generate batch-sized rounds until `batch` groups with variance per rank are
  collected or the round budget is spent; train on exactly that many (fewer when the budget ran out).

Across ranks no informative group is dropped to equalise them: groups move from ranks with more to ranks with fewer
(`balance_groups`), and a rank left one short trains on a masked filler group.
- none: train on every group, zero-variance ones included (plain GRPO); they are still counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["single-step", "refill", "none"]
MODES: tuple[str, ...] = ("single-step", "refill", "none")


def plan_prompt_count(batch: int, last_ratio: float | None, max_oversample: float) -> int:
    """Prompts to generate for this step in single-step mode.

    `last_ratio` is the share of groups with non-zero reward variance at the previous step (None before the first
    step: no evidence, so generate for `batch`). A ratio of 0 asks for the cap.
    """
    if batch < 1:
        raise ValueError(f"batch={batch}: must be >= 1 prompt")
    if max_oversample < 1:
        raise ValueError(f"maxOversample={max_oversample}: must be >= 1")
    cap = max(batch, math.floor(max_oversample * batch))
    if last_ratio is None:
        return batch
    if last_ratio <= 0:
        return cap
    # Round the ratio's quotient to 9 places first so float noise (2 / 0.5000000001) does not add a prompt.
    wanted = math.ceil(round(batch / last_ratio, 9))
    return max(batch, min(cap, wanted))


def group_std(values: Sequence[float]) -> float:
    """Population std of one group's rewards, ignoring NaN (unscorable) entries; < 2 valid values give 0."""
    valid = [float(v) for v in values if not math.isnan(float(v))]
    if len(valid) < 2:
        return 0.0
    mean = sum(valid) / len(valid)
    return math.sqrt(sum((v - mean) ** 2 for v in valid) / len(valid))


class GroupSelection(BaseModel):
    """Which groups of one generation round carry a learning signal."""

    model_config = ConfigDict(extra="forbid")

    group_size: int
    stds: list[float]
    variance: list[int] = Field(description="Indices of groups whose reward std > the threshold.")
    zero_variance: list[int] = Field(description="Indices of groups whose reward std <= the threshold.")

    @property
    def groups(self) -> int:
        return len(self.stds)

    @property
    def ratio(self) -> float:
        """Share of groups with variance (the single-step planner's input for the next step)."""
        return len(self.variance) / self.groups if self.groups else 0.0


def filter_groups(rewards: Sequence[float], group_size: int, std_eps: float) -> GroupSelection:
    """Split consecutive reward groups of `group_size` into those with variance and those without.

    `rewards` holds one value per sample, the samples of a prompt next to each other (TRL's layout).
    """
    if group_size < 1:
        raise ValueError(f"group_size={group_size}: must be >= 1")
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    stds = [group_std(rewards[i : i + group_size]) for i in range(0, len(rewards), group_size)]
    return GroupSelection(
        group_size=group_size,
        stds=stds,
        variance=[g for g, s in enumerate(stds) if s > std_eps],
        zero_variance=[g for g, s in enumerate(stds) if s <= std_eps],
    )


GroupRef = tuple[
    int, int, int
]  # (generation round, rank that generated it, group index within that rank's round)


class StepSelection(BaseModel):
    """What one training step trains on, per rank, and the counters that go to the metrics."""

    model_config = ConfigDict(extra="forbid")

    kept: list[list[GroupRef]] = Field(
        description="Per rank: the groups it trains on (counts differ by at most one across ranks)."
    )
    fillers: list[int] = Field(
        description="Per rank: masked filler groups added so every rank runs the same number of groups."
    )
    groups_generated: int
    groups_kept: int
    groups_moved: int = Field(default=0, description="Kept groups trained on a rank other than their own.")
    groups_dropped: int = Field(
        description="Generated groups not trained on (zero variance or refill surplus)."
    )
    zero_variance_groups: int
    samples_generated: int
    samples_wasted: int
    variance_ratio: float = Field(description="Share of generated groups with reward variance.")
    rounds: int


def balance_groups(per_rank: Sequence[Sequence[GroupRef]]) -> list[list[GroupRef]]:
    """Spread every group over the ranks so their counts differ by at most one, moving as few as possible.

    Why: ranks train in lockstep, so they must run the same number of groups; trimming every rank to the smallest
    count (what a per-rank filter does) throws away informative groups. Here the surplus of the ranks with more
    moves to the ranks with fewer; the ranks left one short run one masked filler group (see `select_step`).
    """
    world = len(per_rank)
    total = sum(len(refs) for refs in per_rank)
    base, extra = divmod(total, world)
    # The `extra` ranks holding the most groups keep one more (fewer moves); ties go to the lower rank.
    order = sorted(range(world), key=lambda k: (-len(per_rank[k]), k))
    target = {k: base + (1 if i < extra else 0) for i, k in enumerate(order)}
    assigned = [list(per_rank[k][: target[k]]) for k in range(world)]
    surplus = [ref for k in range(world) for ref in per_rank[k][target[k] :]]
    for k in range(world):
        while len(assigned[k]) < target[k]:
            assigned[k].append(surplus.pop(0))
    return assigned


def select_step(rounds: Sequence[Sequence[GroupSelection]], mode: Mode, batch: int) -> StepSelection:
    """Choose the groups to train on from one step's generation rounds.

    `rounds[r][k]` is round r's selection on rank k (every rank sees every rank's rewards after the gather, so
    every rank computes the same selection). Every informative group is trained on (refill: at most `batch` per
    rank on average), wherever it was generated: `balance_groups` moves groups between ranks, and a rank left one
    short runs a masked filler group, since all ranks must run the same number of groups.
    """
    if not rounds:
        raise ValueError("select_step needs at least one generation round")
    world = len(rounds[0])
    if world < 1 or any(len(r) != world for r in rounds):
        raise ValueError("every generation round needs one selection per rank")
    group_size = rounds[0][0].group_size
    per_rank: list[list[GroupRef]] = []
    for k in range(world):
        if mode == "none":
            refs = [(r, k, g) for r, sel in enumerate(rounds) for g in range(sel[k].groups)]
        else:
            refs = [(r, k, g) for r, sel in enumerate(rounds) for g in sel[k].variance]
        per_rank.append(refs)
    if mode == "refill":
        # At most batch x world groups in all: trim the fullest ranks from their end (latest rounds first).
        cap = batch * world
        while sum(len(refs) for refs in per_rank) > cap:
            fullest = max(range(world), key=lambda k: (len(per_rank[k]), -k))
            per_rank[fullest].pop()
    kept = balance_groups(per_rank)
    most = max(len(refs) for refs in kept)
    kept_total = sum(len(refs) for refs in kept)
    generated = sum(sel.groups for rnd in rounds for sel in rnd)
    variance = sum(len(sel.variance) for rnd in rounds for sel in rnd)
    return StepSelection(
        kept=kept,
        fillers=[most - len(refs) for refs in kept],
        groups_generated=generated,
        groups_kept=kept_total,
        groups_moved=sum(1 for k, refs in enumerate(kept) for ref in refs if ref[1] != k),
        groups_dropped=generated - kept_total,
        zero_variance_groups=generated - variance,
        samples_generated=generated * group_size,
        samples_wasted=(generated - kept_total) * group_size,
        variance_ratio=variance / generated if generated else 0.0,
        rounds=len(rounds),
    )


def refill_done(rounds: Sequence[Sequence[GroupSelection]], batch: int) -> bool:
    """Refill mode: stop generating once the ranks together hold `batch` groups with variance per rank (groups
    move between ranks, see `balance_groups`)."""
    if not rounds:
        return False
    world = len(rounds[0])
    return sum(len(sel.variance) for rnd in rounds for sel in rnd) >= batch * world


class SamplingState(BaseModel):
    """What dynamic sampling carries from step to step (saved in every checkpoint, restored on resume)."""

    model_config = ConfigDict(extra="forbid")

    last_ratio: float | None = None
    steps: int = 0
    groups_generated: int = 0
    groups_kept: int = 0
    groups_dropped: int = 0
    groups_moved: int = 0
    samples_generated: int = 0
    samples_wasted: int = 0

    def update(self, sel: StepSelection) -> None:
        """Fold one step's selection in. The planner's ratio only moves on evidence (a step with groups)."""
        self.steps += 1
        self.groups_generated += sel.groups_generated
        self.groups_kept += sel.groups_kept
        self.groups_dropped += sel.groups_dropped
        self.groups_moved += sel.groups_moved
        self.samples_generated += sel.samples_generated
        self.samples_wasted += sel.samples_wasted
        if sel.groups_generated:
            self.last_ratio = sel.variance_ratio
