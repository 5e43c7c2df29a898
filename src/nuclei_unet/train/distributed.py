"""Multi-process training with torch.distributed: gloo on CPUs, NCCL on GPUs.

The train stage relaunches itself under ``torchrun --nproc_per_node=N`` when ``train.processes``
is above 1; inside, each process reads ``RANK`` and ``WORLD_SIZE`` from the environment.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the group; ``world == 1`` means no distribution."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs and writes files."""
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Sum ``values`` over all processes (identity for one process)."""
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()


def init_from_env(device: torch.device) -> Dist:
    """Join the process group that torchrun set up, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU under torchrun (``LOCAL_RANK``), else ``device`` unchanged."""
    if device.type != "cuda" or "LOCAL_RANK" not in os.environ:
        return device
    local = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    torch.cuda.set_device(local)
    return local


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def inside_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def relaunch_with_torchrun(processes: int, argv: list[str]) -> None:
    """Replace this process by ``torchrun --nproc_per_node=processes`` running ``argv``."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, "--standalone", f"--nproc_per_node={processes}", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(torchrun, cmd)
