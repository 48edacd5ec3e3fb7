"""Where this process sits in a (possibly multi-node) training job, read from the launcher's variables.

Multi-node: the operator starts one pod per node of an Indexed Job and runs `torchrun` in each with
`--nnodes`, `--node-rank` (the completion index) and a rendezvous at pod 0; torchrun then sets RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every worker. The HF Trainer (through accelerate)
reads those by itself, so the stage code only needs to know who is the main process (writes files, serves metrics).

Single process: DeepSpeed insists on a distributed environment and, without launcher variables, falls into MPI
discovery and fails. `ensure_launcher_env` fills in a one-process world so `python -m ...` just works.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (from the environment; a plain process is rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 of the whole job: the one process that writes shared files and logs metrics."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """Rank 0 on this node."""
        return self.local_rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def node_rank(self) -> int:
        return self.rank // max(1, self.local_world_size)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer (set by torchrun)") from err


def dist_env() -> DistEnv:
    """Read RANK / LOCAL_RANK / WORLD_SIZE / LOCAL_WORLD_SIZE (torchrun, accelerate and deepspeed all set them)."""
    world = _int_env("WORLD_SIZE", 1)
    return DistEnv(
        rank=_int_env("RANK", 0),
        local_rank=_int_env("LOCAL_RANK", 0),
        world_size=world,
        local_world_size=_int_env("LOCAL_WORLD_SIZE", world),
    )


def free_port() -> int:
    """An unused TCP port on loopback (for a one-process rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_launcher_env() -> dict[str, str]:
    """Fill in a one-process world when no launcher set one; returns the variables it set (empty under torchrun).

    Only call this when a library needs a process group (DeepSpeed). Under torchrun nothing is changed.
    """
    if all(os.environ.get(v) for v in ("RANK", "WORLD_SIZE")):
        return {}
    values = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": os.environ.get("MASTER_ADDR") or "127.0.0.1",
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(free_port()),
    }
    set_now = {k: v for k, v in values.items() if not os.environ.get(k)}
    os.environ.update(set_now)
    return set_now


def barrier() -> None:
    """Wait for every rank (no-op without an initialised process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if one exists (launchers abort at exit otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
