"""Mixed precision (``train.precision``: fp32, bf16 or fp16): the autocast context and the loss scaler."""
import contextlib

import torch

from ...errors import ConfigError


def autocast_context(device: torch.device, precision: str):
    """bf16/fp16 autocast on ``device``, or nothing for fp32."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    if precision == 'fp16' and device.type != 'cuda':
        raise ConfigError('train.precision=fp16 needs CUDA; use bf16 on CPU')
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of ``train.precision``: active only for fp16 on CUDA (bf16 and fp32 need none)."""
    return torch.amp.GradScaler('cuda', enabled=precision == 'fp16' and device.type == 'cuda')
