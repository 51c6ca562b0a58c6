"""Depth normalisation for the depth input tokens and the reconstruction target.

``standardize`` (default): per frame, (d - mean) / std over its valid pixels. Scale-invariant, so ScanNet,
NYU, phone LiDAR and synthetic rooms give the same loss scale and the prior learned is scene *shape*, not a
sensor's range; it is what MultiMAE used for RGB-D pre-training. ``metric`` (metres / ``metric_scale``),
``log`` (log metres) and ``patch`` (each 16x16 patch standardised, like MAE's norm_pix_loss) are options.
Invalid pixels (0, negative, NaN or inf) are 0 in the result and excluded from every statistic.

``stats_pixels`` restricts the ``standardize`` statistics to some pixels (the pre-trainer passes the *visible*
depth pixels, so the hidden depth's mean and std never reach the model); a frame with no such valid pixel falls
back to all its valid pixels. ``patch`` statistics are per patch, so a visible patch's input never depends on
hidden pixels anyway; ``metric`` and ``log`` use no statistics.
"""
from typing import NamedTuple, Optional

import torch

DEPTH_NORMS = ('standardize', 'metric', 'log', 'patch')


class NormalizedDepth(NamedTuple):
    value: torch.Tensor  # [B, 1, H, W], 0 where invalid
    valid: torch.Tensor  # [B, 1, H, W] bool
    shift: torch.Tensor  # broadcastable to value; metres = value * scale + shift (log: exp of that)
    scale: torch.Tensor


def valid_depth(depth: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(depth) & (depth > 0)


def standardize_stats(depth: torch.Tensor, pixels: torch.Tensor, eps: float = 1e-6):
    """Per-frame (mean, std, count) of ``depth`` over ``pixels`` ([B, 1, H, W] bool), each [B, 1, 1, 1]."""
    n = pixels.sum(dim=(1, 2, 3), keepdim=True)
    d = torch.where(pixels, depth, torch.zeros_like(depth))
    mean = d.sum(dim=(1, 2, 3), keepdim=True) / n.clamp_min(1)
    var = (((d - mean) * pixels) ** 2).sum(dim=(1, 2, 3), keepdim=True) / n.clamp_min(1)
    return mean, (var + eps).sqrt(), n


def normalize_depth(depth: torch.Tensor, mode: str, *, patch_size: int = 16, metric_scale: float = 10.0,
                    eps: float = 1e-6, stats_pixels: Optional[torch.Tensor] = None) -> NormalizedDepth:
    if mode not in DEPTH_NORMS:
        raise ValueError(f'depth_norm must be one of {DEPTH_NORMS}, got {mode!r}')
    depth = depth.float()
    valid = valid_depth(depth)
    d = torch.where(valid, depth, torch.zeros_like(depth))
    one = torch.ones((), device=depth.device)
    zero = torch.zeros((), device=depth.device)
    if mode == 'metric':
        shift, scale = zero, one * metric_scale
    elif mode == 'log':
        d = torch.where(valid, torch.log(d.clamp_min(eps)), d)
        shift, scale = zero, one
    elif mode == 'standardize':
        shift, scale, _ = standardize_stats(d, valid, eps)
        if stats_pixels is not None:
            sub_shift, sub_scale, count = standardize_stats(d, valid & stats_pixels, eps)
            shift = torch.where(count > 0, sub_shift, shift)
            scale = torch.where(count > 0, sub_scale, scale)
    else:  # patch
        b, _, h, w = d.shape
        p = patch_size
        dv = d.reshape(b, 1, h // p, p, w // p, p)
        vv = valid.reshape(b, 1, h // p, p, w // p, p)
        n = vv.sum(dim=(3, 5), keepdim=True).clamp_min(1)
        mean = dv.sum(dim=(3, 5), keepdim=True) / n
        var = (((dv - mean) * vv) ** 2).sum(dim=(3, 5), keepdim=True) / n
        std = (var + eps).sqrt()
        shift = mean.expand_as(dv).reshape(b, 1, h, w)
        scale = std.expand_as(dv).reshape(b, 1, h, w)
    value = torch.where(valid, (d - shift) / scale, torch.zeros_like(d))
    return NormalizedDepth(value, valid, shift, scale)


def denormalize_depth(value: torch.Tensor, norm: NormalizedDepth, mode: str) -> torch.Tensor:
    """Back to metres (for figures and metrics)."""
    d = value.float() * norm.scale + norm.shift
    return torch.exp(d) if mode == 'log' else d
