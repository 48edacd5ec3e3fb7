"""Moving kept GRPO groups between ranks, so that dynamic sampling never drops an informative group to equalise
ranks (`purpcode.rl.sampling.balance_groups` decides where each group trains; this module carries the data).

Every rank computes the same plan from the gathered rewards, so every rank knows which of its groups leave and where
its incoming ones come from; one `all_gather_object` then carries the generations of the moving groups. The payloads
are plain Python (token id lists, texts, log-prob lists), so the collective works on gloo and on NCCL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from purpcode.rl.sampling import GroupRef


def outgoing(kept: Sequence[Sequence[GroupRef]], rank: int) -> dict[int, list[GroupRef]]:
    """Per destination rank, the groups generated on `rank` that train there."""
    out: dict[int, list[GroupRef]] = {}
    for dest, refs in enumerate(kept):
        if dest == rank:
            continue
        mine = [ref for ref in refs if ref[1] == rank]
        if mine:
            out[dest] = mine
    return out


def exchange_groups(
    kept: Sequence[Sequence[GroupRef]], rank: int, payload_of: Callable[[GroupRef], Any]
) -> dict[GroupRef, Any]:
    """The payloads of the groups other ranks generated and this rank trains on, keyed by their GroupRef.

    Collective: every rank of the default process group must call it in the same step (even one that sends and
    receives nothing). Without an initialised process group (one process) nothing can move and {} is returned.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return {}
    sends = {dest: {ref: payload_of(ref) for ref in refs} for dest, refs in outgoing(kept, rank).items()}
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sends)
    received: dict[GroupRef, Any] = {}
    for from_rank in gathered:
        received.update(from_rank.get(rank, {}))
    wanted = {ref for ref in kept[rank] if ref[1] != rank}
    missing = wanted - set(received)
    if missing:
        raise RuntimeError(
            f"rank {rank}: groups {sorted(missing)} did not arrive (ranks disagree on the selection)"
        )
    return received
