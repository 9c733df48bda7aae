"""DDP plumbing for the trainer: process-group set-up from torchrun's environment, sharding, gathers.

Launch on one machine with N GPUs (or N CPU processes with the gloo backend)::

    torchrun --standalone --nproc_per_node N -m macbdf train --data CACHE --model small --out RUN

and on several machines with ``--nnodes``/``--node_rank``/``--rdzv_endpoint`` as usual: everything is
read from the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR`` variables torchrun sets. Rank 0
writes the run directory; ``--resume`` on several machines needs it on a shared file system (every
rank reads ``train_state.pt``) and the same number of processes (the data order depends on it).

Example:
    >>> info = init_distributed("cpu")   # no torchrun variables: a single process
    >>> (info.rank, info.world_size, info.is_main)
    (0, 1, True)
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "is_distributed",
    "barrier",
    "all_reduce_sum",
    "all_gather_rows",
    "ranks_agree",
    "shard_epoch",
    "freeze_unused_parameters",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(pref: str, local_rank: int) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but CUDA is not available")
        if pref == "cuda":
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device(pref)
    return torch.device(pref)


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    """In-place sum over ranks (no-op in a single process); returns ``t``."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_rows(t: Tensor) -> Tensor:
    """Concatenate the rows of ``t`` (N_r, ...) from every rank; ranks may hold different N_r."""
    if not is_distributed():
        return t
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    m = max(counts)
    pad = torch.zeros((m - t.shape[0], *t.shape[1:]), dtype=t.dtype, device=t.device)
    full = torch.cat([t, pad], 0)
    bufs = [torch.empty_like(full) for _ in range(world)]
    dist.all_gather(bufs, full)
    return torch.cat([b[:c] for b, c in zip(bufs, counts)], 0)


@torch.no_grad()
def ranks_agree(module: nn.Module, device: torch.device) -> bool:
    """True when every rank holds the same parameters (max |difference| of a float64 checksum is 0).

    A cheap end-of-training check that DDP kept the replicas identical (OM-Pareto writes its own
    gradients, so this guards against a rank applying a different update).
    """
    if not is_distributed():
        return True
    vals = []
    for p in module.parameters():
        x = p.detach().to(torch.float64)
        # Two moments catch both shifts and permutations of values.
        vals.append(x.sum())
        vals.append((x * x).sum())
    local = torch.stack(vals).to(device) if vals else torch.zeros(1, dtype=torch.float64, device=device)
    hi, lo = local.clone(), local.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return bool(torch.equal(hi, lo))


def shard_epoch(num_samples: int, batch_size: int, epoch: int, seed: int, rank: int, world: int,
                *, shuffle: bool = True, drop_last: bool = True) -> list[list[int]]:
    """The batches (lists of dataset indices) one rank sees in one epoch; same count on every rank.

    The permutation depends only on ``(seed, epoch)``, so a resumed run sees exactly the order an
    uninterrupted run would (the trainer skips the batches already consumed). The index list is
    padded by wrapping to a multiple of ``world`` (like DistributedSampler) and dealt round-robin.
    With ``drop_last`` a trailing partial batch is dropped (BatchNorm in the head cannot train on
    one sample) unless it would leave no batch at all.

    Example:
        >>> shard_epoch(10, 2, epoch=0, seed=0, rank=0, world=2, shuffle=False)
        [[0, 2], [4, 6]]
    """
    if num_samples <= 0:
        return []
    if shuffle:
        g = torch.Generator()
        g.manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1))
        order = torch.randperm(num_samples, generator=g).tolist()
    else:
        order = list(range(num_samples))
    total = -(-num_samples // world) * world
    order = (order * (-(-total // num_samples)))[:total]
    mine = order[rank::world]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def freeze_unused_parameters(joint: nn.Module, model: nn.Module, criterion: nn.Module, device: torch.device,
                             verbose: bool = True) -> None:
    """Freeze the parameters no loss reaches, so that DDP can run with ``find_unused_parameters=False``.

    Some variants build modules whose output no loss uses (e.g. the Eq. 9-10 fusion-weight networks
    with ``ms_depth=0``). DDP's usual answer, ``find_unused_parameters=True``, routes every output
    through its sink node, so OM-Pareto's partial ``autograd.grad`` would walk the whole graph (and
    fire hooks meant for the full backward). Instead a probe step on the model's dummy batch (all
    state restored afterwards) finds the parameters that get no gradient; in MACB-DF's variants the
    graph's structure does not depend on the data, so they never get one: freezing them changes
    nothing in training, and DDP runs without the sink. ``joint`` is model + criterion in one module;
    ``TrainConfig.ddp_find_unused`` skips the probe and forces the flag.
    """
    saved = {k: v.detach().clone() for k, v in joint.state_dict().items()}
    was_training = joint.training
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            joint.train()
            batch = model.dummy_batch(batch_size=4, device=device)
            out, losses = joint(batch)
            criterion.total(losses).backward()
        unused = [(n, p) for n, p in joint.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        joint.zero_grad(set_to_none=True)
        joint.load_state_dict(saved)
        joint.train(was_training)
    for _, p in unused:
        p.requires_grad_(False)
    if unused and verbose:
        print(f"note: {len(unused)} parameter tensors get no gradient in this configuration "
              f"(e.g. {unused[0][0]}); frozen for DDP", file=sys.stderr)
