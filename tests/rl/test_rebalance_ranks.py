"""Dynamic sampling over 2 real ranks (gloo, spawned processes): no informative group is dropped to equalise ranks.

Each rank generates groups with different reward variance (rank 0 three informative groups, rank 1 one), gathers the
rewards as the trainer does, selects, and moves group payloads with `exchange_groups`. The old per-rank rule trained
on 1 + 1 groups; now all 4 train, 2 on each rank.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch.multiprocessing as mp

G = 4
MIXED = [1.0, 0.0, 1.0, 0.0]
FLAT = [1.0, 1.0, 1.0, 1.0]
REWARDS = {0: MIXED + MIXED + MIXED + FLAT, 1: FLAT + MIXED + FLAT + FLAT}  # 4 groups per rank


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from purpcode.rl.exchange import exchange_groups
    from purpcode.rl.sampling import filter_groups, select_step

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gathered: list[list[float] | None] = [None] * world
        dist.all_gather_object(gathered, REWARDS[rank])  # every rank sees every rank's rewards
        selections = [filter_groups(r or [], G, 1e-5) for r in gathered]
        step = select_step([selections], "single-step", batch=4)

        def payload(ref: tuple[int, int, int]) -> str:
            assert ref[1] == rank, "a rank only sends what it generated"
            return f"generation of rank {rank} group {ref[2]}"

        received = exchange_groups(step.kept, rank, payload)
        trained = [payload(ref) if ref[1] == rank else received[ref] for ref in step.kept[rank]]
        result = {"trained": trained, "fillers": step.fillers[rank], "kept": step.groups_kept}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_ranks_train_every_informative_group(tmp_path: Path) -> None:
    # fork: the children inherit the imported torch (a spawned child re-imports it: tens of seconds here).
    mp.start_processes(
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["kept"] == r1["kept"] == 4  # both ranks computed the same selection
    assert len(r0["trained"]) + r0["fillers"] == len(r1["trained"]) + r1["fillers"]  # lockstep
    assert sorted(r0["trained"] + r1["trained"]) == sorted(
        [f"generation of rank 0 group {g}" for g in (0, 1, 2)] + ["generation of rank 1 group 1"]
    )
    assert "generation of rank 0 group 2" in r1["trained"]  # moved, not dropped
