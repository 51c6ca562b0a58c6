"""What torchrun needs and nothing more: read its environment, join the process group, wrap the model in DDP,
reduce metrics."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ...errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == 'cuda' or (preference == 'auto' and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError('train.device=cuda but CUDA is not available here (torch.cuda.is_available() is '
                              'False); use train.device=cpu or auto')
        torch.cuda.set_device(local_rank)
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def process_rank() -> int:
    """This process's rank under torchrun (its RANK variable; 0 for a plain run), known before the group is joined."""
    return int(os.environ.get('RANK', '0'))


def init_distributed(device_preference: str = 'auto') -> DistInfo:
    """Single process, or torchrun's RANK/WORLD_SIZE/LOCAL_RANK: NCCL on GPUs, gloo on CPUs."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = process_rank()
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    return DistInfo(rank, world_size, local_rank, device)


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_distributed(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``model`` in DistributedDataParallel under torchrun (one device per process), else ``model`` itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel
    device = info.device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)
