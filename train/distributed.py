"""Multi-process data parallelism for the training loop (``torchrun``; gloo on CPU, nccl on GPU).

GAN training alternates phases (G, G regulariser, D, D regulariser) with ``requires_grad`` toggled
between them, which fights DDP's gradient bucketing.  So, as NVlabs' StyleGAN2-ADA does, the networks
are not wrapped: each phase all-reduces one flattened gradient per module before its optimiser step,
and parameters are broadcast from rank 0 once at start.  Every rank holds the frozen teacher D_bar.

    torchrun --standalone --nproc-per-node 2 -m zoo.cli train --config stylegan2-emoji ...
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes logs, images and checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> this rank's GPU when CUDA is available, else CPU; 'cpu'; 'cuda' / 'cuda:N'."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        return torch.device("cuda", local_rank if name == "cuda" else int(name.split(":", 1)[1]))
    if name != "cpu":
        raise ValueError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device("cpu")


def init(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        # rank 0 evaluates metrics alone while the others wait: allow a long collective timeout
        torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(hours=2))
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown(dist: Dist) -> None:
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def broadcast_module(dist: Dist, module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not dist.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(tensor, src=0)


def reduce_gradients(dist: Dist, module: torch.nn.Module, sanitize: bool = True) -> None:
    """Sum every trainable parameter's gradient over ranks (one flattened all-reduce) and, with
    ``sanitize``, replace NaN/Inf by finite values as StyleGAN2-ADA does (not under an fp16 GradScaler,
    which must see them).  Missing gradients count as zeros, on one rank as on many, so single- and
    multi-process runs take identical optimiser steps."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not params:
        return
    if not dist.enabled:
        if sanitize:
            for p in params:
                torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    torch.distributed.all_reduce(flat)
    if sanitize:
        torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def average_buffers(dist: Dist, module: torch.nn.Module) -> None:
    """Average floating-point buffers (BN statistics, spectral-norm vectors, w_avg) over ranks so
    replicas never drift apart."""
    if not dist.enabled:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.flatten() for b in buffers])
    torch.distributed.all_reduce(flat)
    flat /= dist.world_size
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b))
        offset += n


def all_sum(dist: Dist, values: torch.Tensor) -> torch.Tensor:
    """Sum a float tensor over ranks (in place on a copy); identity in a single process."""
    values = values.clone()
    if dist.enabled:
        torch.distributed.all_reduce(values)
    return values


def barrier(dist: Dist) -> None:
    if dist.enabled:
        torch.distributed.barrier()
